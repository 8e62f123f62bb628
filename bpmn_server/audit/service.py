"""The audit facade: list the history, verify the chain, export it (XES, OCEL 2.0, CSV).

Recording is not here: commands append events with ``audit.chain.record`` inside their own
transaction, so an event exists exactly when the change it records was committed. The one exception
is ``permission_denied``: a refused command rolls back, so its refusal is recorded in a transaction of
its own.

Reading the log is for auditors: administrators and members of the ``auditor`` group. Every reading
method takes the principal that asks; anyone else is refused with ``Forbidden`` and the attempt is
recorded as a permission-denied event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select

from ..clock import Clock
from ..errors import Forbidden, InvalidInput
from ..store import Database
from .chain import record
from .csv_export import export_csv
from .events import EVENT_TYPES, PERMISSION_DENIED
from .ocel import export_ocel
from .query import COLUMNS, AuditFilter, row_dict, table, timestamp_text
from .verify import VerifyResult, verify_chain
from .xes import export_xes

MAX_PAGE = 1000
AUDITOR_GROUP = "auditor"

EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    # format -> (media type, file name suffix)
    "xes": ("application/xml", ".xes"),
    "ocel": ("application/json", ".ocel.json"),
    "csv": ("text/csv; charset=utf-8", ".csv"),
}
_EXPORTERS = {"xes": export_xes, "ocel": export_ocel, "csv": export_csv}


@dataclass(frozen=True)
class AuditEntry:
    """One event as an auditor reads it."""

    sequence: int
    event_id: str
    timestamp: datetime
    event_type: str
    instance_id: str | None
    definition_key: str | None
    definition_version: int | None
    element_id: str | None
    element_name: str | None
    element_type: str | None
    transition: str | None
    actor: str
    group: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["timestamp"] = timestamp_text(self.timestamp, "microseconds")
        return values


@dataclass(frozen=True)
class AuditPage:
    """A page of events in sequence order; pass ``next_after_sequence`` back to read the next page."""

    items: list[AuditEntry]
    total: int
    limit: int
    offset: int
    next_after_sequence: int | None


class Reader(Protocol):
    """Who asks (``identity.Principal`` fits; audit sits below identity and needs only these)."""

    username: str
    groups: frozenset[str]
    is_admin: bool


class AuditService:
    """What auditors and the interfaces (REST, CLI) do with the audit log."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock

    # -- access --------------------------------------------------------------------------------
    def may_read(self, principal: Reader) -> bool:
        """True for administrators and members of the auditor group."""
        return bool(principal.is_admin or AUDITOR_GROUP in principal.groups)

    def require_auditor(self, principal: Reader, action: str = "read the audit log") -> None:
        """Refuse (and record the refusal) unless the principal may read the log."""
        if self.may_read(principal):
            return
        detail = f"'{principal.username}' may not {action}: it needs the '{AUDITOR_GROUP}' group or an administrator"
        self.permission_denied(principal.username, action, detail)
        refusal = Forbidden(detail)
        refusal.audited = True
        raise refusal

    def record_refusal(self, error: Forbidden, actor: str, action: str) -> None:
        """Record a refusal its raiser did not record (e.g. an administrator-only endpoint), once."""
        if error.audited:
            return
        self.permission_denied(actor, action, error.detail,
                               **{k: error.extra[k] for k in ("instance_id", "definition_key", "definition_version",
                                                              "element_id") if k in error.extra})
        error.audited = True

    def permission_denied(
        self,
        actor: str,
        action: str,
        detail: str,
        *,
        instance_id: str | None = None,
        definition_key: str | None = None,
        definition_version: int | None = None,
        element_id: str | None = None,
    ) -> None:
        """Record that ``actor`` was refused ``action``, in a transaction of its own.

        The refused command's transaction rolls back, so its refusal cannot be recorded there; call
        this, then raise ``Forbidden``.
        """
        with self.database.transaction() as session:
            record(
                session, PERMISSION_DENIED, actor=actor or "anonymous", timestamp=self.clock.now(),
                instance_id=instance_id, definition_key=definition_key,
                definition_version=definition_version, element_id=element_id,
                data={"action": action, "detail": detail},
            )

    # -- reading -------------------------------------------------------------------------------
    def list_events(
        self,
        principal: Reader,
        *,
        instance_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        event_type: str | None = None,
        process_key: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after_sequence: int | None = None,
    ) -> AuditPage:
        """Events matching every given filter, oldest first; page by ``offset`` or ``after_sequence``."""
        self.require_auditor(principal)
        filters = self._filters(
            instance_id=instance_id, actor=actor, since=since, until=until,
            event_type=event_type, process_key=process_key,
        )
        return self._page(filters, limit=limit, offset=offset, after_sequence=after_sequence)

    def instance_history(self, instance_id: str, *, limit: int = 100, offset: int = 0) -> AuditPage:
        """The events of one instance, oldest first, for callers that checked access to it themselves.

        The runtime decides who may see an instance (its starter, its performers…); it calls this
        after that check. Everything else goes through the auditor-only ``list_events``.
        """
        return self._page(AuditFilter(instance_id=instance_id), limit=limit, offset=offset)

    def _page(self, filters: AuditFilter, *, limit: int, offset: int, after_sequence: int | None = None) -> AuditPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if offset < 0:
            raise InvalidInput("offset must not be negative", field="offset")
        conditions = filters.conditions()
        page_conditions = list(conditions)
        if after_sequence is not None:
            page_conditions.append(table.c.sequence > after_sequence)
        with self.database.read() as session:
            total = session.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
            rows = session.execute(
                select(*COLUMNS).where(*page_conditions).order_by(table.c.sequence).offset(offset).limit(limit)
            ).mappings()
            items = [AuditEntry(**row_dict(row)) for row in rows]
        next_after = items[-1].sequence if len(items) == limit else None
        return AuditPage(items=items, total=total, limit=limit, offset=offset, next_after_sequence=next_after)

    def verify(self, principal: Reader, anchors: Mapping[int, str] | None = None) -> VerifyResult:
        """Walk the whole chain and report the first altered, removed or reordered event.

        ``anchors`` maps sequences to hashes kept outside the database (an earlier verify's head):
        they expose a log cut short or rewritten together with its head.
        """
        self.require_auditor(principal, "verify the audit log")
        with self.database.read() as session:
            return verify_chain(session, anchors=anchors)

    def export(
        self,
        principal: Reader,
        format: str,
        *,
        process_key: str | None = None,
        instance_id: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[bytes]:
        """The log as ``xes``, ``ocel`` or ``csv``, streamed in byte chunks.

        Arguments are checked (and access refused) before the first chunk; the database is read
        while the chunks are consumed, one batch at a time.
        """
        self.require_auditor(principal, "export the audit log")
        exporter = _EXPORTERS.get(format)
        if exporter is None:
            raise InvalidInput(
                f"unknown export format {format!r}; use one of {', '.join(sorted(_EXPORTERS))}", field="format"
            )
        filters = self._filters(
            process_key=process_key, instance_id=instance_id, actor=actor, since=since, until=until
        )
        return exporter(self.database, filters)

    @staticmethod
    def _filters(*, event_type: str | None = None, since=None, until=None, **values: Any) -> AuditFilter:
        if event_type is not None and event_type not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {event_type!r}", field="event_type")
        if since is not None and until is not None and _aware(since) >= _aware(until):
            raise InvalidInput("since must be before until", field="since")
        return AuditFilter(event_type=event_type, since=since, until=until, **values)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
