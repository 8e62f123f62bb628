"""The service facade: one object per server process that every interface (REST, web, CLI,
scheduler) calls. Like Camunda's ``RepositoryService``/``RuntimeService``/``TaskService``, each
attribute is a small public surface; the work happens in the layers below.
"""

from __future__ import annotations

from .clock import Clock
from .settings import Settings
from .store import Database


class Services:
    """Everything a server process needs, built once from settings."""

    def __init__(self, settings: Settings, *, database: Database | None = None, clock: Clock | None = None):
        self.settings = settings
        self.database = database or Database(settings.database_url)
        self.clock = clock or Clock()
        from .audit.service import AuditService
        from .identity.service import IdentityService
        from .repository.service import DefinitionService
        from .store.rate_limits import RateLimiter

        self.audit = AuditService(self.database, self.clock)
        # limits counted in the database, shared by every process: expensive requests, failed sign-ins
        self.rate_limits = RateLimiter(self.database, self.clock)
        self.identity = IdentityService(self.database, self.clock, settings)
        self.definitions = DefinitionService(self.database, self.clock, settings)
        from .runtime.engine import Engine
        from .runtime.instances import InstanceService
        from .runtime.messages import MessageService
        from .runtime.tasks import TaskService

        self.engine = Engine(settings, self.definitions)
        self.instances = InstanceService(self.database, self.clock, self.engine, self.definitions)
        self.tasks = TaskService(self.database, self.clock, self.instances.runner, self.engine)
        self.messages = MessageService(self.instances)
        from .sop.service import SopService

        self.sop = SopService(self.definitions)
        from .runtime.outbox import OutboxService

        self.outbox = OutboxService(self.database, self.clock)
        from .runtime.timers import TimerService

        self.timers = TimerService(self.database, self.clock, settings, instances=lambda: self.instances,
                                   definitions=self.definitions)
        self.scheduler = None
        self.wire_people()

    def count_expensive_request(self, bucket: str) -> None:
        """Count one expensive request (an upload, an audit export or verification, an SOP export) of
        the caller whose bucket this is, for the API and the web pages alike; ``RateLimited`` once
        ``rate_limit_expensive_per_minute`` is used up."""
        from .store.rate_limits import expensive_requests

        self.rate_limits.hit((bucket, expensive_requests(self.settings.rate_limit_expensive_per_minute)))

    def wire_people(self) -> None:
        """Let every command notify people (task created/assigned, reminders, escalations, failures)."""
        from .runtime.reminders import PeopleListener

        runner = self.instances.runner
        if not any(isinstance(listener, PeopleListener) for listener in runner.listeners):
            runner.listeners.append(PeopleListener())

    def start_scheduler(self, *, paused: bool = False):
        """Fire timers and deliver webhooks in this process (``serve`` and ``worker``)."""
        from .runtime.scheduler import TimerScheduler

        if self.scheduler is None:
            self.scheduler = TimerScheduler(self.timers, self.outbox, sweep_seconds=self.settings.timer_sweep_seconds)
            self.scheduler.start(paused=paused)
        return self.scheduler

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None

    def run_worker(self) -> None:
        """Run the scheduler until interrupted (``bpmn-server worker``)."""
        import signal
        import threading

        stop = threading.Event()
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda *_: stop.set())
        self.start_scheduler()
        try:
            stop.wait()
        finally:
            self.stop_scheduler()

    def create_schema(self) -> None:
        """Bring the database to this release's schema: migrations (the default), or plain
        ``create_all`` when ``BPMN_SERVER_MIGRATE_ON_START`` is off."""
        if self.settings.migrate_on_start:
            from .store import schema

            schema.upgrade(self.database)
        else:
            self.database.create_all()
