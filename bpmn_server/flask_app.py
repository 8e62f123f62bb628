"""The Flask application class of bpmn_server, and what the API and the web pages do alike for a request."""

from __future__ import annotations

from flask import Flask, current_app, g, request

from .errors import Forbidden
from .store import is_database_lost


class BpmnServerFlask(Flask):
    """Flask, except that a request failing because the database is gone (its answer is a 503) is
    logged as one warning line, not as a traceback per request while a restart or fail-over lasts."""

    def log_exception(self, exc_info) -> None:
        error = exc_info[1]
        if is_database_lost(error):
            first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0:1]
            self.logger.warning("database unavailable during %s %s: %s", request.method, request.path,
                                first_line[0] if first_line else type(error).__name__)
            return
        super().log_exception(exc_info)


def record_refusal(error: Forbidden) -> None:
    """Every refused request lands in the audit log once, whoever refused it (API and pages): the
    signed-in principal (or anonymous) and the request as the action."""
    principal = g.get("principal")
    actor = principal.username if principal is not None else "anonymous"
    current_app.extensions["bpmn_server"].audit.record_refusal(error, actor, f"{request.method} {request.path}")
