"""Benchmark: firing due timers through the server (claim, one command each, reconcile, audit,
commit) against bare SpiffWorkflow refreshing the same workflows in memory, plus the lateness of
short timers woken by the real scheduler.

    .venv/bin/python bench/timers.py [N] [--postgres URL]

Prints figures and ends with ``RESULT timers ratio=<server ms per timer / bare Spiff ms per timer> …``.
Not a test; keep N small enough to finish in about 30 s on a shared machine.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bpmn_server.clock import Clock, ManualClock  # noqa: E402
from bpmn_server.services import Services  # noqa: E402
from bpmn_server.settings import Settings  # noqa: E402
from bpmn_server.store import Database  # noqa: E402
from bpmn_server.store.models import ProcessInstance  # noqa: E402
from tests.timer_models import intermediate_timer  # noqa: E402


def services_on(url: str, data_dir: Path, clock) -> Services:
    database = Database(url)
    database.create_all()
    settings = Settings(data_dir=data_dir, database_url=url, secret_key="bench", scheduler=False).resolved()
    return Services(settings, database=database, clock=clock)


START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def prepare(url: str, data_dir: Path, n: int) -> Services:
    """A fresh database with n instances whose timers are due at START + 1 min."""
    if not url.startswith("sqlite"):
        Database(url).drop_all()
    clock = ManualClock(START)
    services = services_on(url, data_dir, clock)
    services.definitions.deploy(intermediate_timer("bench_wait", "PT1M"), "bench.bpmn", "admin")
    from bpmn_server.identity.principal import Principal

    admin = Principal("admin", frozenset(), True)
    for _ in range(n):
        services.instances.start("bench_wait", principal=admin)
    clock.advance(timedelta(minutes=2))
    return services


def bench_server(url: str, data_dir: Path, n: int) -> tuple[float, int]:
    """Seconds to fire n due timers with fire_due in this process, and how many fired."""
    services = prepare(url, data_dir, n)
    began = time.perf_counter()
    report = services.timers.fire_due()
    elapsed = time.perf_counter() - began
    services.database.dispose()
    return elapsed, report.fired


def bench_processes(url: str, data_dir: Path, n: int, workers: int = 2) -> tuple[float, int]:
    """Seconds for `workers` separate processes sweeping together to fire n due timers, and how many fired."""
    import subprocess

    prepare(url, data_dir, n).database.dispose()
    children = [subprocess.Popen([sys.executable, __file__, "--fire", url, str(data_dir)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    began = time.perf_counter()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    fired = sum(int(child.stdout.readline()) for child in children)
    elapsed = time.perf_counter() - began
    for child in children:
        child.wait()
    return elapsed, fired


def fire_once(url: str, data_dir: str) -> None:
    """Child of bench_processes: wait for 'go', sweep once, print how many timers it fired."""
    services = services_on(url, Path(data_dir), ManualClock(START + timedelta(minutes=2)))
    services.engine.specs_for(services.definitions.get("bench_wait"))  # warm the spec cache before timing
    print("ready", flush=True)
    sys.stdin.readline()
    print(services.timers.fire_due(batch=10).fired, flush=True)


def bench_bare_spiff(n: int) -> float:
    """Seconds for bare Spiff to fire the same timer in n in-memory workflows (refresh + engine steps)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow

    from bpmn_server.parser.document import BpmnDocument
    from bpmn_server.parser.spec import build_specs
    from bpmn_server.runtime.commands import FixedClock

    specs = build_specs(BpmnDocument.load(intermediate_timer("bench_wait", "PT1M"), "bench.bpmn"), "bench_wait")
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    workflows = []
    for _ in range(n):
        workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs)
        workflow.clock = FixedClock(start)
        workflow.do_engine_steps()
        workflows.append(workflow)
    began = time.perf_counter()
    for workflow in workflows:
        workflow.clock = FixedClock(start + timedelta(minutes=2))
        workflow.refresh_timers()
        workflow.do_engine_steps()
    elapsed = time.perf_counter() - began
    assert all(w.is_completed() for w in workflows)
    return elapsed


def bench_lateness(url: str, data_dir: Path, count: int = 5) -> list[float]:
    """Lateness (s) of short timers (1–2 s) fired by the real scheduler's wake-up job, under no load."""
    from bpmn_server.identity.principal import Principal

    services = services_on(url, data_dir, Clock())
    services.definitions.deploy(intermediate_timer("bench_short", "PT2S"), "short.bpmn", "admin")
    admin = Principal("admin", frozenset(), True)
    services.start_scheduler()
    try:
        due = {}
        for _ in range(count):
            info = services.instances.start("bench_short", principal=admin)
            due[info.id] = info.started_at + timedelta(seconds=2)
            time.sleep(0.2)
        late: dict[str, float] = {}
        deadline = time.monotonic() + 15
        while len(late) < count and time.monotonic() < deadline:
            with services.database.read() as session:
                for instance_id in due:
                    if instance_id in late:
                        continue
                    if session.get(ProcessInstance, instance_id).status == "completed":
                        late[instance_id] = (datetime.now(UTC) - due[instance_id]).total_seconds()
            time.sleep(0.005)
        return sorted(late.values())
    finally:
        services.stop_scheduler()
        services.database.dispose()


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--fire"]:
        fire_once(args[1], args[2])
        return
    postgres = None
    if "--postgres" in args:
        postgres = args[args.index("--postgres") + 1]
        args = [a for a in args if a not in ("--postgres", postgres)]
    n = int(args[0]) if args else 200
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bare = bench_bare_spiff(n)
        print(f"bare Spiff refresh+steps: {n} timers in {bare:.3f} s ({bare / n * 1000:.2f} ms/timer)")
        server, fired = bench_server(f"sqlite:///{folder / 'bench.db'}", folder / "data", n)
        print(f"fire_due on SQLite:       {fired} timers in {server:.3f} s ({server / n * 1000:.2f} ms/timer, "
              f"{fired / server:.0f} timers/s)")
        if postgres:
            pg, pg_fired = bench_server(postgres, folder / "pgdata", n)
            print(f"fire_due on PostgreSQL:   {pg_fired} timers in {pg:.3f} s ({pg / n * 1000:.2f} ms/timer, "
                  f"{pg_fired / pg:.0f} timers/s)")
            two, two_fired = bench_processes(postgres, folder / "pgdata", n)
            print(f"2 worker processes on PostgreSQL: {two_fired} timers in {two:.3f} s "
                  f"({two_fired / two:.0f} timers/s; each fired exactly once: {two_fired == n})")
        late = bench_lateness(f"sqlite:///{folder / 'late.db'}", folder / "late")
        print("lateness of 2 s timers (real scheduler, no load): "
              + ", ".join(f"{x * 1000:.0f} ms" for x in late))
    ratio = server / bare
    print(f"RESULT timers ratio={ratio:.1f} n={n} server_ms_per_timer={server / n * 1000:.2f} "
          f"bare_ms_per_timer={bare / n * 1000:.3f} fired_per_s={fired / server:.0f} "
          f"lateness_p50_ms={statistics.median(late) * 1000:.0f} lateness_max_ms={max(late) * 1000:.0f}")


if __name__ == "__main__":
    main()
