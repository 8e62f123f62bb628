"""What a command means for people: notifications, reminders, escalations and task due dates.

``PeopleListener`` runs inside every command (a ``CommandRunner`` listener: after the projections
are reconciled, before the audit events are written), so everything it writes — outbox rows, a
withdrawn task's reason, the ``task-escalated`` audit event — commits or rolls back with the command.

Standard BPMN carries the meaning:

* a **non-interrupting timer** on a user task (``R3/P1D``) is a *reminder*: each firing notifies
  the assignee and the candidates; the task stays open;
* an **interrupting timer** (``P5D``) or **escalation** boundary event is an *escalation*: the task
  is withdrawn with the reason on the task and in the history, and the flow goes on to whoever the
  model routes it to (whose new task notifies them as usual);
* a task without ``camunda:dueDate`` is due when its earliest interrupting timer fires.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import EscalationEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.util.task import TaskState

from ..audit import events
from ..parser.spec import timer_due
from ..store.models import HumanTask
from . import outbox
from .commands import Command, event_definition_of
from .projection import OPEN_STATUSES, load_open_tasks

_CATCH_EVENTS = frozenset({events.TIMER_FIRED, events.ELEMENT_COMPLETED, events.MESSAGE_RECEIVED,
                           events.SIGNAL_RECEIVED})


def task_recipients(row: HumanTask) -> list[str]:
    """Who hears about a task: its assignee, candidate users and candidate groups."""
    recipients = [row.assignee] if row.assignee else []
    recipients += list(row.candidate_users or [])
    recipients += [outbox.GROUP_PREFIX + group for group in row.candidate_groups or []]
    return recipients


def task_payload(command: Command, row: HumanTask, **extra: Any) -> dict[str, Any]:
    payload = {
        "task_id": row.id,
        "task": row.name,
        "element_id": row.element_id,
        "process_key": command.definition.key,
        "process_version": command.definition.version,
        "business_key": command.instance.business_key,
        "assignee": row.assignee,
        "candidate_groups": list(row.candidate_groups or []),
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "url": f"/tasks/{row.id}",
    }
    payload.update(extra)
    return payload


def notify_task_assigned(session, row: HumanTask, *, by: str, now) -> None:
    """Tell a person that someone handed them a task (``TaskService.assign``, outside the engine)."""
    if not row.assignee or row.assignee == by:
        return
    outbox.enqueue(session, outbox.TASK_ASSIGNED, recipients=[row.assignee], payload={
        "task_id": row.id, "task": row.name, "element_id": row.element_id, "process_key": row.process_key,
        "assignee": row.assignee, "by": by, "due_at": row.due_at.isoformat() if row.due_at else None,
        "url": f"/tasks/{row.id}",
    }, now=now, instance_id=row.instance_id, task_id=row.id)


class PeopleListener:
    """The command listener that turns a command's events into notifications and escalations."""

    def __call__(self, command: Command) -> None:
        caught = any(e["event_type"] in _CATCH_EVENTS for e in command.events)
        fired = _fired_boundaries(command, _boundary_events(command)) if caught else []
        for event in list(command.events):
            kind = event["event_type"]
            if kind == events.TASK_CREATED:
                self._task_created(command, event)
            elif kind == events.TASK_ASSIGNED:
                self._task_assigned(command, event)
            elif kind == events.TASK_CANCELLED:
                self._task_withdrawn(command, event, fired)
            elif kind == events.INSTANCE_FAILED:
                self._instance_failed(command, event)
        for boundary, _attached in fired:
            if not boundary.cancel_activity and isinstance(event_definition_of(boundary), TimerEventDefinition):
                self._remind(command, boundary)

    # -- tasks -------------------------------------------------------------------------------------
    def _task_created(self, command: Command, event: dict[str, Any]) -> None:
        row = _task_row(command, event)
        if row is None:
            return
        if row.due_at is None:
            row.due_at = _deadline_of(command, row)
            if row.due_at is not None:
                event.setdefault("data", {})["due_at"] = row.due_at
        recipients = [r for r in task_recipients(row) if r != row.assignee]  # the assignee hears "assigned"
        if recipients:
            outbox.enqueue(command.session, outbox.TASK_CREATED, recipients=recipients,
                           payload=task_payload(command, row), now=command.now,
                           instance_id=command.instance.id, task_id=row.id)

    def _task_assigned(self, command: Command, event: dict[str, Any]) -> None:
        row = _task_row(command, event)
        assignee = (event.get("data") or {}).get("assignee") or (row.assignee if row is not None else None)
        if row is None or not assignee:
            return
        outbox.enqueue(command.session, outbox.TASK_ASSIGNED, recipients=[assignee],
                       payload=task_payload(command, row, by=(event.get("data") or {}).get("by")),
                       now=command.now, instance_id=command.instance.id, task_id=row.id)

    def _task_withdrawn(self, command: Command, event: dict[str, Any], fired) -> None:
        """A task cancelled by an interrupting timer or escalation is an escalation: say so everywhere."""
        row = _task_row(command, event)
        if row is None:
            return
        for boundary, attached in fired:
            if not boundary.cancel_activity or not _within(command, row, attached):
                continue
            reason = escalation_reason(boundary)
            row.outcome = reason
            event.setdefault("data", {})["reason"] = reason
            if not is_escalation(boundary):
                return  # a message, signal or error took the task away: the reason says which
            command.audit(events.TASK_ESCALATED, element_id=row.element_id, element_name=row.name,
                          element_type="userTask", group=event.get("group"),
                          data={"task_id": row.id, "reason": reason, "by": boundary.bpmn_id,
                                "assignee": row.assignee})
            outbox.enqueue(command.session, outbox.TASK_ESCALATED, recipients=task_recipients(row),
                           payload=task_payload(command, row, reason=reason, event=boundary.bpmn_id),
                           now=command.now, instance_id=command.instance.id, task_id=row.id)
            return

    def _remind(self, command: Command, boundary: Any) -> None:
        """A non-interrupting timer on an open human task fired: remind its people."""
        attached = _attached_element(command, boundary)
        rows = [row for row in load_open_tasks(command)  # as this command left them (not yet stored)
                if row.element_id == attached and row.status in OPEN_STATUSES]
        for row in rows:
            outbox.enqueue(command.session, outbox.TASK_REMINDER, recipients=task_recipients(row),
                           payload=task_payload(command, row, reminder=boundary.bpmn_name or boundary.bpmn_id),
                           now=command.now, instance_id=command.instance.id, task_id=row.id)

    def _instance_failed(self, command: Command, event: dict[str, Any]) -> None:
        recipients = [command.definition.owner] if command.definition.owner else []
        if command.instance.started_by and not events.is_system_actor(command.instance.started_by):
            recipients.append(command.instance.started_by)
        data = event.get("data") or {}
        outbox.enqueue(command.session, outbox.INSTANCE_FAILED, recipients=recipients, payload={
            "process_key": command.definition.key, "process_version": command.definition.version,
            "business_key": command.instance.business_key, "element_id": event.get("element_id"),
            "message": data.get("message"), "url": f"/instances/{command.instance.id}",
        }, now=command.now, instance_id=command.instance.id)


def is_escalation(boundary: Any) -> bool:
    """An interrupting timer (a deadline) or an escalation event: the task escalates."""
    return isinstance(event_definition_of(boundary), TimerEventDefinition | EscalationEventDefinition)


def escalation_reason(boundary: Any) -> str:
    """The reason a withdrawn task shows: which event took it away, and after how long."""
    name = boundary.bpmn_name or boundary.bpmn_id
    definition = event_definition_of(boundary)
    if isinstance(definition, TimerEventDefinition):
        return f"escalated: the deadline '{name}' ({definition.expression}) passed; the task was withdrawn"
    if isinstance(definition, EscalationEventDefinition):
        return f"escalated by '{name}'; the task was withdrawn"
    return f"withdrawn: the event '{name}' interrupted the task"


def _task_row(command: Command, event: dict[str, Any]) -> HumanTask | None:
    """The row of the task an event is about. Task events in a command come from reconcile, about the
    tasks it created (``command.new_tasks``) or the open tasks it read (``command.open_tasks``), so the
    row is always one of those, as this command left it (not stored yet)."""
    task_id = (event.get("data") or {}).get("task_id")
    return next((row for row in (*command.new_tasks, *(command.open_tasks or ())) if row.id == task_id), None)


def _within(command: Command, row: HumanTask, element_id: str) -> bool:
    """True when the task is the activity ``element_id`` or runs inside that (sub-process) activity."""
    if row.element_id == element_id:
        return True
    from uuid import UUID

    top = command.workflow
    try:
        task = top.get_task_from_id(UUID(row.spiff_task_id))
    except Exception:  # noqa: BLE001 - Spiff raises TaskNotFoundException for unknown ids
        return False
    workflow = task.workflow
    while workflow is not top and getattr(workflow, "parent_task_id", None) is not None:
        try:
            parent = top.get_task_from_id(workflow.parent_task_id)
        except Exception:  # noqa: BLE001
            return False
        if parent.task_spec.bpmn_id == element_id:
            return True
        workflow = parent.workflow
    return False


def _boundary_events(command: Command) -> dict[str, tuple[Any, str]]:
    """Boundary event specs of the instance's processes: bpmn id -> (spec, attached activity id)."""
    found: dict[str, tuple[Any, str]] = {}
    workflow = command.workflow
    specs = [workflow.spec, *getattr(workflow, "subprocess_specs", {}).values()]
    for spec in specs:
        for task_spec in spec.task_specs.values():
            outputs = getattr(task_spec, "outputs", [])
            boundary = [o for o in outputs if isinstance(o, BoundaryEvent)]
            main = [o for o in outputs if not isinstance(o, BoundaryEvent)]
            if boundary and len(main) == 1:
                for event in boundary:
                    found[event.bpmn_id] = (event, main[0].bpmn_id)
    return found


def _attached_element(command: Command, boundary: Any) -> str | None:
    return _boundary_events(command).get(boundary.bpmn_id, (None, None))[1]


def _fired_boundaries(command: Command, boundaries: dict[str, tuple[Any, str]]) -> list[tuple[Any, str]]:
    """Boundary events that fired in this command (timer-fired, or completed catch of any kind)."""
    fired = []
    for event in command.events:
        if event["event_type"] not in _CATCH_EVENTS:
            continue
        entry = boundaries.get(event.get("element_id") or "")
        if entry is not None and entry not in fired:
            fired.append(entry)
    return fired


def _deadline_of(command: Command, row: HumanTask):
    """The earliest interrupting timer attached to the task, as its due date."""
    from uuid import UUID

    try:
        task = command.workflow.get_task_from_id(UUID(row.spiff_task_id))
    except Exception:  # noqa: BLE001 - Spiff raises TaskNotFoundException for unknown ids
        return None
    parent = task.parent
    if parent is None:
        return None
    dues = []
    for sibling in parent.children:
        spec = sibling.task_spec
        if (isinstance(spec, BoundaryEvent) and spec.cancel_activity and sibling.state == TaskState.WAITING
                and isinstance(event_definition_of(spec), TimerEventDefinition)):
            due = timer_due(sibling)
            if due is not None:
                dues.append(due)
    return min(dues) if dues else None
