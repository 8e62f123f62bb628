"""Waking the process up when a timer or a webhook is due. APScheduler holds no truth of its own:
the ``timer`` and ``outbox`` tables do. Timers and webhooks are two independent *lanes* (a dead
webhook receiver, waiting out its timeouts, never delays a timer), each with:

* **wake-up**: one date job at the lane's earliest due time (a timer or its retry; a webhook retry), so
  a 2-second timer fires after about 2 seconds, not at the next poll. Any transaction of this process
  that commits a waiting timer or a pending webhook due earlier moves it forward (a cheap SQLAlchemy
  ``after_commit`` hook, no query). A deploy or retire wakes the timer lane at once, so a new
  version's timer start events are scheduled.
* **watch**: every second, one indexed query for the earliest due time, so timers written by *other*
  processes (web servers next to a ``bpmn-server worker``, other nodes) also get a wake-up on time.
* **sweep**: every ``timer_sweep_seconds`` (and at once on start-up): it catches up everything that
  fell due while the server was down and picks up start timers of new deployments.

The timer lane runs ``StartTimers.sync`` and ``TimerService.fire_due``, the webhook lane
``OutboxService.deliver_webhooks``; one pass at a time per lane and process (a wake-up during a pass
makes the pass go round once more).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..store.models import Outbox, ProcessDefinition, Timer

log = logging.getLogger(__name__)

WAKE_JOB = "bpmn-server-wake"
SWEEP_JOB = "bpmn-server-sweep"
WATCH_JOB = "bpmn-server-watch"
WATCH_SECONDS = 1.0  # how often the earliest due time is read (one indexed query): other processes' timers
_PENDING_KEY = "bpmn_server.earliest_due"


class Lane:
    """One kind of due work (timers, or webhooks): its steps, its next due time and its wake-up job."""

    def __init__(self, scheduler: BackgroundScheduler, name: str, steps: list[tuple[str, Callable[[], Any]]],
                 next_due: Callable[[], datetime | None]) -> None:
        self.scheduler = scheduler
        self.name = name
        self.steps = steps
        self.next_due = next_due
        self.job_id = f"{WAKE_JOB}-{name}"
        self._pass_lock = threading.Lock()
        self._again = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake_at: datetime | None = None

    @property
    def wake_time(self) -> datetime | None:
        job = self.scheduler.get_job(self.job_id)
        return job.next_run_time if job is not None else None

    def run_pass(self) -> None:
        """Run the steps (again while wake-ups arrive meanwhile), then aim the wake-up at what is next."""
        if not self._pass_lock.acquire(blocking=False):
            self._again.set()  # a pass is running: it goes round once more
            return
        try:
            while True:
                self._again.clear()
                for name, step in self.steps:
                    try:
                        step()
                    except Exception:  # noqa: BLE001 - one failing step must not stop the scheduler
                        log.exception("scheduler: %s failed", name)
                if not self._again.is_set():
                    break
        finally:
            self._pass_lock.release()
        self.reschedule()

    def reschedule(self) -> None:
        """Aim the wake-up job at the earliest due work (from the database)."""
        with self._wake_lock:
            self._wake_at = None
        self.watch()

    def watch(self) -> None:
        try:
            due = self.next_due()
        except Exception:  # noqa: BLE001 - a database hiccup: the sweep catches up
            log.debug("scheduler: reading the next %s failed", self.name, exc_info=True)
            return
        if due is not None:
            self.wake(due)

    def wake(self, due: datetime) -> None:
        """Make sure the lane wakes up at ``due`` (earlier wake-ups are kept)."""
        due = due if due.tzinfo else due.replace(tzinfo=UTC)
        with self._wake_lock:
            if self._wake_at is not None and self._wake_at <= due:
                return
            self._wake_at = due
        # a few milliseconds late rather than early: the work must be due when the pass looks
        run_at = due + timedelta(milliseconds=5)
        try:
            # several may be pending while a pass runs: each runs a pass or makes the running one go again
            self.scheduler.add_job(self._woken, "date", run_date=run_at, id=self.job_id, replace_existing=True,
                                   max_instances=8)
        except Exception:  # noqa: BLE001 - scheduler shut down meanwhile
            log.debug("scheduler: could not set the %s wake-up job", self.name, exc_info=True)

    def _woken(self) -> None:
        with self._wake_lock:
            self._wake_at = None
        self.run_pass()


class TimerScheduler:
    """The APScheduler jobs of one server or worker process (see module docstring)."""

    def __init__(self, timers: Any, outbox: Any, *, sweep_seconds: float = 30.0) -> None:
        self.timers = timers
        self.outbox = outbox
        self.database = timers.database
        self.sweep_seconds = sweep_seconds
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                                         "misfire_grace_time": None})
        self.timer_lane = Lane(self.scheduler, "timers", [("start timers", timers.start_timers.sync),
                                                          ("timers", timers.fire_due)], timers.next_due_at)
        self.webhook_lane = Lane(self.scheduler, "webhooks", [("webhooks", outbox.deliver_webhooks)],
                                 outbox.next_delivery_at)
        self._listening = False

    @property
    def lanes(self) -> tuple[Lane, Lane]:
        return self.timer_lane, self.webhook_lane

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, *, paused: bool = False) -> None:
        """Start the jobs: a sweep of each lane at once (catch-up after downtime), then periodically."""
        for lane in self.lanes:
            self.scheduler.add_job(lane.run_pass, "interval", seconds=self.sweep_seconds,
                                   id=f"{SWEEP_JOB}-{lane.name}", next_run_time=datetime.now(UTC),
                                   replace_existing=True)
        self.scheduler.add_job(self.watch, "interval", seconds=WATCH_SECONDS, id=WATCH_JOB, replace_existing=True)
        self._listen()
        self.scheduler.start(paused=paused)

    def shutdown(self, wait: bool = True) -> None:
        self._unlisten()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def wake_time(self) -> datetime | None:
        """When the timer lane's wake-up job runs next (None: no wake-up job)."""
        return self.timer_lane.wake_time

    def run_pass(self) -> None:
        """Both lanes once, one after the other: fire what is due, then deliver webhooks (tests, tools)."""
        for lane in self.lanes:
            lane.run_pass()

    def watch(self) -> None:
        """Aim the wake-ups at work other processes wrote (web servers, other workers)."""
        for lane in self.lanes:
            lane.watch()

    # -- the after-commit hook ---------------------------------------------------------------------
    def _listen(self) -> None:
        if not self._listening:
            event.listen(Session, "after_flush", self._after_flush)
            event.listen(Session, "after_commit", self._after_commit)
            event.listen(Session, "after_rollback", self._after_rollback)
            self._listening = True

    def _unlisten(self) -> None:
        if self._listening:
            event.remove(Session, "after_flush", self._after_flush)
            event.remove(Session, "after_commit", self._after_commit)
            event.remove(Session, "after_rollback", self._after_rollback)
            self._listening = False

    def _after_flush(self, session: Session, _context) -> None:
        """Remember the earliest due time per lane this transaction wrote (no query: objects in the session)."""
        if session.bind is not self.database.engine:
            return
        pending: dict[str, datetime] = session.info.setdefault(_PENDING_KEY, {})

        def note(lane: str, due: datetime | None) -> None:
            if due is not None and (lane not in pending or due < pending[lane]):
                pending[lane] = due

        for obj in list(session.new) + list(session.dirty):
            if isinstance(obj, Timer) and obj.status == "waiting":
                note("timers", max(d for d in (obj.due_at, obj.next_attempt_at, obj.lock_until) if d is not None))
            elif isinstance(obj, Outbox) and obj.channel == "webhook" and obj.status == "pending":
                note("webhooks", obj.next_attempt_at)
            elif isinstance(obj, ProcessDefinition):
                note("timers", self.timers.clock.now())  # a deploy or retire: schedule start timers now

    def _after_commit(self, session: Session) -> None:
        pending = session.info.pop(_PENDING_KEY, None) or {}
        for lane in self.lanes:
            if lane.name in pending:
                lane.wake(pending[lane.name])

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_PENDING_KEY, None)
