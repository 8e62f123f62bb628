"""The WSGI entry point for running several server processes under gunicorn against one shared
PostgreSQL: ``gunicorn -w 4 -k gthread --threads 8 'bpmn_server.wsgi:app'`` (README, Production)."""

from __future__ import annotations

from . import create_app
from .logs import configure_logging
from .settings import Settings

settings = Settings.from_env()
configure_logging(settings.log_level, json_lines=settings.log_json)
app = create_app(settings)
