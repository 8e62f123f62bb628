"""Projections of the Spiff state, reconciled after every command in the same transaction.

``human_task``: one row per READY user/manual task (with assignment, form and due date evaluated
against the instance data), kept after the task finishes with status completed or cancelled.
``timer``: one row per WAITING timer catch event (the timer worker reads only this table).
``message_wait``: one row per WAITING message or signal catch event (correlation is one query).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..audit import events
from ..parser.spec import Assignment, parse_datetime_utc, timer_due
from ..parser.timer_text import TimerTextError, parse_timer
from ..store.models import HumanTask, MessageWait, TaskCandidateGroup, Timer, new_id
from .commands import Command, caught_definitions, element_type, event_definition_of, update_versioned

log = logging.getLogger(__name__)

OPEN = "open"
CLAIMED = "claimed"
TASK_COMPLETED = "completed"
TASK_CANCELLED = "cancelled"
OPEN_STATUSES = (OPEN, CLAIMED)
DEFAULT_PRIORITY = 50


def reconcile(command: Command) -> None:
    """Bring the human_task, timer and message_wait rows of the instance in line with its workflow."""
    with command.session.no_autoflush:  # one flush at the end of the command, not one per query
        reconcile_human_tasks(command)
        reconcile_timers(command)
        reconcile_message_waits(command)


def _rows(command: Command, query) -> list:
    """The instance's stored rows that ``query`` selects.

    No query when none can exist: these rows are written only here, once per command, so an instance
    this command inserted has none yet (and the foreign key keeps other transactions from adding any
    before the commit). Likewise a process whose model has no timer (message/signal) catch events
    never gets a timer (message_wait) row: reconcile_timers/reconcile_message_waits return at once.
    """
    if command.created:
        return []
    return command.session.scalars(query).all()


_WAITS: WeakKeyDictionary = WeakKeyDictionary()  # process spec -> (has timer catches, has message/signal catches)


def _waits_of(workflow) -> tuple[bool, bool]:
    """Whether the workflow's model (sub-processes and called processes included) has timer catch
    events and message/signal catch events at all; computed once per spec (specs are cached)."""
    spec = workflow.spec
    found = _WAITS.get(spec)
    if found is None:
        timers = catches = False
        for process in (spec, *workflow.subprocess_specs.values()):
            for task_spec in process.task_specs.values():
                timers = timers or _is_timer_catch(task_spec)
                catches = catches or any(isinstance(d, MessageEventDefinition | SignalEventDefinition)
                                         for d in caught_definitions(task_spec))
        found = _WAITS.setdefault(spec, (timers, catches))
    return found


# -- human tasks ---------------------------------------------------------------------------------
def reconcile_human_tasks(command: Command) -> None:
    workflow = command.workflow
    active = command.instance.status not in ("completed", "terminated")
    ready = {}
    if active:
        ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
    rows = load_open_tasks(command)
    known = {row.spiff_task_id for row in rows}
    for row in rows:
        if row.spiff_task_id in ready or row.status not in OPEN_STATUSES:  # (completed by this command)
            continue
        task = _task_or_none(workflow, row.spiff_task_id)
        if task is not None and task.state == TaskState.COMPLETED:
            row.status = TASK_COMPLETED
            row.completed_at = command.now
            row.completed_by = command.actor
            command.audit(events.TASK_COMPLETED, **_task_fields(row), data={"task_id": row.id})
        else:
            was_claimed = row.claimed_at is not None
            row.status = TASK_CANCELLED
            row.outcome = _cancel_reason(command, task)
            command.audit(
                events.TASK_CANCELLED,
                transition=events.task_cancelled_transition(was_claimed=was_claimed),
                **_task_fields(row),
                data={"task_id": row.id, "reason": row.outcome, "assignee": row.assignee},
            )
    for spiff_id, task in ready.items():
        if spiff_id not in known:
            create_human_task(command, task)


def _cancel_reason(command: Command, task: Any) -> str:
    if command.instance.status == "terminated":
        return "the process instance was terminated"
    if task is None:
        return "the task was removed from the process"
    return "interrupted by an event (the process continued elsewhere)"


def _task_or_none(workflow, spiff_task_id: str):
    try:
        return workflow.get_task_from_id(UUID(spiff_task_id))
    except Exception:  # noqa: BLE001 - Spiff raises TaskNotFoundException for unknown ids
        return None


def _task_fields(row: HumanTask) -> dict[str, Any]:
    return {
        "element_id": row.element_id,
        "element_name": row.name,
        "element_type": "userTask",
        "group": row.lane or (row.candidate_groups[0] if row.candidate_groups else None),
    }


class TaskRow(SimpleNamespace):
    """A ``human_task`` row (and whatever else its query selected) as plain, changeable attributes;
    ``store_task`` writes back the columns that changed since it was read. Change a column by
    assigning it: a list or dict changed in place would not be seen as changed."""


def task_row(row: Row) -> TaskRow:
    task = TaskRow(**row._mapping)
    task._read = {name: getattr(row, name) for name in _TASK_COLUMNS}
    return task


def load_open_tasks(command: Command) -> list[TaskRow]:
    """The instance's open and claimed task rows, read once per command (``command.open_tasks``);
    ``store_tasks`` writes back what the command changed in them."""
    if command.open_tasks is None:
        rows = [] if command.created else command.session.execute(  # a new instance has none yet
            _OPEN_TASK_ROWS, {"instance_id": command.instance.id}).all()
        command.open_tasks = [task_row(row) for row in rows]
    return command.open_tasks


def store_task(session: Session, task: TaskRow) -> None:
    """UPDATE the columns of ``task`` that changed since it was read, if it is still at the version read
    (else StaleDataError: someone changed the task meanwhile, a 409 for the caller)."""
    changed = {name: getattr(task, name) for name in _TASK_COLUMNS if getattr(task, name) != task._read[name]}
    if not changed:
        return
    task.row_version = update_versioned(session, _TASKS, task.id, task.row_version, changed)
    task._read = {name: getattr(task, name) for name in _TASK_COLUMNS}


def store_tasks(command: Command) -> None:
    """Write the command's task rows: INSERT the tasks it created (``create_human_task``) with their
    candidate-group index rows, UPDATE the open tasks it changed — Core statements, after the
    listeners have added what they add (a due date, an escalation's outcome)."""
    session = command.session
    with session.no_autoflush:
        for task in command.open_tasks or ():
            store_task(session, task)
        if not command.new_tasks:
            return
        session.connection().execute(_INSERT_TASKS, [{name: getattr(row, name) for name in _TASK_COLUMNS}
                                          for row in command.new_tasks])
        groups = [{"task_id": row.id, "group_name": group} for row in command.new_tasks
                  for group in row.candidate_groups or []]
        if groups:
            session.connection().execute(_INSERT_CANDIDATE_GROUPS, groups)


_TASKS = HumanTask.__table__
_TASK_COLUMNS = tuple(_TASKS.c.keys())
_CANDIDATE_GROUPS = TaskCandidateGroup.__table__
_INSERT_TASKS, _INSERT_CANDIDATE_GROUPS = _TASKS.insert(), _CANDIDATE_GROUPS.insert()
_OPEN_TASK_ROWS = select(_TASKS).where(_TASKS.c.instance_id == bindparam("instance_id"),
                                       _TASKS.c.status.in_(OPEN_STATUSES))


def create_human_task(command: Command, task: Any) -> HumanTask:
    """Make the row of a newly READY user/manual task (``store_tasks`` stores it) and queue its
    audit events."""
    spec = task.task_spec
    assignment: Assignment = getattr(spec, "assignment", None) or Assignment(lane=getattr(spec, "lane", None))
    fields = [f.as_dict() for f in getattr(spec, "form_fields", [])]
    evaluate = _Evaluator(command, task)
    assignee = evaluate.text(assignment.assignee)
    groups = evaluate.names(assignment.candidate_groups)
    users = evaluate.names(assignment.candidate_users)
    for field in fields:  # defaults may be expressions over the instance data
        if isinstance(field.get("default"), str) and "${" in field["default"]:
            field["default"] = evaluate.value(field["default"])
    row = HumanTask(
        id=new_id(),
        instance_id=command.instance.id,
        spiff_task_id=str(task.id),
        element_id=spec.bpmn_id,
        name=spec.bpmn_name or spec.bpmn_id,
        process_key=command.definition.key,
        lane=assignment.lane or getattr(spec, "lane", None),
        candidate_groups=groups,
        candidate_users=users,
        assignee=assignee,
        priority=evaluate.priority(assignment.priority),
        due_at=evaluate.moment(assignment.due_date),
        follow_up_at=evaluate.moment(assignment.follow_up_date),
        form={"key": assignment.form_key, "fields": fields},
        status=OPEN,
        created_at=command.now,
    )
    row.row_version = 1
    command.new_tasks.append(row)  # inserted by store_tasks, after the listeners completed the row
    base = _task_fields(row)
    base["element_type"] = element_type(spec)
    command.audit(events.TASK_CREATED, **base, data={
        "task_id": row.id, "candidate_groups": groups, "candidate_users": users,
        "due_at": row.due_at, "priority": row.priority})
    if assignee:
        command.audit(events.TASK_ASSIGNED, **base, data={"task_id": row.id, "assignee": assignee, "by": "model"})
    return row


class _Evaluator:
    """Assignment values: literals as written, ``${…}`` expressions evaluated against the task's data."""

    def __init__(self, command: Command, task: Any) -> None:
        self.command = command
        self.task = task

    def value(self, text: str | None) -> Any:
        if text is None:
            return None
        stripped = text.strip()
        if not (stripped.startswith("${") or stripped.startswith("#{")):
            return stripped
        try:
            return self.task.workflow.script_engine.evaluate(self.task, stripped)
        except Exception as err:  # noqa: BLE001 - a bad assignment expression must not stop the task
            log.warning("assignment expression %r of %s failed: %s", text, self.task.task_spec.bpmn_id, err)
            return None

    def text(self, text: str | None) -> str | None:
        value = self.value(text)
        return None if value in (None, "") else str(value)

    def names(self, texts: list[str]) -> list[str]:
        names: list[str] = []
        for text in texts:
            value = self.value(text)
            if isinstance(value, str):
                names.extend(part.strip() for part in value.split(",") if part.strip())
            elif isinstance(value, list | tuple | set):
                names.extend(str(v) for v in value if v)
            elif value is not None:
                names.append(str(value))
        return list(dict.fromkeys(names))

    def priority(self, text: str | None) -> int:
        value = self.value(text)
        try:
            return int(value) if value not in (None, "") else DEFAULT_PRIORITY
        except (TypeError, ValueError):
            return DEFAULT_PRIORITY

    def moment(self, text: str | None) -> datetime | None:
        """A due/follow-up date: ISO date-time, ISO duration from now, or an expression giving either."""
        value = self.value(text)
        if value in (None, ""):
            return None
        if isinstance(value, timedelta):
            return self.command.now + value
        if isinstance(value, datetime):
            return parse_datetime_utc(value)
        text = str(value).strip()
        try:
            if text.upper().startswith("P"):
                return parse_timer(text, "timeDuration").next_due(self.command.now)
            return parse_datetime_utc(text)
        except (TimerTextError, ValueError) as err:
            log.warning("due date %r of %s is not a date or duration: %s", text, self.task.task_spec.bpmn_id, err)
            return None


# -- timers --------------------------------------------------------------------------------------
def timer_kind(task_spec: Any) -> str:
    kind = element_type(task_spec)
    if kind == "boundaryEvent":
        return "boundary-interrupting" if getattr(task_spec, "cancel_activity", True) else "boundary-non-interrupting"
    if kind == "startEvent":
        return "start"
    return "intermediate"


def waiting_timers(workflow) -> dict[str, Any]:
    """The WAITING timer catch events of a workflow (sub-processes included), by Spiff task id."""
    return {str(task.id): task for task in workflow.get_tasks(state=TaskState.WAITING) if _is_timer_catch(task.task_spec)}


def _is_timer_catch(task_spec: Any) -> bool:
    definition = event_definition_of(task_spec)
    inner = getattr(definition, "event_definitions", None) or []  # an event-based gateway's events
    return isinstance(definition, TimerEventDefinition) or any(isinstance(d, TimerEventDefinition) for d in inner)


def reconcile_timers(command: Command) -> None:
    if not _waits_of(command.workflow)[0]:
        return  # a model without timer catch events: no timer waits, no rows
    session = command.session
    active = command.instance.status not in ("completed", "terminated")
    suspended = command.instance.status == "suspended"
    waiting = waiting_timers(command.workflow) if active else {}
    rows = _rows(command, select(Timer).where(
        Timer.instance_id == command.instance.id, Timer.status.in_(("waiting", "suspended"))))
    by_task = {row.spiff_task_id: row for row in rows}
    for row in rows:
        if row.status not in ("waiting", "suspended"):  # settled by the action of this command
            continue
        task = waiting.get(row.spiff_task_id)
        if task is None:
            gone = _task_or_none(command.workflow, row.spiff_task_id)
            if gone is not None and gone.state == TaskState.COMPLETED and _timer_fired(gone, command.now):
                row.status = "fired"
                row.fired_at = command.now
                row.fire_count += 1
                _audit_timer(command, gone, row)
            else:
                fired = _cycle_fired(gone) if gone is not None else None
                if fired is not None and fired > row.fire_count:  # a cycle fired once more, then was cancelled
                    row.fire_count = fired
                    row.fired_at = command.now
                    _audit_timer(command, gone, row)
                row.status = "cancelled"
            row.lock_owner = None
            row.lock_until = None
            continue
        fired = _cycle_fired(task)
        if fired is not None and fired > row.fire_count:
            row.fire_count = fired
            row.fired_at = command.now
            _audit_timer(command, task, row)
        due = timer_due(task)
        if due is not None and due != row.due_at:
            row.due_at = due
            row.attempts = 0
            row.last_error = None
        row.status = "suspended" if suspended else "waiting"
    for spiff_id, task in waiting.items():
        if spiff_id in by_task:
            continue
        due = timer_due(task)
        if due is None:
            continue  # not armed yet (Spiff arms a timer when it first looks at it)
        session.add(Timer(
            instance_id=command.instance.id,
            definition_id=command.definition.id,
            spiff_task_id=spiff_id,
            element_id=task.task_spec.bpmn_id or task.task_spec.name,
            kind=timer_kind(task.task_spec),
            expression=getattr(event_definition_of(task.task_spec), "expression", None),
            due_at=due,
            status="suspended" if suspended else "waiting",
            fire_count=_cycle_fired(task) or 0,
            attempts=0,
            created_at=command.now,
        ))


def _timer_fired(task: Any, now: datetime) -> bool:
    """Whether a finished timer task finished because its timer fired: always for a timer event; for
    an event-based gateway only if its timer was due (otherwise another of its events came first)."""
    if isinstance(event_definition_of(task.task_spec), TimerEventDefinition):
        return True
    due = timer_due(task)
    return due is not None and due <= now


def _cycle_fired(task: Any) -> int | None:
    if not isinstance(event_definition_of(task.task_spec), CycleTimerEventDefinition):
        return None
    value = task.internal_data.get("event_value")
    return int(value.get("fired", 0)) if isinstance(value, dict) else 0


def _audit_timer(command: Command, task: Any, row: Timer) -> None:
    command.audit_task(events.TIMER_FIRED, task, data={
        "timer_id": row.id, "kind": row.kind, "due_at": row.due_at, "fire_count": row.fire_count})


# -- message and signal waits --------------------------------------------------------------------
def waiting_catches(workflow) -> list[tuple[str, str, Any]]:
    """(kind, name, task) of every WAITING message or signal catch event."""
    found = []
    for task in workflow.get_tasks(state=TaskState.WAITING):
        for definition in caught_definitions(task.task_spec):
            if isinstance(definition, MessageEventDefinition):
                found.append(("message", definition.name, task))
            elif isinstance(definition, SignalEventDefinition):
                found.append(("signal", definition.name, task))
    return found


def reconcile_message_waits(command: Command) -> None:
    if not _waits_of(command.workflow)[1]:
        return  # a model without message/signal catch events: no waits, no rows
    session = command.session
    active = command.instance.status not in ("completed", "terminated")
    wanted = {}
    if active:
        for kind, name, task in waiting_catches(command.workflow):
            wanted.setdefault((kind, name), task)
    rows = _rows(command, select(MessageWait).where(MessageWait.instance_id == command.instance.id))
    have = {(row.kind, row.message_name): row for row in rows}
    stale = [row.id for key, row in have.items() if key not in wanted]
    if stale:
        session.execute(delete(MessageWait).where(MessageWait.id.in_(stale)))
    correlations = _json_correlations(command.workflow.correlations)
    for key, task in wanted.items():
        row = have.get(key)
        if row is None:
            session.add(MessageWait(
                instance_id=command.instance.id, kind=key[0], message_name=key[1],
                business_key=command.instance.business_key, element_id=task.task_spec.bpmn_id,
                correlation=correlations,
            ))
        elif row.correlation != correlations:
            row.correlation = correlations


def _json_correlations(correlations: dict) -> dict:
    """Spiff's correlations flattened to ``{property: value}`` (keys by correlation key are merged)."""
    flat: dict[str, Any] = {}
    for value in (correlations or {}).values():
        if isinstance(value, dict):
            flat.update({str(k): v for k, v in value.items()})
    return flat
