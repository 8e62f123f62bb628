"""bpmn_server: a standards-first BPMN 2.0 modeling and execution server on SpiffWorkflow."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .services import Services
    from .settings import Settings

__version__ = "0.1.0"


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               testing: bool = False) -> Flask:
    """Assemble the Flask app: settings, services, REST API, web pages. Nothing else assembles it."""
    from flask import redirect

    from . import api, web
    from .flask_app import BpmnServerFlask
    from .services import Services
    from .settings import Settings

    if services is None:
        services = Services(settings or Settings.from_env())
        services.create_schema()
    settings = services.settings
    app = BpmnServerFlask(__name__)
    app.config.from_mapping(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 64 * 1024,
        TESTING=testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
    )
    app.extensions["bpmn_server"] = services
    api.init_app(app)
    web.init_app(app)

    @app.get("/")
    def index():
        return redirect("/tasks" if "web.tasks" in app.view_functions else "/api/docs")

    return app
