"""The audit vocabulary: every event type the server records, and the XES lifecycle transition of each.

Transitions are those of the XES lifecycle extension's standard model (IEEE 1849-2016, §7.2):
schedule, assign, reassign, start, suspend, resume, complete, autoskip, manualskip, withdraw,
ate_abort, pi_abort. docs/audit.md explains each mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

# XES lifecycle transitions (standard model)
SCHEDULE = "schedule"
ASSIGN = "assign"
REASSIGN = "reassign"
START = "start"
SUSPEND = "suspend"
RESUME = "resume"
COMPLETE = "complete"
AUTOSKIP = "autoskip"
MANUALSKIP = "manualskip"
WITHDRAW = "withdraw"
ATE_ABORT = "ate_abort"
PI_ABORT = "pi_abort"

TRANSITIONS = frozenset(
    {SCHEDULE, ASSIGN, REASSIGN, START, SUSPEND, RESUME, COMPLETE, AUTOSKIP, MANUALSKIP, WITHDRAW,
     ATE_ABORT, PI_ABORT}
)

# Actors that are not people
ACTOR_SYSTEM = "system"
ACTOR_TIMER = "system:timer"
ACTOR_MESSAGE = "system:message"
ACTOR_SIGNAL = "system:signal"
ACTOR_ENGINE = "system:engine"


@dataclass(frozen=True)
class EventType:
    """One kind of audit event.

    ``activity`` is true when the event is a step in the life of a BPMN element (a task, a catch
    event): the XES export then names it after the element, so that "Approve invoice" schedule /
    start / complete group into one activity. Other events are named after their type.
    """

    name: str
    transition: str
    activity: bool
    summary: str


# Process instances
INSTANCE_STARTED = "instance-started"
INSTANCE_COMPLETED = "instance-completed"
INSTANCE_TERMINATED = "instance-terminated"
INSTANCE_FAILED = "instance-failed"
INSTANCE_RETRIED = "instance-retried"
INSTANCE_SUSPENDED = "instance-suspended"
INSTANCE_RESUMED = "instance-resumed"
# Human tasks
TASK_CREATED = "task-created"
TASK_ASSIGNED = "task-assigned"
TASK_CLAIMED = "task-claimed"
TASK_UNCLAIMED = "task-unclaimed"
TASK_DELEGATED = "task-delegated"
TASK_COMPLETED = "task-completed"
TASK_CANCELLED = "task-cancelled"
TASK_ESCALATED = "task-escalated"
TASK_UPDATED = "task-updated"
TASK_COMMENTED = "task-commented"
# Engine steps and events from outside
ELEMENT_COMPLETED = "element-completed"
TOKEN_CREATED = "token-created"
TIMER_FIRED = "timer-fired"
MESSAGE_RECEIVED = "message-received"
SIGNAL_RECEIVED = "signal-received"
VARIABLES_CHANGED = "variables-changed"
# Models and SOPs
MODEL_DEPLOYED = "model-deployed"
MODEL_RETIRED = "model-retired"
SOP_PUBLISHED = "sop-published"
# Identity and access
USER_CREATED = "user-created"
USER_UPDATED = "user-updated"
USER_DEACTIVATED = "user-deactivated"
MEMBERSHIP_CHANGED = "membership-changed"
API_TOKEN_CREATED = "api-token-created"
API_TOKEN_REVOKED = "api-token-revoked"
PERMISSION_DENIED = "permission-denied"

_TYPES = (
    EventType(INSTANCE_STARTED, COMPLETE, False, "a process instance was started"),
    EventType(INSTANCE_COMPLETED, COMPLETE, False, "a process instance reached its end"),
    EventType(INSTANCE_TERMINATED, PI_ABORT, False, "a process instance was terminated (cancelled)"),
    EventType(INSTANCE_FAILED, ATE_ABORT, False, "a process instance stopped with an incident"),
    EventType(INSTANCE_RETRIED, RESUME, False, "a failed process instance was retried"),
    EventType(INSTANCE_SUSPENDED, SUSPEND, False, "a process instance was suspended"),
    EventType(INSTANCE_RESUMED, RESUME, False, "a suspended process instance was resumed"),
    EventType(TASK_CREATED, SCHEDULE, True, "a human task became available"),
    EventType(TASK_ASSIGNED, ASSIGN, True, "a human task was assigned to a person by someone else or a rule"),
    EventType(TASK_CLAIMED, START, True, "a performer took a human task to work on it"),
    EventType(TASK_UNCLAIMED, REASSIGN, True, "a performer gave a human task back to its candidates"),
    EventType(TASK_DELEGATED, REASSIGN, True, "a human task was handed to another person"),
    EventType(TASK_COMPLETED, COMPLETE, True, "a human task was completed"),
    EventType(TASK_CANCELLED, WITHDRAW, True, "a human task was withdrawn (ate_abort once it was claimed)"),
    EventType(TASK_ESCALATED, REASSIGN, True, "a human task was escalated to someone else"),
    EventType(TASK_UPDATED, COMPLETE, False, "a human task's priority, due date or candidates changed"),
    EventType(TASK_COMMENTED, COMPLETE, False, "a comment was added to a human task"),
    EventType(ELEMENT_COMPLETED, COMPLETE, True, "an automated element (script, service, event) finished"),
    EventType(TOKEN_CREATED, COMPLETE, False, "a token reached an element"),
    EventType(TIMER_FIRED, COMPLETE, True, "a timer event fired"),
    EventType(MESSAGE_RECEIVED, COMPLETE, True, "a message was correlated to a waiting event"),
    EventType(SIGNAL_RECEIVED, COMPLETE, True, "a signal was delivered to a waiting event"),
    EventType(VARIABLES_CHANGED, COMPLETE, False, "process variables were set or removed"),
    EventType(MODEL_DEPLOYED, COMPLETE, False, "a process model version was deployed"),
    EventType(MODEL_RETIRED, COMPLETE, False, "a process model version was retired"),
    EventType(SOP_PUBLISHED, COMPLETE, False, "the SOP of a process version was published"),
    EventType(USER_CREATED, COMPLETE, False, "a user account was created"),
    EventType(USER_UPDATED, COMPLETE, False, "a user account was changed"),
    EventType(USER_DEACTIVATED, COMPLETE, False, "a user account was deactivated"),
    EventType(MEMBERSHIP_CHANGED, COMPLETE, False, "a user joined or left a group"),
    EventType(API_TOKEN_CREATED, COMPLETE, False, "an API token was issued"),
    EventType(API_TOKEN_REVOKED, COMPLETE, False, "an API token was revoked"),
    EventType(PERMISSION_DENIED, COMPLETE, False, "someone tried something they may not do"),
)

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TYPES}


def event_type(name: str) -> EventType:
    """The vocabulary entry of an event type; ValueError for a name that is not in the vocabulary."""
    try:
        return EVENT_TYPES[name]
    except KeyError:
        raise ValueError(
            f"unknown audit event type {name!r}: add it to bpmn_server/audit/events.py"
        ) from None


def task_cancelled_transition(*, was_claimed: bool) -> str:
    """``withdraw`` for a task nobody had started, ``ate_abort`` for one a performer had claimed."""
    return ATE_ABORT if was_claimed else WITHDRAW


def is_system_actor(actor: str) -> bool:
    """True for ``system`` and ``system:<something>`` actors (timers, messages, the engine)."""
    return actor == ACTOR_SYSTEM or actor.startswith(ACTOR_SYSTEM + ":")


def variables_delta(before: dict, after: dict) -> dict:
    """The ``data`` of a variables-changed event: ``{"set": {name: new value}, "removed": [names]}``."""
    changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
    removed = sorted(k for k in before if k not in after)
    delta: dict = {"set": changed}
    if removed:
        delta["removed"] = removed
    return delta
