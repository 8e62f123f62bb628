"""Structured logging: one JSON object per line with the request id and, where known, the
instance id, so a log pipeline can follow one request or one case across processes."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
instance_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("instance_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: time (UTC), level, logger, message, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("request_id", request_id), ("instance_id", instance_id)):
            value = getattr(record, key, None) or var.get()
            if value:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Send the ``bpmn_server`` loggers to stderr, as JSON lines unless asked for plain text."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("bpmn_server")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
