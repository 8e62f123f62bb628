"""Run a betsy case through bpmn_server's services, as an integrator would: deploy, start, let the
instances talk to each other, fire due timers on a manual clock, then read the trace back from the
instances (their audit history, status and incidents). Every case gets an empty database.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from bpmn_server.audit import events
from bpmn_server.clock import ManualClock
from bpmn_server.errors import NotExecutable
from bpmn_server.identity.principal import system_principal
from bpmn_server.settings import Settings
from bpmn_server.store import Database

from .cases import (
    ERROR_DEPLOYMENT,
    ERROR_RUNTIME,
    ERROR_THROWN_ERROR,
    ERROR_THROWN_ESCALATION,
    Case,
    HarnessError,
    PreparedModel,
    Produced,
)

PARALLEL_PROCESS = "ParallelProcess"
HARNESS_USER = "betsy"
SERVER_CRASH = "SERVER_EXCEPTION"  # not an ERROR_* token: a crash never passes an error case
MAX_TIMER_ROUNDS = 10_000

# How an instance that stopped with an incident reads in betsy's vocabulary (docs/conformance.md).
INCIDENT_TOKENS = {"bpmn-error": ERROR_THROWN_ERROR, "bpmn-escalation": ERROR_THROWN_ESCALATION}


class ServiceRunner:
    """Runs cases through ``bpmn_server.services.Services`` on SQLite files or one PostgreSQL database."""

    def __init__(self, backend: str = "sqlite", *, postgres_url: str | None = None,
                 workdir: Path | None = None) -> None:
        self.backend = backend
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="betsy-"))
        self._postgres: Database | None = None
        if backend == "postgres":
            url = postgres_url or os.environ.get("BPMN_SERVER_TEST_POSTGRES_URL")
            if not url:
                raise HarnessError("--backend postgres needs --postgres-url or BPMN_SERVER_TEST_POSTGRES_URL")
            self._postgres = Database(url)
            self._postgres.create_all()
        self._count = 0

    # -- one case --------------------------------------------------------------------------------
    def _services(self, clock: ManualClock):
        from bpmn_server.services import Services

        self._count += 1
        if self._postgres is not None:
            database = self._postgres
            database.truncate_all()
        else:
            database = Database(f"sqlite:///{self.workdir / f'case{self._count}.db'}")
            database.create_all()
        settings = Settings(data_dir=self.workdir / "data", database_url=database.url, secret_key="betsy",
                            scheduler=False).resolved()
        services = Services(settings, database=database, clock=clock)
        for needed in ("definitions", "instances", "timers"):
            if not hasattr(services, needed):
                raise HarnessError(f"services.{needed} does not exist yet: the runtime is not wired into the facade")
        return services, database

    def run_case(self, case: Case, model: PreparedModel) -> Produced:
        clock = ManualClock()
        services, database = self._services(clock)
        try:
            return CaseRun(services, clock, case, model).run()
        finally:
            if self._postgres is None:
                database.dispose()


class CaseRun:
    """One case on one fresh set of services."""

    def __init__(self, services, clock: ManualClock, case: Case, model: PreparedModel) -> None:
        self.services = services
        self.clock = clock
        self.case = case
        self.model = model
        self.produced = Produced()
        self.principal = system_principal(HARNESS_USER)

    def run(self) -> Produced:
        """Deploy, start, advance time, read back; a server exception is this case's failure."""
        try:
            self._run()
        except HarnessError:
            raise
        except Exception as err:  # noqa: BLE001 - the server crashing is a failed case, not a harness error
            self.produced.errors.append(SERVER_CRASH)
            self.produced.detail = f"the server raised {type(err).__name__}: {str(err).splitlines()[0][:300]}"
        return self.produced

    def _run(self) -> None:
        case = self.case
        self.services.definitions.deploy(self.model.source, case.bpmn.name, HARNESS_USER)
        starts = ([PARALLEL_PROCESS] if case.parallel_process else []) + [case.test]
        for key in starts:
            try:
                self.services.instances.start(key, principal=self.principal, variables=dict(case.inputs))
            except NotExecutable as err:
                self.produced.errors.append(ERROR_DEPLOYMENT)
                self.produced.detail = str(err)
                return
        self.advance(timedelta(milliseconds=case.delay_ms))
        self.read_back()

    def advance(self, delay: timedelta) -> None:
        """Move the clock to ``now + delay``, firing every timer on its due time on the way."""
        timers = self.services.timers
        deadline = self.clock.now() + delay
        for _ in range(MAX_TIMER_ROUNDS):
            due = timers.next_due_at()
            if due is None or due > deadline:
                break
            self.clock.set(max(due, self.clock.now()))
            report = timers.fire_due()
            if not (report.fired or report.started or report.skipped or report.retried or report.failed):
                break
        else:
            raise HarnessError(f"timers still due after {MAX_TIMER_ROUNDS} rounds (a cycle without end?)")
        self.clock.set(max(deadline, self.clock.now()))

    def read_back(self) -> None:
        """The executed script tasks of every instance (audit history), their statuses and errors."""
        instances = self.services.instances
        page = instances.list(limit=1000)
        details = []
        for info in sorted(page.items, key=lambda i: (i.started_at, i.id)):
            for event in instances.history(info.id):
                if event["event_type"] == events.ELEMENT_COMPLETED and event["element_type"] == "scriptTask":
                    self.produced.executed.append(event["element_id"])
            full = instances.get(info.id, with_variables=False)
            self.produced.statuses.append(full.status)
            if full.status == "failed":
                kinds = [incident.kind for incident in full.incidents] or ["engine"]
                self.produced.errors.append(INCIDENT_TOKENS.get(kinds[-1], ERROR_RUNTIME))
                details.extend(f"{i.kind} at {i.element_id}: {i.message}" for i in full.incidents)
        if details:
            self.produced.detail = "; ".join(details)[:500]
