"""Server-rendered pages for people: SOP handbook, task list, catalogue, instances."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the page blueprints that exist."""
    import importlib

    for name in ("sop_pages",):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            continue
        app.register_blueprint(module.bp)
