"""Firing due timers: the ``timer`` table is the truth, each fired timer is one command.

How a timer is fired exactly once, whatever the number of threads, processes and machines:

1. **Claim** (a short transaction): the due rows are selected ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL (on SQLite ``BEGIN IMMEDIATE`` makes every writer exclusive) and leased to this
   process (``lock_owner``, ``lock_until``). Another sweeper skips leased rows.
2. **Fire** (one command): ``InstanceService.apply`` restores the instance with the clock at the
   timer's due time, checks inside that transaction that the Spiff timer task is still waiting and
   due (a second firing finds it already fired and does nothing), lets the engine run, reconciles
   the projections and commits — guarded by the instance's row version, so two firings of one
   instance can never both commit.
3. **Settle** (a short transaction): the lease is released and the row marked fired, or — when the
   command failed — ``attempts`` goes up and the row waits until ``next_attempt_at`` (exponential
   backoff). After ``timer_max_attempts`` the row becomes ``failed`` and an ``Incident`` (kind
   ``timer``) is opened on the instance: never dropped silently. A process that dies between the
   steps leaves a lease that runs out; the row is then taken again and step 2 finds out what
   already happened.

Timer start events have rows of kind ``start`` with a ``definition_id`` and no instance: firing
one starts an instance of that definition version and schedules the next occurrence.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from ..audit import events
from ..audit.chain import record
from ..clock import Clock
from ..errors import BpmnServerError, Conflict, Forbidden, NotFound
from ..identity.principal import Principal
from ..metrics import REGISTRY, measured_command
from ..parser.spec import timer_due
from ..parser.timer_text import TimerTextError, parse_timer
from ..settings import Settings
from ..store import Database
from ..store.models import Incident, ProcessDefinition, ProcessInstance, Timer, User
from . import outbox

log = logging.getLogger(__name__)

TIMER_LATENESS = Histogram(
    "bpmn_server_timer_lateness_seconds",
    "How long after its due time a timer was fired (claim to commit included)",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)

WAITING = "waiting"
FIRED = "fired"
CANCELLED = "cancelled"
FAILED = "failed"
START = "start"

LEASE = timedelta(minutes=5)
_SYNC_LOCK = 0x62706D6E_7374  # PostgreSQL advisory lock key of StartTimers.sync ("bpmn" "st")


class StaleTimer(Exception):
    """The timer row no longer matches the instance: its Spiff task fired, moved or went away.
    ``cancel``: the row is obsolete (its start schedule moved to another version)."""

    def __init__(self, message: str, *, cancel: bool = False) -> None:
        super().__init__(message)
        self.cancel = cancel


@dataclass
class TimerInfo:
    """A timer as an operator sees it."""

    id: int
    kind: str
    element_id: str
    instance_id: str | None
    definition_id: int | None
    due_at: datetime
    status: str
    fire_count: int
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    fired_at: datetime | None
    expression: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FireReport:
    """What one ``fire_due`` pass did."""

    fired: int = 0
    skipped: int = 0  # stale rows: already fired by someone else, or no longer waiting
    retried: int = 0
    failed: int = 0  # gave up: an incident was opened
    started: list[str] = field(default_factory=list)  # instances started by timer start events

    def add(self, other: FireReport) -> None:
        self.fired += other.fired
        self.skipped += other.skipped
        self.retried += other.retried
        self.failed += other.failed
        self.started.extend(other.started)


@dataclass(frozen=True)
class _Claim:
    id: int
    kind: str
    instance_id: str | None
    definition_id: int | None
    spiff_task_id: str | None
    element_id: str
    expression: str | None
    due_at: datetime
    attempts: int


def _info(row: Timer) -> TimerInfo:
    return TimerInfo(row.id, row.kind, row.element_id, row.instance_id, row.definition_id, row.due_at, row.status,
                     row.fire_count, row.attempts, row.next_attempt_at, row.last_error, row.fired_at, row.expression)


def default_owner() -> str:
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TimerService:
    """Due timers, firing them, retries and incidents, and the schedules of timer start events."""

    def __init__(self, database: Database, clock: Clock, settings: Settings, *,
                 instances: Callable[[], Any], definitions: Any = None, owner: str | None = None,
                 backoff_seconds: float = 30.0) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self._instances = instances
        self.definitions = definitions
        self.owner = owner or default_owner()
        self.max_attempts = max(1, settings.timer_max_attempts)
        self.backoff_seconds = backoff_seconds
        self.start_timers = StartTimers(self)
        self._lock = threading.Lock()

    @property
    def instances(self):
        return self._instances()

    # -- queries ----------------------------------------------------------------------------------
    @staticmethod
    def _due_condition(now: datetime):
        return and_(
            Timer.status == WAITING,
            Timer.due_at <= now,
            or_(Timer.next_attempt_at.is_(None), Timer.next_attempt_at <= now),
            or_(Timer.lock_until.is_(None), Timer.lock_until <= now),
        )

    def due_timers(self, now: datetime | None = None, limit: int = 100) -> list[TimerInfo]:
        """Waiting timers due at ``now`` that nobody holds, earliest first."""
        now = now or self.clock.now()
        with self.database.read() as session:
            rows = session.scalars(select(Timer).where(self._due_condition(now))
                                   .order_by(Timer.due_at, Timer.id).limit(limit)).all()
            return [_info(row) for row in rows]

    def next_due_at(self) -> datetime | None:
        """The earliest moment a waiting timer may be taken: due, retry after backoff, or lease ended
        (what the scheduler wakes up for; a row another process holds is not due before its lease ends)."""
        now = self.clock.now()
        with self.database.read() as session:
            takeable = case((Timer.next_attempt_at > Timer.due_at, Timer.next_attempt_at), else_=Timer.due_at)
            free = session.scalar(select(func.min(takeable)).where(
                Timer.status == WAITING, or_(Timer.lock_until.is_(None), Timer.lock_until <= now)))
            held = session.scalar(select(func.min(Timer.lock_until)).where(
                Timer.status == WAITING, Timer.lock_until > now))
            return min((d for d in (free, held) if d is not None), default=None)

    def list_timers(self, principal: Principal, *, status: str | None = None, instance_id: str | None = None,
                    kind: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[TimerInfo], int]:
        """Timers for operators (administrators), earliest due first."""
        if not principal.is_admin:
            raise Forbidden("the timer list is for administrators")
        with self.database.read() as session:
            query = select(Timer)
            if status:
                query = query.where(Timer.status == status)
            if instance_id:
                query = query.where(Timer.instance_id == instance_id)
            if kind:
                query = query.where(Timer.kind == kind)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Timer.due_at, Timer.id).offset(offset).limit(limit)).all()
            return [_info(row) for row in rows], total

    def get(self, timer_id: int) -> TimerInfo:
        with self.database.read() as session:
            row = session.get(Timer, timer_id)
            if row is None:
                raise NotFound(f"there is no timer {timer_id}")
            return _info(row)

    def retry(self, principal: Principal, timer_id: int) -> TimerInfo:
        """Put a failed timer back in the queue (resolves its open timer incident)."""
        if not principal.is_admin:
            raise Forbidden("retrying a timer needs an administrator")
        now = self.clock.now()
        with self.database.transaction() as session:
            row = session.get(Timer, timer_id)
            if row is None:
                raise NotFound(f"there is no timer {timer_id}")
            if row.status != FAILED:
                raise Conflict(f"timer {timer_id} is {row.status}, not failed")
            row.status, row.attempts, row.next_attempt_at = WAITING, 0, None
            row.lock_owner, row.lock_until = None, None
            if row.instance_id:
                session.execute(update(Incident).where(
                    Incident.instance_id == row.instance_id, Incident.kind == "timer",
                    Incident.element_id == row.element_id, Incident.resolved_at.is_(None),
                ).values(resolved_at=now, resolved_by=principal.username))
            return _info(row)

    # -- firing -----------------------------------------------------------------------------------
    def fire_due(self, now: datetime | None = None, *, batch: int | None = None) -> FireReport:
        """Fire every timer due at ``now`` (default: the clock), ``batch`` rows per claim, until none is left.

        Timers of one instance fire in due order, one per round: a timer that fell due long ago
        (a server that was down) first fires its earlier occurrences — three daily reminders, then the
        five-day escalation — never the other way round.
        """
        batch = batch or self.settings.timer_batch_size
        report = FireReport()
        passed: set[int] = set()  # released after a conflict or skipped: not again in this pass
        while True:
            at = now or self.clock.now()
            claims = self._claim(at, batch, exclude=passed)
            if not claims:
                return report
            fired_in: set[str] = set()
            for claim in claims:
                if claim.instance_id is not None and claim.instance_id in fired_in:
                    self._release(claim)  # its instance moved on: claim it again next round
                    continue
                result = self._fire(claim, at)
                if result.retried or result.skipped:
                    passed.add(claim.id)  # not again in this pass: no spinning on a row that will not go
                report.add(result)
                if claim.instance_id is not None:
                    fired_in.add(claim.instance_id)

    def _claim(self, now: datetime, limit: int, *, exclude: set[int] | None = None) -> list[_Claim]:
        """Lease up to ``limit`` due rows to this process (one short transaction)."""
        with self.database.transaction() as session:
            query = select(Timer).where(self._due_condition(now))
            if exclude:
                query = query.where(Timer.id.notin_(exclude))
            query = query.order_by(Timer.due_at, Timer.id).limit(limit)
            if not self.database.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            claims = []
            for row in session.scalars(query).all():
                row.lock_owner, row.lock_until = self.owner, now + LEASE
                claims.append(_Claim(row.id, row.kind, row.instance_id, row.definition_id, row.spiff_task_id,
                                     row.element_id, row.expression, row.due_at, row.attempts))
            return claims

    def _fire(self, claim: _Claim, now: datetime) -> FireReport:
        """Fire one claimed timer as its own command; on failure settle its row."""
        report = FireReport()
        try:
            with measured_command("fire-timer"):
                if claim.kind == START and claim.instance_id is None:
                    report.started.append(self.start_timers.fire(claim, now))
                else:
                    self._fire_instance_timer(claim)
        except StaleTimer as stale:
            self._settle_stale(claim, stale)
            report.skipped += 1
        except Conflict as conflict:
            if conflict.extra.get("status"):  # the instance is failed, suspended or ended: not now
                failed = self._settle_failure(claim, conflict, now)
                report.failed += int(failed)
                report.retried += int(not failed)
            else:  # a concurrent command changed the instance first: take the timer again
                self._release(claim)
                report.retried += 1
        except Exception as error:  # noqa: BLE001 - every failure is recorded on the row, never lost
            log.warning("timer %s (%s) failed: %s", claim.id, claim.element_id, error, exc_info=True)
            failed = self._settle_failure(claim, error, now)
            report.failed += int(failed)
            report.retried += int(not failed)
        else:
            report.fired += 1
            TIMER_LATENESS.labels(kind=claim.kind).observe(max((self.clock.now() - claim.due_at).total_seconds(), 0))
        return report

    def _fire_instance_timer(self, claim: _Claim) -> None:
        """One command: restore at the due time, check the row and the Spiff timer inside the command's
        transaction (a second firing finds them already moved on), let the engine fire it and run on.
        The command's reconcile marks the row fired (or moves a cycle to its next due time) and
        writes the timer-fired audit event with actor ``system:timer``."""

        def fire(command) -> bool:
            row = self._locked_row(command.session, claim.id, instance_id=claim.instance_id)
            if row is None or row.status != WAITING or row.due_at != claim.due_at:
                raise StaleTimer(f"timer {claim.id} was fired or changed by someone else")  # rolls back
            row.attempts, row.next_attempt_at, row.last_error = 0, None, None
            row.lock_owner, row.lock_until = None, None
            task = find_task(command.workflow, claim.spiff_task_id)
            due = timer_due(task) if task is not None and task.state == _waiting_state() else None
            if due is None or due > claim.due_at:
                # the row did not match the instance (it should not happen): run nothing, and let this
                # command's reconcile correct the row from the Spiff state — never drop a waiting timer
                command.run_engine = False
                row.next_attempt_at = self.clock.now() + self.backoff(1)  # not again at once if unchanged
                row.last_error = f"the timer task was not due at {claim.due_at.isoformat()} (due {due})"
                return False
            return True  # the command's refresh_timers() fires it: its clock reads the due time

        fired = self.instances.runner.run(claim.instance_id, fire, actor=events.ACTOR_TIMER, now=claim.due_at)
        if not fired:
            raise StaleTimer(f"{claim.element_id}: the timer row was out of date and has been corrected")

    def _locked_row(self, session: Session, timer_id: int, *, instance_id: str | None = None) -> Timer | None:
        """The timer row, locked for this transaction (lock order: instance row, then timer row)."""
        if self.database.is_sqlite:  # BEGIN IMMEDIATE: this transaction is the only writer
            return session.get(Timer, timer_id)
        if instance_id is not None:
            session.execute(select(ProcessInstance.id).where(ProcessInstance.id == instance_id).with_for_update())
        return session.scalars(select(Timer).where(Timer.id == timer_id).with_for_update()).first()

    def _settle_stale(self, claim: _Claim, stale: StaleTimer) -> None:
        """Someone else fired or corrected the row: give the lease back (or close an obsolete schedule)."""
        log.debug("timer %s skipped: %s", claim.id, stale)
        if not stale.cancel:
            self._release(claim)
            return
        with self.database.transaction() as session:
            session.execute(update(Timer).where(Timer.id == claim.id, Timer.status == WAITING).values(
                status=CANCELLED, last_error=str(stale), lock_owner=None, lock_until=None))

    def _release(self, claim: _Claim) -> None:
        with self.database.transaction() as session:
            session.execute(update(Timer).where(Timer.id == claim.id, Timer.lock_owner == self.owner)
                            .values(lock_owner=None, lock_until=None))

    def _settle_failure(self, claim: _Claim, error: Exception, now: datetime) -> bool:
        """Count a failed attempt: back off, or give up with an incident. True when it gave up."""
        message = _describe(error)
        with self.database.transaction() as session:
            row = session.get(Timer, claim.id)
            if row is None:
                return False
            row.attempts += 1
            row.last_error = message[:4000]
            if row.lock_owner == self.owner:
                row.lock_owner, row.lock_until = None, None
            if row.attempts < self.max_attempts:
                row.next_attempt_at = now + self.backoff(row.attempts)
                return False
            row.status = FAILED
            row.next_attempt_at = None
            self._open_incident(session, row, message, now)
            return True

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failure: base, 2·base, 4·base … capped at one hour."""
        return outbox.backoff(attempts, self.backoff_seconds)

    def _open_incident(self, session: Session, row: Timer, message: str, now: datetime) -> None:
        text = f"timer {row.element_id} failed {row.attempts} times: {message}"
        payload = {"timer_id": row.id, "element_id": row.element_id, "kind": row.kind, "error": message,
                   "attempts": row.attempts}
        definition = None
        if row.instance_id:
            session.add(Incident(instance_id=row.instance_id, kind="timer", element_id=row.element_id,
                                 message=text, created_at=now))
            instance = session.get(ProcessInstance, row.instance_id)
            definition = instance.definition if instance is not None else None
        elif row.definition_id:
            definition = session.get(ProcessDefinition, row.definition_id)
        if definition is not None:
            payload.update(process_key=definition.key, process_version=definition.version)
        record(session, events.INSTANCE_FAILED, actor=events.ACTOR_TIMER, timestamp=now,
               instance_id=row.instance_id, definition_key=definition.key if definition else None,
               definition_version=definition.version if definition else None, element_id=row.element_id,
               element_type="timer", data={"incident": "timer", "message": text})
        recipients = list(session.scalars(select(User.username).where(User.is_admin.is_(True), User.active.is_(True))))
        if definition is not None and definition.owner:
            recipients.append(definition.owner)
        outbox.enqueue(session, outbox.TIMER_INCIDENT, recipients=recipients, payload=payload, now=now,
                       instance_id=row.instance_id)


def find_task(workflow, spiff_task_id: str | None):
    """The Spiff task with this id in the workflow or any of its sub-workflows (None when gone)."""
    if not spiff_task_id:
        return None
    try:
        task_id = uuid.UUID(str(spiff_task_id))
    except ValueError:
        return None
    if task_id in workflow.tasks:
        return workflow.tasks[task_id]
    for subprocess in getattr(workflow, "subprocesses", {}).values():
        if task_id in subprocess.tasks:
            return subprocess.tasks[task_id]
    return None


def fire_start_event(task) -> None:
    """Let a waiting timer start event go on at once. Spiff predicts no outgoing path for a cycle
    timer (each repetition adds one when it fires), so the path is added here as a repetition would."""
    from SpiffWorkflow.util.task import TaskState

    if not task.children:
        for output in task.task_spec.outputs:
            child = task._add_child(output, TaskState.FUTURE)
            child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
    task._set_internal_data(event_fired=True)
    task.task_spec._update(task)


def _waiting_state():
    from SpiffWorkflow.util.task import TaskState

    return TaskState.WAITING


def _describe(error: Exception) -> str:
    if isinstance(error, BpmnServerError):
        return error.detail
    return f"{type(error).__name__}: {error}"


# -- timer start events ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StartTimerSpec:
    """A timer start event of a process version: element, BPMN kind and text."""

    element_id: str
    kind: str  # timeDate, timeDuration, timeCycle
    text: str


class StartTimers:
    """Schedules of timer start events: one ``start`` row per event of each process key's latest,
    not retired, executable version; firing one starts an instance and schedules the next occurrence."""

    def __init__(self, timers: TimerService) -> None:
        self.timers = timers
        self._specs: dict[int, list[StartTimerSpec]] = {}

    def specs_of(self, definition: ProcessDefinition) -> list[StartTimerSpec]:
        """The timer start events at the top level of a definition's process (cached per version)."""
        cached = self._specs.get(definition.id)
        if cached is not None:
            return cached
        from ..parser.namespaces import q

        found: list[StartTimerSpec] = []
        document = self.timers.definitions.document_of(definition)
        for process in document.process_elements:
            if process.get("id") != definition.key:
                continue
            for start in process.findall(q("startEvent")):
                definition_node = start.find(q("timerEventDefinition"))
                if definition_node is None:
                    continue
                for kind in ("timeDate", "timeDuration", "timeCycle"):
                    node = definition_node.find(q(kind))
                    if node is not None and (node.text or "").strip():
                        found.append(StartTimerSpec(start.get("id") or "", kind, node.text.strip()))
                        break
        self._specs[definition.id] = found
        return found

    def next_due(self, spec: StartTimerSpec, after: datetime, fired: int, started: datetime) -> datetime | None:
        """The next occurrence of a start timer strictly after ``after`` (None when it is done)."""
        try:
            parsed = parse_timer(spec.text, spec.kind)
        except TimerTextError:
            return None
        if parsed.is_expression:
            return None  # no instance data to evaluate against: the validator reports it
        if spec.kind == "timeDuration":
            return parsed.next_due(started, 0, started) if fired == 0 else None
        due = parsed.next_due(after, fired, started)
        if spec.kind == "timeDate" and fired > 0:
            return None
        return due

    def sync(self, now: datetime | None = None) -> int:
        """Make the ``start`` rows match the deployed versions: each latest non-retired executable
        version with a timer start event has its rows; older or retired versions have none waiting.
        Returns the number of rows created or cancelled."""
        now = now or self.timers.clock.now()
        changed = 0
        with self.timers.database.transaction() as session:
            if not self.timers.database.is_sqlite:  # one sync at a time across nodes: no duplicate schedules
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})
            latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
                      .where(ProcessDefinition.retired_at.is_(None), ProcessDefinition.executable.is_(True))
                      .group_by(ProcessDefinition.key).subquery())
            current = session.scalars(select(ProcessDefinition).join(
                latest, (latest.c.key == ProcessDefinition.key) & (latest.c.version == ProcessDefinition.version)
            ).where(ProcessDefinition.error_count == 0)).all()
            wanted: dict[tuple[int, str], tuple[ProcessDefinition, StartTimerSpec]] = {}
            for definition in current:
                try:
                    specs = self.specs_of(definition)
                except Exception:  # noqa: BLE001 - an unreadable model simply has no start timers
                    continue
                for spec in specs:
                    wanted[(definition.id, spec.element_id)] = (definition, spec)
            existing = session.scalars(select(Timer).where(Timer.kind == START, Timer.instance_id.is_(None),
                                                          Timer.status == WAITING)).all()
            have = set()
            for row in existing:
                key = (row.definition_id, row.element_id)
                if key in wanted and key not in have:
                    have.add(key)
                    continue
                row.status, row.last_error = CANCELLED, "a newer version was deployed or this one was retired"
                changed += 1
            for key, (definition, spec) in wanted.items():
                if key in have:
                    continue
                if self._exhausted(session, definition.id, spec.element_id):
                    continue
                due = self.next_due(spec, now, 0, now)
                if due is None:
                    continue
                session.add(Timer(definition_id=definition.id, element_id=spec.element_id, kind=START,
                                  expression=f"{spec.kind}:{spec.text}", due_at=due, status=WAITING,
                                  created_at=now))
                changed += 1
        return changed

    @staticmethod
    def _exhausted(session: Session, definition_id: int, element_id: str) -> bool:
        """A one-shot start timer (date, duration) of this version that already fired is done."""
        return session.scalar(select(func.count()).select_from(Timer).where(
            Timer.kind == START, Timer.instance_id.is_(None), Timer.definition_id == definition_id,
            Timer.element_id == element_id, Timer.status == FIRED)) > 0

    def fire(self, claim: _Claim, now: datetime) -> str:
        """Start one instance for a due start timer and schedule the next occurrence, in one command:
        the row is checked and marked fired in the transaction that starts the instance, so an
        occurrence starts exactly one instance. Returns the new instance id."""
        with self.timers.database.read() as session:
            definition = session.get(ProcessDefinition, claim.definition_id)
            if definition is None or definition.retired_at is not None:
                raise StaleTimer("the process version was retired", cancel=True)
            newer = session.scalar(select(func.count()).select_from(ProcessDefinition).where(
                ProcessDefinition.key == definition.key, ProcessDefinition.version > definition.version,
                ProcessDefinition.retired_at.is_(None), ProcessDefinition.executable.is_(True)))
            if newer:
                raise StaleTimer("a newer version of the process was deployed", cancel=True)

        def start(command) -> None:
            row = self.timers._locked_row(command.session, claim.id)
            if row is None or row.status != WAITING or row.due_at != claim.due_at:
                raise StaleTimer(f"start timer {claim.id} was fired or changed by someone else")
            workflow = command.workflow
            workflow.do_engine_steps()
            for task in workflow.get_tasks(state=_waiting_state()):
                if task.task_spec.bpmn_id == claim.element_id:
                    fire_start_event(task)
            self._schedule_next(command.session, row, claim, now)
            command.audit(events.TIMER_FIRED, element_id=claim.element_id, element_type="startEvent",
                          data={"timer_id": claim.id, "kind": START, "due_at": claim.due_at,
                                "fire_count": row.fire_count})

        command = self.timers.instances.runner.start(definition, actor=events.ACTOR_TIMER, action=start,
                                                     now=claim.due_at)
        return command.instance.id

    def _schedule_next(self, session: Session, row: Timer, claim: _Claim, now: datetime) -> None:
        """Mark the occurrence fired and add the row of the next one (missed periods fire once, not N times)."""
        kind, _, text = (claim.expression or "").partition(":")
        spec = StartTimerSpec(claim.element_id, kind, text)
        same = (Timer.kind == START, Timer.instance_id.is_(None), Timer.definition_id == claim.definition_id, Timer.element_id == claim.element_id)
        first = session.scalar(select(func.min(Timer.created_at)).where(*same))
        fired = (session.scalar(select(func.count()).select_from(Timer).where(*same, Timer.status == FIRED)) or 0) + 1
        row.status, row.fired_at, row.fire_count = FIRED, now, row.fire_count + 1
        row.lock_owner, row.lock_until, row.attempts, row.next_attempt_at, row.last_error = None, None, 0, None, None
        after = max(claim.due_at, now) if _unbounded(spec) else claim.due_at
        due = self.next_due(spec, after, fired, first or claim.due_at)
        if due is not None:
            session.add(Timer(definition_id=claim.definition_id, element_id=claim.element_id, kind=START,
                              expression=claim.expression, due_at=due, status=WAITING, created_at=now))


def _unbounded(spec: StartTimerSpec) -> bool:
    try:
        return parse_timer(spec.text, spec.kind).repetitions is None
    except TimerTextError:
        return False
