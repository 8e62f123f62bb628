"""Load: client threads drive start → claim → complete over HTTP against one and against two
server processes sharing one database; prints cases/s, p50/p99 latency and the scale-out ratio.

    .venv/bin/python -m bench.load [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]
                                   [--clients 8] [--cases 40]

Bounded: clients × cases per run, loopback only. On this 2-core machine the clients share the
cores with the servers, so the ratio understates what two machines would give.
"""

from __future__ import annotations

import argparse
import tempfile
import time
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


def run(database_url: str, data_dir: Path, token: str, servers: int, clients: int, cases: int) -> tuple[float, float, float]:
    processes = [ServerProcess(database_url, data_dir).start() for _ in range(servers)]
    try:
        drive([p.url for p in processes], token, clients=clients, cases_per_client=2)  # warm-up
        began = time.perf_counter()
        result = drive([p.url for p in processes], token, clients=clients, cases_per_client=cases)
        elapsed = time.perf_counter() - began
    finally:
        for process in processes:
            process.stop()
    rate = result.completed / elapsed
    p50, p99 = percentile(result.latencies, 0.5) * 1000, percentile(result.latencies, 0.99) * 1000
    print(f"{servers} server process(es): {result.completed} cases in {elapsed:.1f}s = {rate:.1f} cases/s, "
          f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, errors {result.errors}")
    return rate, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--cases", type=int, default=40, help="cases per client")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bpmn-load-"))
    if args.database.startswith("postgresql"):
        url = fresh_postgres(args.database, "bpmn_bench_load")
    else:
        url = f"sqlite:///{data_dir / 'load.db'}"
    token = prepare_database(url, data_dir)
    one, p50, p99 = run(url, data_dir, token, 1, args.clients, args.cases)
    two, p50_2, p99_2 = run(url, data_dir, token, 2, args.clients, args.cases)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"RESULT load ratio={two / one:.2f} backend={backend} one={one:.1f}/s two={two:.1f}/s "
          f"p50={p50:.0f}ms p99={p99:.0f}ms p50_two={p50_2:.0f}ms p99_two={p99_2:.0f}ms clients={args.clients}")


if __name__ == "__main__":
    main()
