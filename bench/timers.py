"""Benchmark: many timers due at the same moment, fired by worker processes, against bare SpiffWorkflow
firing the same timers in memory; and the lateness of a single 2-second timer woken by the real scheduler.

    .venv/bin/python bench/timers.py [--timers N] [--postgres URL] [--samples S] [--pg-creators C]

- N (default 10,000) instances of ``start -> wait PT1M -> end`` are started with a manual clock at one
  moment, so all N timers are due at exactly the same moment T. Then 1 or 2 worker processes (SQLite,
  PostgreSQL) with their clock at T are told "go" together and each runs one
  ``fire_due`` pass each (what each pass of ``bpmn-server worker`` runs: claim a batch, one command per
  timer, until nothing due is left). Each worker notes the wall time at which each of its firings
  committed; a timer's **lateness** is that time minus the "go" moment (all timers were due then), so
  p50 is about half of the time to drain the queue. fired/s = N / time until the last commit.
  Afterwards the database is checked: one ``timer-fired`` event per instance, every instance completed.
- The N instances are created once per backend and copied for each run (SQLite: the backup API;
  PostgreSQL: created in ``<db>_src`` by C processes in parallel, default 3, then ``CREATE DATABASE …
  TEMPLATE``).
- The baseline, measured in the same process: bare Spiff ``refresh_timers()`` + ``do_engine_steps()`` on
  in-memory workflows (at most 2,000 of them). ratio = server ms per timer (SQLite, 1 worker) / bare ms.
- Single 2-second timers: S (default 10) instances started one after the other with the real clock and
  the real scheduler (``start_scheduler()``: wake-up job at the earliest due time), each awaited before
  the next; lateness = when the instance was seen completed (5 ms polling) − the timer's due time.

Ends with ``RESULT timers ratio=<…> …``. Not a test: at full size it runs several minutes; ``--timers``
shrinks it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, make_url, select, text  # noqa: E402

from bpmn_server.audit import events  # noqa: E402
from bpmn_server.clock import Clock, ManualClock  # noqa: E402
from bpmn_server.identity.principal import Principal  # noqa: E402
from bpmn_server.services import Services  # noqa: E402
from bpmn_server.settings import Settings  # noqa: E402
from bpmn_server.store import Database  # noqa: E402
from bpmn_server.store.models import AuditEvent, ProcessInstance, Timer  # noqa: E402
from tests.timer_models import intermediate_timer  # noqa: E402

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DUE = START + timedelta(minutes=1)  # every benchmark timer is due at exactly this moment
KEY = "bench_wait"
ADMIN = Principal("admin", frozenset(), True)
BARE_MAX = 2000


def services_on(url: str, data_dir: Path, clock, *, pool_size: int = 10) -> Services:
    database = Database(url, pool_size=pool_size)
    database.create_all()
    settings = Settings(data_dir=data_dir, database_url=url, secret_key="bench", scheduler=False).resolved()
    return Services(settings, database=database, clock=clock)


def child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


# --- preparing N due timers ----------------------------------------------------------------------------

def prepare(url: str, data_dir: Path, n: int, creators: int = 1) -> float:
    """A fresh database with n instances waiting for a timer due at DUE; seconds it took."""
    began = time.perf_counter()
    if not url.startswith("sqlite"):
        database = Database(url, pool_size=1)
        database.drop_all()
        database.dispose()
    services = services_on(url, data_dir, ManualClock(START))
    services.definitions.deploy(intermediate_timer(KEY, "PT1M"), "bench.bpmn", "admin")
    services.database.dispose()
    shares = [n // creators + (1 if i < n % creators else 0) for i in range(creators)]
    if creators == 1:
        create(url, str(data_dir), n)
    else:
        children = [child("--create", url, str(data_dir), str(share)) for share in shares]
        for process in children:
            process.communicate()
            assert process.returncode == 0
    return time.perf_counter() - began


def create(url: str, data_dir: str, count: int) -> None:
    """Start ``count`` instances with the clock at START (each waits for the timer due at DUE)."""
    services = services_on(url, Path(data_dir), ManualClock(START), pool_size=2)
    for _ in range(count):
        services.instances.start(KEY, principal=ADMIN)
    services.database.dispose()


def copy_postgres(url: str, source: str, target: str) -> None:
    """CREATE DATABASE target TEMPLATE source (the source must have no open connections)."""
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))
    admin.dispose()


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API, WAL included)."""
    import sqlite3

    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def ensure_postgres(url: str) -> None:
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as connection:
        if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


# --- firing them with worker processes -----------------------------------------------------------------

class Run:
    def __init__(self, label: str, n: int, workers: list[int], times: list[float], go: float) -> None:
        self.label, self.n, self.per_worker = label, n, workers
        self.fired = sum(workers)
        self.lateness = sorted(t - go for t in times)
        self.seconds = self.lateness[-1] if self.lateness else float("nan")

    @property
    def per_s(self) -> float:
        return self.fired / self.seconds

    def pct(self, p: float) -> float:
        return self.lateness[min(len(self.lateness) - 1, int(p * len(self.lateness)))]

    def line(self) -> str:
        return (f"{self.label}: {self.fired} timers in {self.seconds:.1f} s = {self.per_s:.0f} fired/s "
                f"({self.seconds / self.fired * 1000:.1f} ms/timer; per worker {self.per_worker}); "
                f"lateness p50 {self.pct(0.5):.1f} s, p99 {self.pct(0.99):.1f} s, max {self.seconds:.1f} s")


def fire_with_workers(label: str, url: str, data_dir: Path, n: int, workers: int) -> Run:
    children = [child("--fire", url, str(data_dir / f"w{i}")) for i in range(workers)]
    for process in children:
        assert process.stdout.readline().strip() == "ready"
    go = time.time()
    for process in children:
        process.stdin.write("go\n")
        process.stdin.flush()
    fired, times = [], []
    for process in children:
        out, _ = process.communicate()
        result = json.loads(out)
        fired.append(result["fired"])
        times.extend(result["times"])
    run = Run(label, n, fired, times, go)
    check_exactly_once(url, n)
    return run


def fire(url: str, data_dir: str) -> None:
    """Child: a worker at the due moment; on 'go' one fire_due pass; prints its fired count and the wall
    time at which each firing committed."""
    services = services_on(url, Path(data_dir), ManualClock(DUE), pool_size=2)
    services.engine.specs_for(services.definitions.get(KEY))  # warm the spec cache before the clock starts
    timers = services.timers
    times: list[float] = []
    original = timers._fire

    def timed(claim, now):
        report = original(claim, now)
        if report.fired:
            times.append(time.time())
        return report

    timers._fire = timed
    print("ready", flush=True)
    sys.stdin.readline()
    report = timers.fire_due()
    print(json.dumps({"fired": report.fired, "times": times}), flush=True)
    services.database.dispose()


def check_exactly_once(url: str, n: int) -> None:
    database = Database(url, pool_size=1)
    with database.read() as session:
        per_instance = session.execute(select(AuditEvent.instance_id, func.count()).where(
            AuditEvent.event_type == events.TIMER_FIRED).group_by(AuditEvent.instance_id)).all()
        completed = session.scalar(select(func.count()).select_from(ProcessInstance).where(
            ProcessInstance.status == "completed"))
    database.dispose()
    assert len(per_instance) == n and {c for _, c in per_instance} == {1}, "a timer fired twice or not at all"
    assert completed == n, f"{n - completed} instances did not complete"


# --- baseline and single-timer lateness ----------------------------------------------------------------

def bench_bare_spiff(n: int) -> float:
    """Seconds for bare Spiff to fire the same timer in n in-memory workflows (refresh + engine steps)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow

    from bpmn_server.parser.document import BpmnDocument
    from bpmn_server.parser.spec import build_specs
    from bpmn_server.runtime.commands import FixedClock

    specs = build_specs(BpmnDocument.load(intermediate_timer(KEY, "PT1M"), "bench.bpmn"), KEY)
    workflows = []
    for _ in range(n):
        workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs)
        workflow.clock = FixedClock(START)
        workflow.do_engine_steps()
        workflows.append(workflow)
    began = time.perf_counter()
    for workflow in workflows:
        workflow.clock = FixedClock(DUE)
        workflow.refresh_timers()
        workflow.do_engine_steps()
    elapsed = time.perf_counter() - began
    assert all(w.is_completed() for w in workflows)
    return elapsed


def bench_single_lateness(url: str, data_dir: Path, samples: int) -> list[float]:
    """Lateness (s) of single 2-second timers, one at a time, fired by the real scheduler (no other load)."""
    services = services_on(url, data_dir, Clock())
    services.definitions.deploy(intermediate_timer("bench_short", "PT2S"), "short.bpmn", "admin")
    services.start_scheduler()
    try:
        late = []
        for _ in range(samples):
            info = services.instances.start("bench_short", principal=ADMIN)
            with services.database.read() as session:
                due = session.scalar(select(Timer.due_at).where(Timer.instance_id == info.id))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with services.database.read() as session:
                    if session.get(ProcessInstance, info.id).status == "completed":
                        late.append((datetime.now(UTC) - due).total_seconds())
                        break
                time.sleep(0.005)
            else:
                late.append(float("inf"))  # not fired within 8 s of its due time
            time.sleep(0.2)
        return sorted(late)
    finally:
        services.stop_scheduler()
        services.database.dispose()


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    if sys.argv[1:2] == ["--create"]:
        create(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if sys.argv[1:2] == ["--fire"]:
        fire(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("timers_positional", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timers", type=int, default=10_000, help="timers due at the same moment")
    parser.add_argument("--postgres", help="a PostgreSQL URL; its database and <db>_src are overwritten")
    parser.add_argument("--samples", type=int, default=10, help="single 2-second timers to time")
    parser.add_argument("--pg-creators", type=int, default=3, help="processes starting the PostgreSQL instances")
    args = parser.parse_args()
    n = args.timers_positional or args.timers
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare_n = min(n, BARE_MAX)
        bare = bench_bare_spiff(bare_n) / bare_n
        print(f"bare Spiff refresh+steps: {bare * 1000:.3f} ms/timer ({bare_n} in-memory workflows)", flush=True)

        made = prepare(f"sqlite:///{folder / 'source.db'}", folder / "data", n)
        print(f"SQLite: {n} instances started in {made:.0f} s", flush=True)
        for workers in (1, 2):
            copy_sqlite(folder / "source.db", folder / "bench.db")
            runs.append(fire_with_workers(f"SQLite, {workers} worker process{'es' * (workers > 1)}",
                                          f"sqlite:///{folder / 'bench.db'}", folder / "data", n, workers))
            print(runs[-1].line(), flush=True)

        if args.postgres:
            source_url = make_url(args.postgres)
            source = f"{source_url.database}_src"
            source_url = source_url.set(database=source).render_as_string(hide_password=False)
            ensure_postgres(source_url)
            made = prepare(source_url, folder / "pg", n, creators=args.pg_creators)
            print(f"PostgreSQL: {n} instances started in {made:.0f} s ({args.pg_creators} processes)", flush=True)
            for workers in (1, 2):
                copy_postgres(args.postgres, source, make_url(args.postgres).database)
                runs.append(fire_with_workers(f"PostgreSQL, {workers} worker process{'es' * (workers > 1)}",
                                              args.postgres, folder / "pg", n, workers))
                print(runs[-1].line(), flush=True)

        single = bench_single_lateness(f"sqlite:///{folder / 'late.db'}", folder / "late", args.samples)
        print(f"single 2 s timer, real scheduler, no load ({len(single)} samples): "
              + ", ".join(f"{x * 1000:.0f}" for x in single) + " ms late", flush=True)
    server = runs[0].seconds / runs[0].fired
    extra = ""
    for key, run in zip(("sq2", "pg1", "pg2"), runs[1:], strict=False):
        extra += (f" {key}_fired_per_s={run.per_s:.0f} {key}_late_p50_s={run.pct(0.5):.1f}"
                  f" {key}_late_p99_s={run.pct(0.99):.1f} {key}_late_max_s={run.seconds:.1f}")
    print(f"RESULT timers ratio={server / bare:.1f} n={n} server_ms_per_timer={server * 1000:.2f} "
          f"bare_ms_per_timer={bare * 1000:.3f} fired_per_s={runs[0].per_s:.0f} "
          f"late_p50_s={runs[0].pct(0.5):.1f} late_p99_s={runs[0].pct(0.99):.1f} late_max_s={runs[0].seconds:.1f}"
          f"{extra} lateness_p50_ms={statistics.median(single) * 1000:.0f} "
          f"lateness_p99_ms={percentile(single, 0.99) * 1000:.0f} lateness_max_ms={max(single) * 1000:.0f}")


if __name__ == "__main__":
    main()
