"""Load: client threads drive start → claim → complete over HTTP against one and against two
server processes sharing one database; prints cases/s, p50/p99 latency and the scale-out ratio.

    .venv/bin/python -m bench.load [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]
                                   [--clients 8] [--cases 40] [--threads 4]

Bounded: clients × cases per run, loopback only. On this 2-core machine the clients and PostgreSQL
share the cores with the servers, so the ratio understates what separate machines would give. The
run with one server therefore also measures the CPU time one case costs in the server process, in
PostgreSQL's backends and in the clients (Linux /proc), and prints the *ceiling*: the ratio a
perfectly scaling second process could reach on these cores, ``min(2, cores × server / (server +
postgres + clients))`` (one server process uses at most one core: the GIL), and the measured ratio
as a share of it (``efficiency``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from .driver import ServerProcess, drive, percentile, prepare_database


def fresh_postgres(url: str, name: str) -> str:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


@dataclass
class CpuPerCase:
    """Milliseconds of CPU one case cost in each party (0 where it cannot be read)."""

    server: float = 0.0
    postgres: float = 0.0
    clients: float = 0.0

    def ceiling(self, cores: int) -> float:
        """The best scale-out ratio of two server processes on ``cores`` cores shared by everyone."""
        total = self.server + self.postgres + self.clients
        return min(2.0, cores * self.server / total) if total and self.server else float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (0 if it is gone or this is not Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:
        return []


class CpuMeter:
    """CPU time of the server workers, of this process (the clients) and of the PostgreSQL backends
    serving ``database_url``'s database, between ``start()`` and ``stop()``."""

    def __init__(self, database_url: str, servers: list[ServerProcess]) -> None:
        self.database_url = database_url
        self.workers = [child for server in servers for child in _children(server.process.pid)]
        self.admin = create_engine(database_url, isolation_level="AUTOCOMMIT") \
            if database_url.startswith("postgresql") else None

    def _backends(self) -> dict[int, float]:
        if self.admin is None:
            return {}
        with self.admin.connect() as conn:
            pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid()")).scalars().all()
        return {pid: _cpu_seconds(pid) for pid in pids}

    def start(self) -> None:
        self.began = ({pid: _cpu_seconds(pid) for pid in self.workers}, self._backends(), time.process_time())

    def stop(self, cases: int) -> CpuPerCase:
        workers, backends, clients = self.began
        server = sum(_cpu_seconds(pid) - workers[pid] for pid in self.workers)
        postgres = sum(now - backends.get(pid, 0.0) for pid, now in self._backends().items())
        clients = time.process_time() - clients
        if self.admin is not None:
            self.admin.dispose()
        return CpuPerCase(*(1000 * value / max(cases, 1) for value in (server, postgres, clients)))


def run(database_url: str, data_dir: Path, token: str, servers: int, clients: int,
        cases: int, threads: int = 4) -> tuple[float, float, float, CpuPerCase]:
    processes = [ServerProcess(database_url, data_dir, threads=threads).start() for _ in range(servers)]
    try:
        drive([p.url for p in processes], token, clients=clients, cases_per_client=2)  # warm-up
        meter = CpuMeter(database_url, processes)
        meter.start()
        began = time.perf_counter()
        result = drive([p.url for p in processes], token, clients=clients, cases_per_client=cases)
        elapsed = time.perf_counter() - began
        cpu = meter.stop(result.completed)
    finally:
        for process in processes:
            process.stop()
    rate = result.completed / elapsed
    p50, p99 = percentile(result.latencies, 0.5) * 1000, percentile(result.latencies, 0.99) * 1000
    print(f"{servers} server process(es): {result.completed} cases in {elapsed:.1f}s = {rate:.1f} cases/s, "
          f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, errors {result.errors}; CPU per case: server "
          f"{cpu.server:.1f} ms, PostgreSQL {cpu.postgres:.1f} ms, clients {cpu.clients:.1f} ms")
    return rate, p50, p99, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--cases", type=int, default=40, help="cases per client")
    parser.add_argument("--threads", type=int, default=4,
                        help="request threads per server process (gthread; 4 as docs/operations.md advises)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bpmn-load-"))
    if args.database.startswith("postgresql"):
        url = fresh_postgres(args.database, "bpmn_bench_load")
    else:
        url = f"sqlite:///{data_dir / 'load.db'}"
    token = prepare_database(url, data_dir)
    one, p50, p99, cpu = run(url, data_dir, token, 1, args.clients, args.cases, args.threads)
    two, p50_2, p99_2, _ = run(url, data_dir, token, 2, args.clients, args.cases, args.threads)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    cores = os.cpu_count() or 1
    ceiling = cpu.ceiling(cores)
    print(f"ceiling on {cores} cores shared by servers, PostgreSQL and clients: {ceiling:.2f} "
          f"(= min(2, {cores} x {cpu.server:.1f} / ({cpu.server:.1f} + {cpu.postgres:.1f} + {cpu.clients:.1f})))")
    print(f"RESULT load ratio={two / one:.2f} backend={backend} one={one:.1f}/s two={two:.1f}/s "
          f"p50={p50:.0f}ms p99={p99:.0f}ms p50_two={p50_2:.0f}ms p99_two={p99_2:.0f}ms clients={args.clients} "
          f"threads={args.threads} "
          f"cores={cores} ceiling={ceiling:.2f} efficiency={two / one / ceiling:.2f} server_cpu_ms={cpu.server:.1f} "
          f"postgres_cpu_ms={cpu.postgres:.1f} client_cpu_ms={cpu.clients:.1f}")


if __name__ == "__main__":
    main()
