"""The one command runner: every change to a process instance is one command in one transaction.

A command loads the instance row, restores its workflow (spec from the engine's cache), applies an
action, lets the engine run until the instance waits, stores the state, reconciles the projections
(``human_task``, ``timer``, ``message_wait``), appends the audit events and commits once. The row
version of ``process_instance`` turns a concurrent update into ``errors.Conflict``; an exception
anywhere rolls everything back. A failing script does not roll back: the instance is stored
``failed`` with an incident, so that an operator can fix the data and retry it.

Lock order inside a command (no deadlocks between commands): instance row → human_task rows →
timer / message_wait rows → audit head. Audit events are therefore written last.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload, lazyload
from sqlalchemy.orm.exc import StaleDataError

from ..audit import events
from ..audit.chain import record, record_many
from ..clock import Clock
from ..errors import BpmnServerError, Conflict, NotFound, PreconditionFailed, ScriptError
from ..store import Database
from ..store.models import Incident, ProcessDefinition, ProcessInstance, new_id
from .compaction import CHECK_EVERY, compact
from .engine import COMMAND_NOW, Engine

log = logging.getLogger(__name__)
T = TypeVar("T")

RUNNING = "running"
WAITING = "waiting"
COMPLETED = "completed"
TERMINATED = "terminated"
FAILED = "failed"
SUSPENDED = "suspended"
ACTIVE = frozenset({RUNNING, WAITING})
# An instance with its definition, but not the deployed file's bytes (only needed to build a spec once).
WITH_DEFINITION = joinedload(ProcessInstance.definition).lazyload(ProcessDefinition.deployment)
ENDED = frozenset({COMPLETED, TERMINATED})


class FixedClock(Clock):
    """The engine clock during one command: every timer in it compares against the same instant."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


# BPMN element type names (as in the XML) of Spiff's task spec classes, most specific first.
_ELEMENT_TYPES = (
    ("UserTask", "userTask"), ("ManualTask", "manualTask"), ("ScriptTask", "scriptTask"),
    ("ServiceTask", "serviceTask"), ("SendTask", "sendTask"), ("ReceiveTask", "receiveTask"),
    ("BusinessRuleTask", "businessRuleTask"), ("CallActivity", "callActivity"),
    ("TransactionSubprocess", "transaction"), ("SubWorkflowTask", "subProcess"),
    ("ComplexGateway", "complexGateway"),
    ("ExclusiveGateway", "exclusiveGateway"), ("ParallelGateway", "parallelGateway"),
    ("InclusiveGateway", "inclusiveGateway"), ("EventBasedGateway", "eventBasedGateway"),
    ("StartEvent", "startEvent"), ("EndEvent", "endEvent"), ("BoundaryEvent", "boundaryEvent"),
    ("IntermediateCatchEvent", "intermediateCatchEvent"), ("IntermediateThrowEvent", "intermediateThrowEvent"),
    ("NoneTask", "task"),
)


def element_type(task_spec: Any) -> str:
    """The BPMN element name of a task spec (``userTask``, ``exclusiveGateway``…)."""
    names = {cls.__name__ for cls in type(task_spec).__mro__}
    for spiff_name, bpmn_name in _ELEMENT_TYPES:
        if spiff_name in names:
            return bpmn_name
    return type(task_spec).__name__


def is_bpmn_element(task_spec: Any) -> bool:
    """True for specs drawn in the model (Spiff adds internal ones such as ``Start`` and joins)."""
    return bool(getattr(task_spec, "bpmn_id", None))


def event_definition_of(task_spec: Any):
    return getattr(task_spec, "event_definition", None)


def caught_definitions(task_spec: Any) -> list:
    """The event definitions a catching task waits for (an event-based gateway waits for several)."""
    definition = event_definition_of(task_spec)
    if definition is None:
        return []
    return list(getattr(definition, "event_definitions", None) or [definition])


def is_external_catch(task_spec: Any) -> bool:
    """Catch events whose completion is recorded as timer-fired / message- or signal-received."""
    definition = event_definition_of(task_spec)
    return isinstance(definition, TimerEventDefinition | MessageEventDefinition | SignalEventDefinition) and \
        element_type(task_spec) not in ("intermediateThrowEvent", "endEvent", "sendTask")


@dataclass
class InstanceRow:
    """A ``process_instance`` row as a command reads and changes it: plain attributes, written back by
    the runner in one statement (an INSERT for a new instance, else an UPDATE guarded by the row version)."""

    id: str
    definition_id: int
    business_key: str | None
    status: str
    state: dict[str, Any]
    row_version: int
    started_by: str
    started_at: datetime
    ended_at: datetime | None = None
    parent_instance_id: str | None = None


_INSTANCE = ProcessInstance.__table__
_INSERT_INSTANCE = _INSTANCE.insert()  # statements built once: building one costs more than running it
_LOCK_INSTANCE = select(_INSTANCE).where(_INSTANCE.c.id == bindparam("instance_id")).with_for_update()


def update_versioned(session: Session, table, row_id: str, version: int, values: dict[str, Any]) -> int:
    """UPDATE ``values`` of the row ``row_id`` if it is still at ``version``, moving it to the next version,
    which is returned; a row someone else changed first raises StaleDataError (a 409 for the caller)."""
    statement = _versioned_update(table, tuple(values))
    stored = session.connection().execute(statement, {
        **{f"new_{name}": value for name, value in values.items()},
        "row_id": row_id, "read_version": version, "new_row_version": version + 1})
    if stored.rowcount != 1:
        raise StaleDataError(f"{table.name} {row_id} is no longer at version {version}")
    return version + 1


@functools.cache
def _versioned_update(table, columns: tuple[str, ...]):
    """The UPDATE of ``columns`` that ``update_versioned`` runs, built once per table and set of columns
    (a statement built per call costs more than executing it)."""
    return (table.update()
            .where(table.c.id == bindparam("row_id"), table.c.row_version == bindparam("read_version"))
            .values({name: bindparam(f"new_{name}") for name in (*columns, "row_version")}))


@dataclass
class Command:
    """What an action sees while it runs: the session, the instance row, its live workflow, who and when."""

    session: Session
    instance: InstanceRow
    definition: ProcessDefinition
    workflow: BpmnWorkflow
    actor: str
    now: datetime
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None  # set by an action that decides the status itself (terminate, suspend)
    run_engine: bool = True
    failure: Exception | None = None
    data: dict[str, Any] = field(default_factory=dict)  # what the action wants to hand back
    thrown: list[Any] = field(default_factory=list)  # messages/signals for other instances
    created: bool = False  # the instance is inserted by this command (no other transaction sees it)
    open_tasks: list | None = None  # the instance's open task rows once read (projection.load_open_tasks)
    new_tasks: list = field(default_factory=list)  # human_task rows this command created, stored at its end

    def audit(self, event_type: str, **fields: Any) -> None:
        """Queue an audit event of this instance; written after the projections, before commit."""
        entry = {
            "actor": self.actor,
            "timestamp": self.now,
            "instance_id": self.instance.id,
            "definition_key": self.definition.key,
            "definition_version": self.definition.version,
        }
        entry.update(fields)
        self.events.append({"event_type": event_type, **entry})

    def audit_task(self, event_type: str, task: Any, **fields: Any) -> None:
        """Queue an audit event about a Spiff task (element id, name and type filled in)."""
        spec = task.task_spec
        fields.setdefault("element_id", getattr(spec, "bpmn_id", None))
        fields.setdefault("element_name", getattr(spec, "bpmn_name", None))
        fields.setdefault("element_type", element_type(spec))
        lane = getattr(spec, "lane", None)
        if lane and "group" not in fields:
            fields["group"] = lane
        self.audit(event_type, **fields)


class CommandRunner:
    """Runs actions on process instances as commands (see module docstring)."""

    def __init__(self, database: Database, clock: Clock, engine: Engine) -> None:
        self.database = database
        self.clock = clock
        self.engine = engine
        self.listeners: list[Callable[[Command], None]] = []  # called after reconcile, before audit
        self._definitions: dict[int, ProcessDefinition] = {}  # see definition()
        # called after the commit with the messages/signals an instance threw that nothing in it caught
        self.on_thrown: Callable[[Command, list], None] | None = None

    # -- public --------------------------------------------------------------------------------
    def run(
        self,
        instance_id: str,
        action: Callable[[Command], T],
        *,
        actor: str,
        now: datetime | None = None,
        expected_version: int | None = None,
        allowed: frozenset[str] | set[str] = ACTIVE,
    ) -> T:
        """Run ``action`` on an existing instance as one command and return what it returned."""
        now = now or self.clock.now()
        token = COMMAND_NOW.set(now)
        try:
            with self.database.transaction() as session:
                # FOR UPDATE (PostgreSQL): commands on one instance queue up instead of deadlocking on
                # the projection rows; the row-version check still catches writers that skip the lock.
                row = session.connection().execute(_LOCK_INSTANCE, {"instance_id": instance_id}).first()
                if row is None:
                    raise NotFound(f"there is no process instance {instance_id}", instance_id=instance_id)
                instance = InstanceRow(**row._mapping)
                if expected_version is not None and instance.row_version != expected_version:
                    raise PreconditionFailed(
                        f"process instance {instance_id} is at version {instance.row_version}, "
                        f"not {expected_version}: someone changed it first",
                        row_version=instance.row_version,
                    )
                if instance.status not in allowed:
                    raise Conflict(
                        f"process instance {instance_id} is {instance.status}; this is not possible now",
                        status=instance.status, instance_status=instance.status,
                    )
                definition = self.definition(instance.definition_id)
                workflow = self.engine.restore(definition, instance.state, FixedClock(now))
                command = Command(session, instance, definition, workflow, actor, now)
                result = action(command)
                self._finish(command)
        except (StaleDataError, IntegrityError) as err:
            raise Conflict(
                f"process instance {instance_id} was changed by someone else at the same time; "
                "reload it and try again", instance_id=instance_id,
            ) from err
        except OperationalError as err:
            if not is_contention(err):
                raise
            raise Conflict(f"process instance {instance_id} is busy with another change; try again",
                           instance_id=instance_id) from err
        finally:
            COMMAND_NOW.reset(token)
        self._after_commit(command)
        return result

    def start(
        self,
        definition: ProcessDefinition,
        *,
        actor: str,
        business_key: str | None = None,
        variables: dict[str, Any] | None = None,
        action: Callable[[Command], Any] | None = None,
        now: datetime | None = None,
        parent_instance_id: str | None = None,
    ) -> Command:
        """Create an instance of ``definition``, run it to its first wait state, and commit."""
        now = now or self.clock.now()
        variables = dict(variables or {})
        token = COMMAND_NOW.set(now)
        try:
            command = self._start(definition, actor, business_key, variables, action, now, parent_instance_id)
        finally:
            COMMAND_NOW.reset(token)
        self._after_commit(command)
        return command

    def _start(self, definition, actor, business_key, variables, action, now, parent_instance_id) -> Command:
        with self.database.transaction() as session:
            workflow = self.engine.new_workflow(definition, FixedClock(now))
            workflow.task_tree.data.update(variables)
            instance = InstanceRow(
                id=new_id(),
                definition_id=definition.id,
                business_key=business_key,
                status=RUNNING,
                state={},
                row_version=0,  # not stored yet: _store writes version 1
                started_by=actor,
                started_at=now,
                parent_instance_id=parent_instance_id,
            )
            command = Command(session, instance, definition, workflow, actor, now, created=True)
            command.audit(events.INSTANCE_STARTED, data={"business_key": business_key, "variables": variables})
            if action is not None:
                action(command)
            self._finish(command)
        return command

    def _after_commit(self, command: Command) -> None:
        if command.thrown and self.on_thrown is not None:
            self.on_thrown(command, command.thrown)

    # -- the steps after an action ------------------------------------------------------------
    def _finish(self, command: Command) -> None:
        from .projection import reconcile, store_tasks

        instance = command.instance
        workflow = command.workflow
        was = instance.status
        if command.run_engine and command.status is None and was not in (SUSPENDED, *ENDED):
            self.advance(command)
        uncaught = [e for e in workflow.bpmn_events if isinstance(e.event_definition, ErrorEventDefinition)]
        if uncaught and command.failure is None:
            self.fail(command, UncaughtBpmnError(uncaught[0].event_definition))
        instance.status = command.status or self._status_of(command)
        if instance.status in ENDED and instance.ended_at is None:
            instance.ended_at = command.now
        if instance.status == COMPLETED and was != COMPLETED:
            command.audit(events.INSTANCE_COMPLETED)
        command.thrown = [e for e in workflow.get_events()
                          if isinstance(e.event_definition, MessageEventDefinition | SignalEventDefinition)]
        compact(workflow)
        instance.state = self.engine.dump(workflow)
        # the instance row first (its row-version check, and the row the projections refer to), then
        # the projections without intermediate flushes, then one flush before the audit head is locked
        self._store(command)
        reconcile(command)
        for listener in self.listeners:
            listener(command)
        store_tasks(command)
        command.session.flush()
        record_many(command.session, command.events)  # one chained multi-row INSERT, no ORM objects

    @staticmethod
    def _store(command: Command) -> None:
        """Write the instance row: INSERT a new instance, else UPDATE it if it is still at the version
        this command read (another writer got there first: StaleDataError, a 409 for the caller)."""
        instance, session = command.instance, command.session
        with session.no_autoflush:  # the row first: pending rows (an incident) refer to it
            if command.created:  # vars(), not asdict(): asdict would deep-copy the state
                session.connection().execute(_INSERT_INSTANCE, {**vars(instance), "row_version": 1})
                instance.row_version = 1
                return
            instance.row_version = update_versioned(session, _INSTANCE, instance.id, instance.row_version, {
                "status": instance.status, "state": instance.state, "ended_at": instance.ended_at})

    def definition(self, definition_id: int) -> ProcessDefinition:
        """A definition by id, read once per process: the columns starts and commands read (key,
        version, owner, executable, findings) never change after the deploy — whether it is retired
        does, so callers that care read ``retired_at`` themselves. Detached, without its deployment."""
        definition = self._definitions.get(definition_id)
        if definition is None:
            with self.database.read() as session:
                definition = session.get(ProcessDefinition, definition_id,
                                         options=[lazyload(ProcessDefinition.deployment)])
            if definition is None:
                raise NotFound(f"there is no process definition {definition_id}")
            self._definitions[definition_id] = definition
        return definition

    def advance(self, command: Command) -> None:
        """Fire due timers and run engine steps until the instance waits; a failure becomes an incident."""
        workflow = command.workflow

        steps = 0

        def completed(task) -> None:
            nonlocal steps
            spec = task.task_spec
            if is_bpmn_element(spec) and not spec.manual and not is_external_catch(spec):
                command.audit_task(events.ELEMENT_COMPLETED, task)
            steps += 1
            if steps % CHECK_EVERY == 0:  # a long engine run (a loop) must not outgrow Spiff's lookups
                compact(workflow)

        try:
            workflow.refresh_timers()
            workflow.do_engine_steps(did_complete_task=completed)
        except ScriptError as err:
            self.fail(command, err)
        except BpmnServerError:
            raise
        except Exception as err:  # noqa: BLE001 - anything the engine raises stops the instance visibly
            self.fail(command, err)

    def fail(self, command: Command, err: Exception) -> None:
        """Store the instance as failed with an incident naming the element, message and line."""
        task = getattr(err, "task", None)
        spec = getattr(task, "task_spec", None) or getattr(err, "task_spec", None)
        element_id = getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)
        line = getattr(err, "line_number", None) or None
        message = _error_message(err)
        kind = getattr(err, "incident_kind", None) or (
            "script" if isinstance(err, WorkflowTaskException | ScriptError) else "engine")
        if isinstance(err, ScriptError):
            message = err.detail
            element_id = err.extra.get("element_id") or element_id
            line = err.extra.get("line") or line
            if spec is None:
                spec = _failed_spec(command.workflow, element_id)
        if kind == "engine":
            log.warning("engine error in instance %s", command.instance.id, exc_info=err)
        incident = Incident(  # flushed after the instance row is stored (_finish), which its foreign key needs
            instance_id=command.instance.id,
            kind=kind,
            element_id=element_id,
            message=message,
            line=line,
            created_at=command.now,
        )
        command.session.add(incident)
        command.failure = err
        command.status = FAILED
        command.audit(
            events.INSTANCE_FAILED,
            element_id=element_id,
            element_name=getattr(spec, "bpmn_name", None),
            element_type=element_type(spec) if spec is not None else None,
            data={"message": message, "line": line, "kind": kind,
                  "error_type": getattr(err, "error_type", type(err).__name__)},
        )

    @staticmethod
    def _status_of(command: Command) -> str:
        workflow = command.workflow
        if command.failure is not None:
            return FAILED
        if workflow.is_completed():
            return COMPLETED
        if command.instance.status == SUSPENDED:
            return SUSPENDED
        if workflow.get_tasks(state=TaskState.ERROR):
            return FAILED
        if workflow.get_tasks(state=TaskState.READY, manual=True):
            return RUNNING
        return WAITING


def record_denied(database: Database, clock: Clock, actor: str, action: str, error: BpmnServerError, *,
                  instance_id: str | None = None, definition_key: str | None = None,
                  definition_version: int | None = None, element_id: str | None = None,
                  task_id: str | None = None) -> None:
    """Audit ``permission-denied`` in a transaction of its own (the refused command rolls back)."""
    with database.transaction() as session:
        record(session, events.PERMISSION_DENIED, actor=actor, timestamp=clock.now(), instance_id=instance_id,
               definition_key=definition_key, definition_version=definition_version, element_id=element_id,
               data={"action": action, "detail": error.detail, "task_id": task_id})
    error.audited = True


def is_contention(err: OperationalError) -> bool:
    """A deadlock or serialization failure (PostgreSQL) or a lock wait that ran out (SQLite): the
    transaction lost a race and was rolled back; the caller may simply try again."""
    state = getattr(getattr(err, "orig", None), "sqlstate", None)
    return state in ("40P01", "40001", "55P03") or "database is locked" in str(err)


def _failed_spec(workflow, element_id: str | None):
    for task in workflow.get_tasks(state=TaskState.ERROR):
        if element_id is None or task.task_spec.bpmn_id == element_id:
            return task.task_spec
    return None


class UncaughtBpmnError(Exception):
    """A BPMN error (error end or throw event) that no boundary event or event sub-process caught: the
    instance stops as failed with a ``bpmn-error`` incident (as Zeebe does), never silently completes."""

    incident_kind = "bpmn-error"

    def __init__(self, definition: ErrorEventDefinition) -> None:
        code = f" '{definition.code}'" if definition.code else ""
        super().__init__(f"BPMN error{code} ({definition.name}) was thrown and nothing caught it")
        self.code = definition.code


def _error_message(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    error_line = getattr(err, "error_line", None)
    if error_line and error_line not in text:
        text += f" (in: {error_line.strip()})"
    return text[:4000]
