"""CSV export of the audit log: a header row, then one row per event in sequence order, streamed.

Every column of the chain is included (with ``prev_hash`` and ``hash``), so a CSV export can be
checked against the chain later; ``data`` is a JSON text and timestamps are RFC 3339 UTC.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select

from ..store import Database
from .query import EXPORT_COLUMNS, AuditFilter, chunked, stream_rows, table, timestamp_text

HEADER = [column.name for column in EXPORT_COLUMNS]


def export_csv(database: Database, filters: AuditFilter | None = None) -> Iterator[bytes]:
    """The CSV document (UTF-8, RFC 4180 quoting, CRLF line ends) in chunks."""
    return chunked(_csv_pieces(database, filters or AuditFilter()))


def _csv_pieces(database: Database, filters: AuditFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    statement = select(*EXPORT_COLUMNS).where(*filters.conditions()).order_by(table.c.sequence)
    with database.read() as session:
        for row in stream_rows(session, statement):
            writer.writerow([_cell(name, value) for name, value in zip(HEADER, row, strict=True)])
            if buffer.tell() >= 16384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def _cell(name: str, value) -> str:
    if value is None:
        return ""
    if name == "timestamp":
        return timestamp_text(value, "microseconds")
    return str(value)  # data is already JSON text
