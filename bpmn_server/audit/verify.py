"""Checking the audit chain: walk it in sequence order, recompute every hash, report the first break.

The walk reads the events in keyset-paginated batches, so memory stays flat however long the log
is. It stops at the head row read when the walk began: events appended while it runs belong to a
later check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..store.models import AuditEvent, AuditHead
from .chain import GENESIS_HASH, HASHED_FIELDS, HEAD_ID, event_hash

ALTERED = "altered"
REMOVED = "removed"
REORDERED = "reordered"
TRUNCATED = "truncated"
HEAD_MISMATCH = "head-mismatch"

_table = AuditEvent.__table__
_NAMES = (*HASHED_FIELDS, "prev_hash", "hash")
_COLUMNS = [_table.c[name] for name in _NAMES]


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a chain check: intact, or the first event where it breaks and how."""

    ok: bool
    events_checked: int
    message: str
    first_bad_sequence: int | None = None
    problem: str | None = None  # altered, removed, reordered, truncated, head-mismatch
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Break(Exception):
    def __init__(self, problem: str, sequence: int, message: str) -> None:
        super().__init__(message)
        self.problem, self.sequence, self.message = problem, sequence, message


def verify_chain(
    session: Session, *, batch_size: int = 5000, anchors: Mapping[int, str] | None = None
) -> VerifyResult:
    """Check the whole chain; ``anchors`` maps sequences to hashes recorded elsewhere earlier.

    An anchor catches what no hash chain can on its own: someone with write access who rewrites
    the log from some point on and recomputes every later hash and the head.
    """
    anchors = dict(anchors or {})
    # Events first, then the head: on PostgreSQL (READ COMMITTED) each statement sees the latest
    # commits, and an honest writer commits its events and the head together, so a head read after
    # the events can only be newer. Read the other way round, the first writer committing in between
    # would look like a missing head.
    newest_at_start = _max_sequence(session)
    head = session.execute(
        select(AuditHead.sequence, AuditHead.hash).where(AuditHead.id == HEAD_ID)
    ).first()
    head_sequence, head_hash = (head.sequence, head.hash) if head else (0, GENESIS_HASH)
    checked = 0
    try:
        if head is None and newest_at_start is not None:
            raise _Break(HEAD_MISMATCH, 1, "the chain head row is missing although events exist")
        expected_sequence, expected_prev = 1, GENESIS_HASH
        last = 0
        while True:
            rows = session.execute(
                select(*_COLUMNS)
                .where(_table.c.sequence > last, _table.c.sequence <= head_sequence)
                .order_by(_table.c.sequence)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            for row in rows:
                fields = dict(zip(_NAMES, row, strict=True))  # a plain dict: RowMapping lookups are slow
                _check_event(session, fields, expected_sequence, expected_prev)
                anchored = anchors.get(fields["sequence"])
                if anchored is not None and anchored != fields["hash"]:
                    raise _Break(
                        ALTERED,
                        fields["sequence"],
                        f"event {fields['sequence']} no longer has its anchored hash: the chain was "
                        "rewritten at or before this event",
                    )
                checked += 1
                expected_sequence += 1
                expected_prev = fields["hash"]
            last = rows[-1].sequence
        _check_tail(session, expected_sequence - 1, expected_prev, head_sequence, head_hash, anchors)
    except _Break as broken:
        return VerifyResult(
            ok=False,
            events_checked=checked,
            message=broken.message,
            first_bad_sequence=broken.sequence,
            problem=broken.problem,
            head_sequence=head_sequence,
            head_hash=head_hash,
        )
    return VerifyResult(
        ok=True,
        events_checked=checked,
        message=f"all {checked} events are intact (head {head_sequence} {head_hash})",
        head_sequence=head_sequence,
        head_hash=head_hash,
    )


def _check_event(session: Session, fields: Mapping[str, Any], expected_sequence: int, expected_prev: str) -> None:
    """Raise _Break when this event is not the intact successor of the previous one."""
    sequence = fields["sequence"]
    if sequence != expected_sequence:
        missing = (
            f"event {expected_sequence} is missing"
            if sequence == expected_sequence + 1
            else f"events {expected_sequence}–{sequence - 1} are missing"
        )
        raise _Break(REMOVED, expected_sequence, missing + " (removed from the log)")
    intact = event_hash(fields["prev_hash"], fields) == fields["hash"]
    linked = fields["prev_hash"] == expected_prev
    if intact and linked:
        return
    if intact:
        # This event is untouched, but its predecessor now hashes differently: the predecessor
        # was rewritten and given a fresh hash (or, for event 1, the genesis link was forged).
        if sequence == 1:
            raise _Break(ALTERED, 1, "event 1 was altered: it does not start from the genesis hash")
        bad = sequence - 1
        raise _Break(ALTERED, bad, f"event {bad} was altered and re-hashed: event {sequence} no longer links to it")
    if linked:
        raise _Break(ALTERED, sequence, f"event {sequence} was altered: its content no longer matches its hash")
    origin = _original_position(session, fields)
    where = f" (it belongs at position {origin})" if origin else ""
    raise _Break(
        REORDERED,
        sequence,
        f"event {sequence} is out of place{where}: neither its content nor its link fits this position",
    )


def _original_position(session: Session, fields: Mapping[str, Any]) -> int | None:
    """Where a moved event came from: it hashes correctly there (only looked up once broken)."""
    if fields["prev_hash"] == GENESIS_HASH:
        candidates = [1]
    else:
        found = session.execute(
            select(_table.c.sequence).where(_table.c.hash == fields["prev_hash"]).limit(1)
        ).scalar()
        # the predecessor's hash sits at `found`, or moved there from just before our origin
        candidates = [] if found is None else [found + 1, found]
    for candidate in candidates:
        if candidate != fields["sequence"] and event_hash(
            fields["prev_hash"], {**fields, "sequence": candidate}
        ) == fields["hash"]:
            return candidate
    return None


def _check_tail(
    session: Session,
    last_sequence: int,
    last_hash: str,
    head_sequence: int,
    head_hash: str,
    anchors: Mapping[int, str],
) -> None:
    """The walk must end exactly at the head, and nothing may lie beyond the head."""
    if last_sequence < head_sequence:
        raise _Break(
            TRUNCATED,
            last_sequence + 1,
            f"the log ends at event {last_sequence} but the chain head says {head_sequence}: "
            f"events {last_sequence + 1}–{head_sequence} were removed",
        )
    if last_hash != head_hash:
        raise _Break(
            ALTERED,
            max(last_sequence, 1),
            f"event {last_sequence} does not carry the hash the chain head recorded for it",
        )
    beyond_anchor = [s for s in anchors if s > last_sequence]
    if beyond_anchor:
        raise _Break(
            TRUNCATED,
            last_sequence + 1,
            f"the log ends at event {last_sequence} but event {min(beyond_anchor)} was anchored earlier",
        )
    # Read the newest event before re-reading the head: an honest writer commits both together,
    # so only an event inserted behind the head's back can lie beyond it.
    newest = _max_sequence(session)
    current_head = session.execute(select(AuditHead.sequence).where(AuditHead.id == HEAD_ID)).scalar()
    if newest is not None and newest > (current_head or 0):
        raise _Break(
            HEAD_MISMATCH,
            (current_head or 0) + 1,
            f"events after {current_head or 0} were added without moving the chain head (forged)",
        )


def _max_sequence(session: Session) -> int | None:
    return session.execute(select(func.max(_table.c.sequence))).scalar()
