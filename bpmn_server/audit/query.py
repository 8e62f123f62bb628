"""Filtering and streaming audit rows: the one query shape behind listing and every export."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.orm import Session

from ..store.models import AuditEvent

table = AuditEvent.__table__
COLUMNS = list(table.c)
# What the exports read: every column, but ``data`` as its stored JSON text. An export writes that
# text out as it is, so it does not parse and re-serialize every event's data (which was half the
# export time); the few places that look inside it parse it themselves.
# Exporters unpack rows in this order (unpacking is several times cheaper than row.attribute).
EXPORT_FIELDS = (
    "sequence", "event_id", "timestamp", "event_type", "instance_id", "definition_key",
    "definition_version", "element_id", "element_name", "element_type", "transition", "actor",
    "group", "data", "prev_hash", "hash",
)
EXPORT_COLUMNS = [cast(table.c.data, Text).label("data") if name == "data" else table.c[name] for name in EXPORT_FIELDS]
BATCH_SIZE = 2000
CHUNK_CHARS = 64 * 1024


@dataclass(frozen=True)
class AuditFilter:
    """Which events to read: all given conditions must hold; ``since`` inclusive, ``until`` exclusive."""

    process_key: str | None = None
    instance_id: str | None = None
    actor: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses on the audit_event table."""
        c = table.c
        conditions: list[ColumnElement[bool]] = []
        if self.process_key is not None:
            conditions.append(c.definition_key == self.process_key)
        if self.instance_id is not None:
            conditions.append(c.instance_id == self.instance_id)
        if self.actor is not None:
            conditions.append(c.actor == self.actor)
        if self.event_type is not None:
            conditions.append(c.event_type == self.event_type)
        if self.since is not None:
            conditions.append(c.timestamp >= _utc(self.since))
        if self.until is not None:
            conditions.append(c.timestamp < _utc(self.until))
        return conditions


def _utc(moment: datetime) -> datetime:
    """Naive datetimes in a filter are read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def stream_rows(session: Session, statement: Select, batch_size: int = BATCH_SIZE) -> Iterator[Row]:
    """Rows of ``statement`` fetched ``batch_size`` at a time (a server-side cursor on PostgreSQL).

    Plain rows, not mappings: an export touches every column of every event, and unpacking a row
    costs a fraction of looking its columns up by name.
    """
    result = session.execute(statement.execution_options(yield_per=batch_size))
    for partition in result.partitions():
        yield from partition


def chunked(pieces: Iterable[str], size: int = CHUNK_CHARS) -> Iterator[bytes]:
    """Join small text pieces into UTF-8 chunks of about ``size`` characters, for streaming."""
    buffer: list[str] = []
    length = 0
    for piece in pieces:
        buffer.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
            length = 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


def timestamp_text(moment: datetime, timespec: str = "milliseconds") -> str:
    """An xs:dateTime / RFC 3339 text of a UTC instant, e.g. ``2026-01-05T09:00:00.000+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec=timespec)


def row_dict(row: RowMapping) -> dict[str, Any]:
    """A plain dict of one audit row (JSON-ready apart from the timestamp)."""
    return {column.name: row[column.name] for column in COLUMNS}
