"""Waking the process up when a timer or a webhook is due. APScheduler holds no truth of its own:
the ``timer`` and ``outbox`` tables do. It keeps two jobs:

* **wake-up**: one date job at the earliest due time (a timer, a timer retry, a webhook retry), so a
  2-second timer fires after about 2 seconds, not at the next poll. Any transaction that commits a
  waiting timer or a pending webhook due earlier moves it forward (a cheap SQLAlchemy
  ``after_commit`` hook, no query).
  A deploy or retire wakes it at once, so a new version's timer start events are scheduled.
* **watch**: every second, one indexed query for the earliest due time, so timers written by *other*
  processes (web servers next to a ``bpmn-server worker``, other nodes) also get a wake-up on time.
* **sweep**: every ``timer_sweep_seconds`` (and at once on start-up), the same pass — it catches up
  everything that fell due while the server was down, start timers of new deployments, and timers
  written by other server processes sharing the database.

A pass runs ``StartTimers.sync``, ``TimerService.fire_due`` and ``OutboxService.deliver_webhooks``;
one pass at a time per process (a wake-up during a pass makes the pass run once more).
"""

from __future__ import annotations

import logging
import threading
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


class TimerScheduler:
    """The APScheduler jobs of one server or worker process (see module docstring)."""

    def __init__(self, timers: Any, outbox: Any, *, sweep_seconds: float = 30.0) -> None:
        self.timers = timers
        self.outbox = outbox
        self.database = timers.database
        self.sweep_seconds = sweep_seconds
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1,
                                                                         "misfire_grace_time": None})
        self._pass_lock = threading.Lock()
        self._again = threading.Event()
        self._wake_lock = threading.Lock()
        self._wake_at: datetime | None = None
        self._listening = False

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, *, paused: bool = False) -> None:
        """Start the jobs: a sweep at once (catch-up after downtime), then periodically."""
        self.scheduler.add_job(self.run_pass, "interval", seconds=self.sweep_seconds, id=SWEEP_JOB,
                               next_run_time=datetime.now(UTC), replace_existing=True)
        self.scheduler.add_job(self.watch, "interval", seconds=WATCH_SECONDS, id=WATCH_JOB, replace_existing=True)
        self._listen()
        self.scheduler.start(paused=paused)

    def shutdown(self, wait: bool = True) -> None:
        self._unlisten()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    @property
    def wake_time(self) -> datetime | None:
        """When the wake-up job runs next (None: no wake-up job)."""
        job = self.scheduler.get_job(WAKE_JOB)
        return job.next_run_time if job is not None else None

    # -- the pass ------------------------------------------------------------------------------------
    def run_pass(self) -> None:
        """Sync start timers, fire what is due, deliver webhooks; then aim the wake-up at what is next."""
        if not self._pass_lock.acquire(blocking=False):
            self._again.set()  # a pass is running: it goes round once more
            return
        try:
            while True:
                self._again.clear()
                self._one_pass()
                if not self._again.is_set():
                    break
        finally:
            self._pass_lock.release()
        self.reschedule()

    def _one_pass(self) -> None:
        for name, step in (("start timers", self.timers.start_timers.sync), ("timers", self.timers.fire_due),
                           ("webhooks", self.outbox.deliver_webhooks)):
            try:
                step()
            except Exception:  # noqa: BLE001 - one failing step must not stop the scheduler
                log.exception("scheduler: %s failed", name)

    def reschedule(self) -> None:
        """Aim the wake-up job at the earliest due timer, timer retry or webhook (from the database)."""
        candidates = [self.timers.next_due_at(), self.outbox.next_delivery_at()]
        due = min((c for c in candidates if c is not None), default=None)
        with self._wake_lock:
            self._wake_at = None
        if due is not None:
            self.wake(due)

    def watch(self) -> None:
        """Aim the wake-up at timers and webhooks other processes wrote (web servers, other workers):
        reading the earliest due time is one indexed query, firing waits for the wake-up job."""
        try:
            candidates = [self.timers.next_due_at(), self.outbox.next_delivery_at()]
        except Exception:  # noqa: BLE001 - a database hiccup: the sweep catches up
            log.debug("scheduler: watch failed", exc_info=True)
            return
        due = min((c for c in candidates if c is not None), default=None)
        if due is not None:
            self.wake(due)

    def wake(self, due: datetime) -> None:
        """Make sure the process wakes up at ``due`` (earlier wake-ups are kept)."""
        due = due if due.tzinfo else due.replace(tzinfo=UTC)
        with self._wake_lock:
            if self._wake_at is not None and self._wake_at <= due:
                return
            self._wake_at = due
        # a few milliseconds late rather than early: the timer must be due when the pass looks
        run_at = due + timedelta(milliseconds=5)
        try:
            # several may be pending while a pass runs: each either runs a pass or makes the running one go again
            self.scheduler.add_job(self._woken, "date", run_date=run_at, id=WAKE_JOB, replace_existing=True,
                                   max_instances=8)
        except Exception:  # noqa: BLE001 - scheduler shut down meanwhile
            log.debug("scheduler: could not set the wake-up job", exc_info=True)

    def _woken(self) -> None:
        with self._wake_lock:
            self._wake_at = None
        self.run_pass()

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
        """Remember the earliest due time this transaction wrote (no query: objects in the session)."""
        if session.bind is not self.database.engine:
            return
        earliest = session.info.get(_PENDING_KEY)
        for obj in list(session.new) + list(session.dirty):
            due = None
            if isinstance(obj, Timer) and obj.status == "waiting":
                due = max(d for d in (obj.due_at, obj.next_attempt_at, obj.lock_until) if d is not None)
            elif isinstance(obj, Outbox) and obj.channel == "webhook" and obj.status == "pending":
                due = obj.next_attempt_at
            if due is not None and (earliest is None or due < earliest):
                earliest = due
        if any(isinstance(obj, ProcessDefinition) for obj in list(session.new) + list(session.dirty)):
            # a deploy or retire: schedule the start timers of the new latest version right away
            now = self.timers.clock.now()
            earliest = now if earliest is None or now < earliest else earliest
        if earliest is not None:
            session.info[_PENDING_KEY] = earliest

    def _after_commit(self, session: Session) -> None:
        due = session.info.pop(_PENDING_KEY, None)
        if due is not None:
            self.wake(due)

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_PENDING_KEY, None)
