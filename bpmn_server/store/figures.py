"""Operational figures read straight from the projections: what a dashboard or alert watches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import HumanTask, Incident, Outbox, ProcessInstance, Timer


@dataclass(frozen=True)
class Figures:
    """Counts at one moment, on the shared database (so every node reports the same)."""

    instances_by_status: dict[str, int]
    open_tasks: int
    overdue_tasks: int
    waiting_timers: int
    due_timers: int
    open_incidents: int
    outbox_backlog: int


def operational_figures(session: Session, now: datetime) -> Figures:
    """Count instances, open and overdue tasks, waiting and due timers, incidents and the outbox."""
    open_task = HumanTask.status.in_(("open", "claimed"))
    by_status = dict(session.execute(select(ProcessInstance.status, func.count()).group_by(ProcessInstance.status)).all())
    return Figures(
        instances_by_status={str(k): int(v) for k, v in by_status.items()},
        open_tasks=session.scalar(select(func.count()).where(open_task)) or 0,
        overdue_tasks=session.scalar(select(func.count()).where(open_task, HumanTask.due_at < now)) or 0,
        waiting_timers=session.scalar(select(func.count()).where(Timer.status == "waiting")) or 0,
        due_timers=session.scalar(select(func.count()).where(Timer.status == "waiting", Timer.due_at <= now)) or 0,
        open_incidents=session.scalar(select(func.count()).where(Incident.resolved_at.is_(None))) or 0,
        outbox_backlog=session.scalar(select(func.count()).where(Outbox.status == "pending")) or 0,
    )
