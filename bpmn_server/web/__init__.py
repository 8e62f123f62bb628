"""Server-rendered pages for people: sign-in, task list, process catalogue and modeler, instances,
and the SOP handbook. Every page calls the same services as the REST API."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.exceptions import HTTPException, NotFound

from . import security


def init_app(app: Flask) -> None:
    """Register the page blueprints, the session/CSRF security and the HTML 404 page."""
    from . import auth_pages, instance_pages, modeler_pages, pages, process_pages, sop_pages, task_pages  # noqa: F401

    security.init_app(app)
    _static_files(app)
    for blueprint in (pages.bp, sop_pages.bp):
        app.register_blueprint(blueprint)
    _html_not_found(app)


def _static_files(app: Flask) -> None:
    """Serve /static/ from web/static (own CSS/JS, and the npm assets bin/setup copies to vendor/)."""
    app.static_folder = str(Path(__file__).parent / "static")
    if "static" not in app.view_functions:
        app.add_url_rule(f"{app.static_url_path}/<path:filename>", endpoint="static",
                         view_func=app.send_static_file)


def _html_not_found(app: Flask) -> None:
    """Unknown URLs outside /api/ get the HTML 404 page; the API keeps its problem+json."""
    from .pages import render, wants_page

    fallback = app.error_handler_spec[None][None].get(HTTPException)

    @app.errorhandler(NotFound)
    def not_found(error: NotFound):
        if wants_page() or fallback is None:
            return render("error.html", 404, title="Page not found", code=404,
                          detail="There is no page at this address. Check the link or start from the menu.")
        return fallback(error)
