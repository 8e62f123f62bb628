"""Audit log costs, each against a baseline measured in the same process on the same database:

1. share of a command's time spent on its audit events, on bench/throughput.py's workload (start ->
   claim -> complete a user task -> gateway -> end, through the services);
2. append rate: ``record()`` (validate, hash, lock the chain head) against a plain insert of the same
   rows in the same transactions into a copy of the table without the chain; ``record_many`` too;
3. verify, XES, OCEL and CSV export rates against reading the same rows with a bare SQL query.

    .venv/bin/python bench/audit.py [--events 40000] [--database postgresql+psycopg://…/db]

Ends with ``RESULT audit ratio=<record() rate / plain insert rate> ...``. The whole run stays under
about 30 s on SQLite with the defaults.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import MetaData, event, text

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput import MODEL, run_service  # noqa: E402 - after the path set-up above
from bpmn_server.audit import chain  # noqa: E402
from bpmn_server.audit import events as ev  # noqa: E402
from bpmn_server.clock import ManualClock  # noqa: E402
from bpmn_server.identity import system_principal  # noqa: E402
from bpmn_server.services import Services  # noqa: E402
from bpmn_server.settings import Settings  # noqa: E402
from bpmn_server.store import Database  # noqa: E402
from bpmn_server.store.models import AuditEvent  # noqa: E402

AUDITOR = system_principal("system:bench")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


# -- 1. the share of a command's time that goes to its audit events ---------------------------

class AuditTimer:
    """Time spent in ``record()`` plus audit SQL run outside it (the INSERTs flushed at commit)."""

    def __init__(self, database: Database) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._inside = False
        self._started: dict[int, float] = {}
        original = chain.record

        def timed_record(*args, **kwargs):
            began = time.perf_counter()
            self._inside = True
            try:
                return original(*args, **kwargs)
            finally:
                self._inside = False
                self.seconds += time.perf_counter() - began
                self.calls += 1

        # every module that imported record() by name gets the timed one
        for module in list(sys.modules.values()):
            if module is not None and getattr(module, "record", None) is original:
                module.record = timed_record
        event.listen(database.engine, "before_cursor_execute", self._before)
        event.listen(database.engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        began = self._started.pop(id(cursor), None)
        if began is not None and not self._inside and ("audit_event" in statement or "audit_head" in statement):
            self.seconds += time.perf_counter() - began


def _time_calls(owner, name: str, totals: list[float]) -> None:
    """Wrap ``owner.name`` so that its calls add their seconds to totals[0] and count in totals[1]."""
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[0] += time.perf_counter() - began
            totals[1] += 1

    setattr(owner, name, timed)


def command_share(database: Database, services: Services, seconds: float) -> tuple[float, float, int]:
    """(audit seconds / command seconds, commands per second, audit events per command)."""
    timer = AuditTimer(database)
    totals = [0.0, 0]  # seconds inside commands, commands
    _time_calls(services.instances, "start", totals)
    _time_calls(services.tasks, "claim", totals)
    _time_calls(services.tasks, "complete", totals)
    ended = time.perf_counter() + seconds
    while time.perf_counter() < ended:
        run_service(services)
    command_time, commands = totals
    return timer.seconds / command_time, commands / command_time, round(timer.calls / commands)


# -- 2. append rate ------------------------------------------------------------------------------

def _entries(count: int) -> list[dict]:
    return [
        {"event_type": ev.TASK_COMPLETED, "actor": f"user{n % 20}", "timestamp": START + timedelta(seconds=n),
         "instance_id": f"{n // 10:08d}-0000-4000-8000-000000000000", "definition_key": "bench",
         "definition_version": 1, "element_id": f"task{n % 10}", "element_name": f"Task {n % 10}",
         "element_type": "userTask", "group": "clerks", "data": {"task_id": str(n), "form": {"amount": n}}}
        for n in range(count)
    ]


def append_rates(database: Database, count: int, per_command: int) -> dict[str, float]:
    """Events per second: record(), record_many(), and a plain insert of the same rows."""
    plain = AuditEvent.__table__.to_metadata(MetaData(), name="audit_plain")  # same columns and indexes
    for index in plain.indexes:
        index.name = f"plain_{index.name}"
    plain.create(database.engine)
    entries = _entries(count)

    began = time.perf_counter()
    for start in range(0, count, per_command):
        with database.transaction() as session:
            for entry in entries[start:start + per_command]:
                chain.record(session, **entry)
    recorded = count / (time.perf_counter() - began)

    # the same rows, stored as record() stored them, inserted without validation, hashing or lock
    with database.read() as session:
        rows = [dict(r._mapping) for r in session.execute(
            AuditEvent.__table__.select().order_by(AuditEvent.sequence).limit(count))]
    began = time.perf_counter()
    for start in range(0, count, per_command):
        with database.transaction() as session:
            session.execute(plain.insert(), rows[start:start + per_command])
    inserted = count / (time.perf_counter() - began)

    began = time.perf_counter()
    for start in range(0, count, per_command):
        with database.transaction() as session:
            chain.record_many(session, entries[start:start + per_command])
    batched = count / (time.perf_counter() - began)
    with database.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_plain"))
    return {"record": recorded, "record_many": batched, "plain": inserted}


# -- 3. verify and export rates ------------------------------------------------------------------

def bare_read_rate(database: Database) -> tuple[float, int]:
    """Rows per second of ``SELECT * FROM audit_event ORDER BY sequence`` through the DBAPI cursor."""
    began = time.perf_counter()
    with database.engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.execute("SELECT * FROM audit_event ORDER BY sequence")
        count = 0
        while rows := cursor.fetchmany(5000):
            count += len(rows)
        cursor.close()
    return count / (time.perf_counter() - began), count


def read_rates(services: Services, total: int) -> dict[str, float]:
    rates = {}
    began = time.perf_counter()
    result = services.audit.verify(AUDITOR)
    assert result.ok and result.events_checked == total, result.message
    rates["verify"] = total / (time.perf_counter() - began)
    for format_ in ("xes", "ocel", "csv"):
        began = time.perf_counter()
        size = sum(len(chunk) for chunk in services.audit.export(AUDITOR, format_))
        rates[format_] = total / (time.perf_counter() - began)
        rates[format_ + "_bytes"] = size
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000, help="log size for verify and export")
    parser.add_argument("--appends", type=int, default=4_000, help="events appended per append measurement")
    parser.add_argument("--per-command", type=int, default=8, help="audit events per transaction when appending")
    parser.add_argument("--seconds", type=float, default=5.0, help="time on the runtime workload")
    parser.add_argument("--database", help="a PostgreSQL URL of an empty database (default: a fresh SQLite file)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    database = Database(args.database or f"sqlite:///{folder / 'audit.db'}")
    database.drop_all()
    database.create_all()
    settings = Settings(data_dir=folder, database_url=database.url, secret_key="bench", scheduler=False).resolved()
    services = Services(settings, database=database, clock=ManualClock())
    backend = database.engine.dialect.name

    services.definitions.deploy(MODEL, "throughput.bpmn", "admin")
    run_service(services)  # warm up: specs cached, chain head created
    share, command_rate, per_command = command_share(database, services, args.seconds)
    print(f"audit log on {backend}")
    print(f"  throughput workload: {command_rate:7.1f} commands/s, {per_command} audit events per command, "
          f"{share:.1%} of command time spent on audit (target < 15%)")

    appends = append_rates(database, args.appends, args.per_command)
    ratio = appends["record"] / appends["plain"]
    print(f"  append, {args.per_command}/commit  : record() {appends['record']:8.0f} events/s, "
          f"record_many() {appends['record_many']:8.0f}, plain insert {appends['plain']:8.0f} "
          f"(record/plain {ratio:.2f})")

    with database.read() as session:
        existing = session.execute(text("SELECT count(*) FROM audit_event")).scalar_one()
    remaining = max(args.events - existing, 0)
    entries = _entries(remaining)
    for start in range(0, remaining, 10_000):
        with database.transaction() as session:
            chain.record_many(session, entries[start:start + 10_000])
    total = existing + remaining
    bare, counted = bare_read_rate(database)
    assert counted == total
    rates = read_rates(services, total)
    print(f"  reading {total} events: bare SQL {bare:9.0f} events/s")
    for name in ("verify", "xes", "ocel", "csv"):
        extra = f", {rates[name + '_bytes'] / total:.0f} bytes/event" if name != "verify" else ""
        print(f"  {name:<6}             : {rates[name]:9.0f} events/s ({rates[name] / bare:.3f} of bare SQL{extra})")
    print(f"RESULT audit ratio={ratio:.3f} record_per_s={appends['record']:.0f} plain_per_s={appends['plain']:.0f} "
          f"record_many_per_s={appends['record_many']:.0f} command_share={share:.3f} "
          f"verify_per_s={rates['verify']:.0f} xes_per_s={rates['xes']:.0f} ocel_per_s={rates['ocel']:.0f} "
          f"csv_per_s={rates['csv']:.0f} bare_read_per_s={bare:.0f} verify_ratio={rates['verify'] / bare:.3f} "
          f"xes_ratio={rates['xes'] / bare:.3f} ocel_ratio={rates['ocel'] / bare:.3f} backend={backend}")
    database.dispose()


if __name__ == "__main__":
    main()
