"""The Flask application class of bpmn_server."""

from __future__ import annotations

from flask import Flask, request

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
