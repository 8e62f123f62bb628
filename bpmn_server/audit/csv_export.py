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
from .query import EXPORT_COLUMNS, EXPORT_FIELDS, AuditFilter, chunked, stream_rows, table, timestamp_text

HEADER = list(EXPORT_FIELDS)
_TIMESTAMP = HEADER.index("timestamp")


def export_csv(database: Database, filters: AuditFilter | None = None) -> Iterator[bytes]:
    """The CSV document (UTF-8, RFC 4180 quoting, CRLF line ends) in chunks."""
    return chunked(_csv_pieces(database, filters or AuditFilter()))


def _csv_pieces(database: Database, filters: AuditFilter) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    statement = select(*EXPORT_COLUMNS).where(*filters.conditions()).order_by(table.c.sequence)
    with database.snapshot() as session:
        for row in stream_rows(session, statement):
            values = list(row)  # csv writes None as an empty cell and data is already JSON text
            values[_TIMESTAMP] = timestamp_text(values[_TIMESTAMP], "microseconds")
            writer.writerow(values)
            if buffer.tell() >= 16384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
