"""Appending to the hash-chained audit log: ``record()`` is the one function every command calls.

Why one chain with a single head row
------------------------------------
Each event's hash covers the previous event's hash, so the log is a single linked list in
``sequence`` order, and the ``audit_head`` row holds its tip (last sequence and hash). A writer locks
that row for the rest of its transaction (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite
``Database.transaction()`` already begins with ``BEGIN IMMEDIATE``, which serializes all writers).
The next writer therefore reads the tip only after the previous transaction committed or rolled back:
sequence numbers have no gaps, and no two events can claim the same predecessor, whatever the
number of threads, processes or machines.

The cost: transactions that record audit events are serialized from their first ``record()`` call
to their commit. Commands keep that window short by doing their work first and recording events at
the end (DESIGN.md: load → change → reconcile → append audit events → commit). The alternative —
per-instance chains anchored in a global chain — removes the contention but makes "was anything
removed?" a question over many chains; one chain keeps ``verify`` a single linear walk.

No deadlocks on PostgreSQL: before it locks the head, ``record()`` flushes the session, so every row
lock the command needs (its instance, its tasks…) is taken first and the head lock is the last lock
of the transaction. A transaction holding the head never waits for a lock another writer holds —
unless the command changes more rows after its first ``record()``, which is why commands record last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..store.models import AuditEvent, AuditHead
from . import events

GENESIS_HASH = "0" * 64
HEAD_ID = 1

# Fields covered by the hash, in the canonical JSON (keys are sorted anyway).
HASHED_FIELDS = (
    "sequence",
    "event_id",
    "timestamp",
    "event_type",
    "instance_id",
    "definition_key",
    "definition_version",
    "element_id",
    "element_name",
    "element_type",
    "transition",
    "actor",
    "group",
    "data",
)

_LIMITS = {
    "instance_id": 36,
    "definition_key": 255,
    "element_id": 255,
    "element_name": 512,
    "element_type": 64,
    "actor": 255,
    "group": 255,
}

_ARGUMENTS = frozenset({*_LIMITS, "actor", "timestamp", "definition_version", "transition", "data"})
_HEAD_CACHE = "bpmn_server.audit.head"
_BULK_ROWS = 1000
_SURROGATE = re.compile("[\ud800-\udfff]")


def record(
    session: Session,
    event_type: str,
    *,
    actor: str,
    timestamp: datetime,
    instance_id: str | None = None,
    definition_key: str | None = None,
    definition_version: int | None = None,
    element_id: str | None = None,
    element_name: str | None = None,
    element_type: str | None = None,
    transition: str | None = None,
    group: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction and return it.

    ``transition`` defaults to the XES lifecycle transition of the event type (events.py); pass it
    to override (e.g. ``ate_abort`` for a task cancelled after it was claimed). ``data`` is made
    JSON-safe (dates to ISO strings, sets to lists, NaN to strings) before it is hashed.
    """
    fields = _event_fields(
        event_type, actor=actor, timestamp=timestamp, instance_id=instance_id, definition_key=definition_key,
        definition_version=definition_version, element_id=element_id, element_name=element_name,
        element_type=element_type, transition=transition, group=group, data=data,
    )
    _append(session, [fields])
    return AuditEvent(**fields)  # as stored (a detached copy: the row went out with a Core INSERT)


def record_many(session: Session, entries: Iterable[Mapping[str, Any]]) -> int:
    """Append many events at once (one multi-row INSERT per batch); returns how many were appended.

    Each entry holds ``record()``'s arguments by name, ``event_type`` included. The chain is the
    same as from one ``record()`` call per entry, in order; use it for commands that produce many
    events (a long engine run) and for imports. Nothing is appended if any entry is invalid.
    """
    prepared = [_event_fields(**entry) for entry in entries]
    if prepared:
        _append(session, prepared)
    return len(prepared)


def _append(session: Session, prepared: list[dict[str, Any]]) -> None:
    """Chain ``prepared`` onto the locked head, INSERT the events and move the head, all in Core."""
    head = _locked_head(session)
    for fields in prepared:
        _chain(head, fields)
    connection = session.connection()
    for start in range(0, len(prepared), _BULK_ROWS):
        connection.execute(_INSERT_EVENTS, prepared[start:start + _BULK_ROWS])
    connection.execute(_MOVE_HEAD, {"sequence": head.sequence, "hash": head.hash})


def _event_fields(event_type: str, **arguments: Any) -> dict[str, Any]:
    """The stored columns of an event, checked and normalized; sequence and hashes come later."""
    unknown = set(arguments) - _ARGUMENTS
    if unknown:
        raise TypeError(f"record() got unexpected arguments {sorted(unknown)}")
    get = arguments.get
    actor, timestamp, data = get("actor"), get("timestamp"), get("data")
    kind = events.event_type(event_type)
    transition = get("transition") or kind.transition
    if transition not in events.TRANSITIONS:
        raise ValueError(f"{transition!r} is not an XES lifecycle transition")
    if not actor:
        raise ValueError("every audit event needs an actor")
    if not isinstance(timestamp, datetime) or timestamp.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware datetimes (UTC)")
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": timestamp.astimezone(UTC),
        "event_type": kind.name,
        **{name: _text(get(name), name) for name in _LIMITS},
        "definition_version": None if get("definition_version") is None else int(get("definition_version")),
        "transition": transition,
        "data": json_safe(dict(data or {})),
    }


@dataclass
class _Head:
    """The chain's tip as this transaction sees it (its row is locked until the transaction ends)."""

    sequence: int
    hash: str


def _chain(head: _Head, fields: dict[str, Any]) -> None:
    """Give ``fields`` the next sequence and its hashes, and move the (locked) head onto it."""
    fields["sequence"] = head.sequence + 1
    fields["prev_hash"] = head.hash
    fields["hash"] = event_hash(head.hash, fields)
    head.sequence = fields["sequence"]
    head.hash = fields["hash"]


def _locked_head(session: Session) -> _Head:
    """The head, its row locked until the transaction ends; created (genesis) on first use.

    The lock is taken once per transaction: later appends of the same transaction go on from the tip
    this transaction already holds (each append writes it back with ``_MOVE_HEAD``).
    """
    session.connection()  # begin the transaction now, so that it can be told apart from the last one
    # the innermost one: after a savepoint rolls back, the head is read again as the database has it
    transaction = session.get_nested_transaction() or session.get_transaction()
    cached = session.info.get(_HEAD_CACHE)
    if cached is not None and cached[0] is transaction:
        return cached[1]
    session.flush()  # take the command's own row locks before the head lock (see the module docstring)
    row = session.connection().execute(_LOCK_HEAD).first()
    if row is None:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        # Two first writers may race here: ON CONFLICT DO NOTHING makes the loser wait for the
        # winner's commit and then simply lock the row the winner created.
        session.execute(
            dialect.insert(AuditHead.__table__)
            .values(id=HEAD_ID, sequence=0, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.execute(_LOCK_HEAD).one()
    head = _Head(row.sequence, row.hash)
    session.info[_HEAD_CACHE] = (transaction, head)
    return head


_HEAD_TABLE = AuditHead.__table__
_INSERT_EVENTS = AuditEvent.__table__.insert()
_LOCK_HEAD = select(_HEAD_TABLE.c.sequence, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == HEAD_ID).with_for_update()
_MOVE_HEAD = (
    _HEAD_TABLE.update().where(_HEAD_TABLE.c.id == HEAD_ID)
    .values(sequence=bindparam("sequence"), hash=bindparam("hash"))
)


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The canonical serialization of an event: the hashed fields, sorted keys, no spaces, UTF-8."""
    body = {name: fields.get(name) for name in HASHED_FIELDS}
    body["timestamp"] = _timestamp_text(body["timestamp"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """sha256 over the previous hash followed by the event's canonical JSON, as 64 hex digits."""
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def _timestamp_text(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _text(value: Any, field: str) -> str | None:
    """Text as the database will store it: NUL-free, valid UTF-8, cut to the column's length."""
    if value is None:
        return None
    return _clean(str(value))[: _LIMITS[field]]


def _clean(text: str) -> str:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (not encodable as UTF-8)."""
    if text.isascii() and "\x00" not in text:  # the common case, checked at C speed
        return text
    text = text.replace("\x00", "\ufffd")
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that JSON round-trips unchanged, so its hash can be recomputed later."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {_clean(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((json_safe(v) for v in value), key=repr)
    if isinstance(value, datetime):
        return value.isoformat() if value.tzinfo is None else value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
