"""What the runtime services hand back: plain, detached views of instances, tasks and incidents."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

ACTIVE = "running"
STATUSES = ("running", "waiting", "completed", "terminated", "failed", "suspended")


@dataclass
class Page(Generic[T]):
    """One page of a list, with the total number of matches."""

    items: list[T]
    total: int
    offset: int
    limit: int


@dataclass
class IncidentInfo:
    id: int
    kind: str
    element_id: str | None
    message: str
    line: int | None
    created_at: datetime
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ActivityInfo:
    """An element an instance is currently at (a human task, a timer, a message it waits for…)."""

    element_id: str
    name: str | None
    type: str
    state: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InstanceInfo:
    """A process instance as an integrator follows it."""

    id: str
    definition_key: str
    definition_version: int
    definition_id: int
    business_key: str | None
    status: str
    started_by: str
    started_at: datetime
    ended_at: datetime | None
    row_version: int
    parent_instance_id: str | None = None
    variables: dict[str, Any] | None = None
    activities: list[ActivityInfo] | None = None
    incidents: list[IncidentInfo] = field(default_factory=list)
    replayed: bool = False  # answered from an earlier start with the same Idempotency-Key (not a new instance)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("replayed")
        if self.variables is None:
            data.pop("variables")
        if self.activities is None:
            data.pop("activities")
        return data


@dataclass
class TaskInfo:
    """A human task as a performer's task list and task page show it."""

    id: str
    instance_id: str
    element_id: str
    name: str | None
    process_key: str
    process_version: int | None
    business_key: str | None
    lane: str | None
    candidate_groups: list[str]
    candidate_users: list[str]
    assignee: str | None
    priority: int
    due_at: datetime | None
    follow_up_at: datetime | None
    status: str
    created_at: datetime
    claimed_at: datetime | None
    claimed_by: str | None
    completed_at: datetime | None
    completed_by: str | None
    outcome: str | None
    form: dict[str, Any]
    sop_url: str | None
    row_version: int
    documentation: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CommentInfo:
    id: int
    task_id: str
    author: str
    text: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CorrelationResult:
    """What a correlated message did: the instances it reached or started."""

    message_name: str
    instance_ids: list[str]
    started: bool = False
    replayed: bool = False  # answered from an earlier request with the same Idempotency-Key

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
