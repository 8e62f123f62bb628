"""Throughput: start → user task → exclusive gateway → end, in instances per second

* through the service layer (``services.instances.start``, ``services.tasks.list/claim/complete``)
  on SQLite and on PostgreSQL (a fresh database ``bpmn_bench_throughput``),
* through HTTP: one gunicorn server on loopback (bench/driver.py) on SQLite, one client,
* bare SpiffWorkflow in memory on the same spec (``parser.spec.build_specs``) with the project's
  sandboxed script engine,
* the *durable floor*: bare SpiffWorkflow plus the least that storing DESIGN.md's model costs, written
  without any framework (the standard library's sqlite3, same file settings as the server): per
  instance three write transactions (start, claim, complete) and one read, the state stored and read
  back as JSON, a task row, and each audit event chained with sha256 under the head row. No
  implementation of this design on SQLite can beat it; its ratio bounds the service layer's. The
  same statements once more through SQLAlchemy Core (DESIGN.md's store toolkit, without the ORM),
* the *HTTP floor*: the same four requests answered by plain Flask doing nothing (bench/empty_api.py)
  on the same gunicorn settings and client (what serving costs as bpmn_server is served); and the
  least any server could cost: Flask's own work on the four requests, called in process, plus the
  loopback round trips to a server that answers without any work (bench/bare_http.py). The durable
  floors plus that least cost bound the HTTP ratio of any implementation of DESIGN.md's design,

all in one run; prints the ratios to bare Spiff, the SQL statements of a start and of a complete
(with few and with many instances stored), and the stored state after 200 iterations of a script
loop. Bounded: about 30-40 s.

    .venv/bin/python bench/throughput.py [--seconds 4] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
                                         [--no-postgres] [--no-http] [--profile out.prof]

Ends with ``RESULT throughput ratio=<service/bare on SQLite> http_ratio=<…> pg_ratio=<…>
floor_ratio=<durable floor/bare> core_floor_ratio=<the same through SQLAlchemy Core/bare>
http_ceiling_ratio=<Core floor + least HTTP cost/bare> start_sql=<n> complete_sql=<n> state_bytes_200=<n>``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (python bench/throughput.py) or as bench.throughput
    sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from bench.driver import ServerProcess, call, prepare_database  # noqa: E402
from bench.load import fresh_postgres  # noqa: E402
from bench.runtime import StatementCounter, rate  # noqa: E402
from bpmn_server.clock import ManualClock  # noqa: E402
from bpmn_server.identity.principal import Principal  # noqa: E402
from bpmn_server.parser.document import BpmnDocument  # noqa: E402
from bpmn_server.parser.spec import build_specs  # noqa: E402
from bpmn_server.services import Services  # noqa: E402
from bpmn_server.settings import Settings  # noqa: E402
from bpmn_server.store.database import _sqlite_engine  # noqa: E402
from bpmn_server.store.models import ProcessInstance  # noqa: E402

KEY = "throughput"
MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="throughput_defs"
    targetNamespace="http://bpmn-server.example/bench">
  <bpmn:process id="{KEY}" name="Throughput" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="decide" name="Decide" camunda:candidateGroups="staff">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="approved" default="f4">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="done"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="refused"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
    <bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="approved"/>
    <bpmn:sequenceFlow id="f3" sourceRef="approved" targetRef="done">
      <bpmn:conditionExpression>${{approved}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="approved" targetRef="refused"/>
  </bpmn:process>
</bpmn:definitions>
""".encode()

LOOP_KEY = "throughput_loop"
LOOPS = 200
LOOP_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="loop_defs"
    targetNamespace="http://bpmn-server.example/bench">
  <bpmn:process id="{LOOP_KEY}" name="Throughput loop" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>l1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:exclusiveGateway id="again"><bpmn:incoming>l1</bpmn:incoming><bpmn:incoming>l4</bpmn:incoming>
      <bpmn:outgoing>l2</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:scriptTask id="count" name="Count" scriptFormat="python">
      <bpmn:incoming>l2</bpmn:incoming><bpmn:outgoing>l3</bpmn:outgoing>
      <bpmn:script>i = i + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="more" default="l5">
      <bpmn:incoming>l3</bpmn:incoming><bpmn:outgoing>l4</bpmn:outgoing><bpmn:outgoing>l5</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:userTask id="look" name="Look"><bpmn:incoming>l5</bpmn:incoming><bpmn:outgoing>l6</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>l6</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="l1" sourceRef="start" targetRef="again"/>
    <bpmn:sequenceFlow id="l2" sourceRef="again" targetRef="count"/>
    <bpmn:sequenceFlow id="l3" sourceRef="count" targetRef="more"/>
    <bpmn:sequenceFlow id="l4" sourceRef="more" targetRef="again">
      <bpmn:conditionExpression>${{i &lt; {LOOPS}}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="l5" sourceRef="more" targetRef="look"/>
    <bpmn:sequenceFlow id="l6" sourceRef="look" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""".encode()

STAFF = Principal("bench", frozenset({"staff"}))
DECISION = {"approved": True}


# -- the three ways to run one instance ------------------------------------------------------------
def run_bare(specs, script_engine) -> None:
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=script_engine)
    workflow.do_engine_steps()
    task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
    task.data.update(DECISION)
    task.run()
    workflow.do_engine_steps()
    assert workflow.is_completed() and workflow.data.get("approved") is True


FLOOR_SCHEMA = """
CREATE TABLE instance (id TEXT PRIMARY KEY, status TEXT, state TEXT, row_version INTEGER);
CREATE TABLE task (id TEXT PRIMARY KEY, instance_id TEXT, status TEXT, assignee TEXT, candidate_group TEXT);
CREATE INDEX task_instance ON task (instance_id, status);
CREATE TABLE audit (sequence INTEGER PRIMARY KEY, instance_id TEXT, event_type TEXT, actor TEXT, data TEXT,
                    prev_hash TEXT, hash TEXT);
CREATE TABLE head (id INTEGER PRIMARY KEY, sequence INTEGER, hash TEXT);
INSERT INTO head VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
"""


class DurableFloor:
    """Bare Spiff plus the least this storage design writes (see the module docstring), either through
    the standard library's sqlite3 or through SQLAlchemy Core (``sqlalchemy=True``: the toolkit
    DESIGN.md's store is built on, without the ORM); the same SQL text either way."""

    def __init__(self, path: Path, engine, specs, *, sqlalchemy: bool = False) -> None:
        self.engine, self.specs = engine, specs
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        if not self.db.execute("SELECT name FROM sqlite_master WHERE name = 'head'").fetchone():
            self.db.executescript(FLOOR_SCHEMA)
        # as the server's store: writers begin IMMEDIATE, readers a plain (deferred) BEGIN
        self.core = {begin: _sqlite_engine(f"sqlite:///{path}", False, begin=begin)
                     for begin in ("BEGIN IMMEDIATE", "BEGIN")} if sqlalchemy else None
        self._texts: dict[str, Any] = {}

    @contextmanager
    def transaction(self, *, write: bool = True):
        """A transaction; yields ``execute(sql, params)`` returning a cursor / result."""
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        if self.core is not None:
            with self.core[begin].begin() as connection:
                yield lambda sql, params=None: connection.execute(self._text(sql), params or {})
            return
        self.db.execute(begin)
        try:
            yield lambda sql, params=None: self.db.execute(sql, params or {})
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _text(self, sql: str):
        if sql not in self._texts:
            self._texts[sql] = text(sql)
        return self._texts[sql]

    @staticmethod
    def _audit(execute, instance_id: str, *event_types: str) -> None:
        sequence, prev = execute("SELECT sequence, hash FROM head WHERE id = 1").fetchone()
        for event_type in event_types:
            sequence += 1
            data = json.dumps({"sequence": sequence, "instance_id": instance_id, "event_type": event_type,
                               "actor": STAFF.username}, sort_keys=True)
            digest = hashlib.sha256((prev + data).encode()).hexdigest()
            execute("INSERT INTO audit VALUES (:sequence, :instance, :type, :actor, :data, :prev, :hash)",
                    {"sequence": sequence, "instance": instance_id, "type": event_type, "actor": STAFF.username,
                     "data": data, "prev": prev, "hash": digest})
            prev = digest
        execute("UPDATE head SET sequence = :sequence, hash = :hash WHERE id = 1", {"sequence": sequence, "hash": prev})

    def run(self) -> None:
        workflow = BpmnWorkflow(self.specs.spec, self.specs.subprocess_specs, script_engine=self.engine.script_engine)
        workflow.do_engine_steps()
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
        instance_id = str(uuid.uuid4())
        with self.transaction() as execute:  # start
            execute("INSERT INTO instance VALUES (:id, 'waiting', :state, 1)",
                    {"id": instance_id, "state": json.dumps(self.engine.dump(workflow))})
            execute("INSERT INTO task VALUES (:id, :instance, 'open', NULL, 'staff')",
                    {"id": str(ready.id), "instance": instance_id})
            self._audit(execute, instance_id, "instance-started", "task-created")
        with self.transaction(write=False) as execute:  # list
            (found,) = execute("SELECT id FROM task WHERE instance_id = :instance AND status = 'open'",
                               {"instance": instance_id}).fetchone()
        with self.transaction() as execute:  # claim
            execute("UPDATE task SET status = 'claimed', assignee = :user WHERE id = :id AND status = 'open'",
                    {"user": STAFF.username, "id": found})
            self._audit(execute, instance_id, "task-claimed")
        with self.transaction() as execute:  # complete
            state, version = execute("SELECT state, row_version FROM instance WHERE id = :id",
                                     {"id": instance_id}).fetchone()
            workflow = self.engine.restore_with(self.specs, json.loads(state), ManualClock())
            task = workflow.get_task_from_id(uuid.UUID(found))
            task.data.update(DECISION)
            task.run()
            workflow.do_engine_steps()
            assert workflow.is_completed()
            execute("UPDATE instance SET status = 'completed', state = :state, row_version = :next WHERE id = :id "
                    "AND row_version = :version", {"state": json.dumps(self.engine.dump(workflow)),
                                                   "next": version + 1, "id": instance_id, "version": version})
            execute("UPDATE task SET status = 'completed' WHERE id = :id", {"id": found})
            self._audit(execute, instance_id, "task-completed", "element-completed", "element-completed",
                        "instance-completed")


def run_service(services: Services, counter: StatementCounter | None = None) -> dict[str, int]:
    """start → list my tasks → claim → complete; the SQL statements of each step if counted."""
    counts: dict[str, int] = {}
    mark = counter.count if counter else 0

    def step(name: str) -> None:
        nonlocal mark
        if counter:
            counts[name], mark = counter.count - mark, counter.count

    instance = services.instances.start(KEY, principal=STAFF, business_key="b")
    step("start")
    task = services.tasks.list(STAFF, instance_id=instance.id).items[0]
    step("list")
    services.tasks.claim(task.id, STAFF)
    step("claim")
    done = services.tasks.complete(task.id, DECISION, STAFF)
    step("complete")
    assert done.status == "completed"
    return counts


def run_http(base: str, token: str) -> None:
    status, instance = call(base, "POST", "/process-instances", token, {"key": KEY, "businessKey": "h"})
    assert status == 201, (status, instance)
    status, page = call(base, "GET", f"/tasks?instanceId={instance['id']}", token)
    task_id = page["items"][0]["id"]
    assert call(base, "POST", f"/tasks/{task_id}/claim", token, {})[0] == 200
    status, body = call(base, "POST", f"/tasks/{task_id}/complete", token, {"data": DECISION})
    assert status == 200, (status, body)


# -- set-up ----------------------------------------------------------------------------------------
def service_stack(database_url: str, folder: Path) -> Services:
    settings = Settings(data_dir=folder, database_url=database_url, secret_key="bench", scheduler=False).resolved()
    services = Services(settings, clock=ManualClock())
    services.create_schema()
    for model, name in ((MODEL, "throughput.bpmn"), (LOOP_MODEL, "loop.bpmn")):
        services.definitions.deploy(model, name, "admin")
    return services


def measure_service(services: Services, seconds: float, *, more: int) -> dict:
    """Rate of whole instances, and SQL per step with few and with ``more`` more instances stored."""
    run_service(services)  # warm up: specs cached, audit head created
    counter = StatementCounter(services.database)
    few = run_service(services, counter)
    per_s, count, per_cpu = rate(lambda: run_service(services), seconds)
    for _ in range(max(0, more - count)):
        run_service(services)
    many = run_service(services, counter)
    return {"per_s": per_s, "count": count, "per_cpu": per_cpu, "sql_few": few, "sql_many": many}


def loop_state_bytes(services: Services) -> tuple[int, int]:
    """Stored state (bytes of JSON) after the script loop ran 200 times, and the tasks it holds."""
    instance = services.instances.start(LOOP_KEY, principal=STAFF, variables={"i": 0})
    assert instance.variables.get("i") == LOOPS, instance.variables
    with services.database.read() as session:
        state = session.scalar(select(ProcessInstance.state).where(ProcessInstance.id == instance.id))
    return len(json.dumps(state)), len(state["tasks"])


def measure_http(folder: Path, seconds: float) -> dict:
    """Instances/s over HTTP, the same client each time: bpmn_server (``per_s``), plain Flask doing
    nothing on the same gunicorn settings (``empty_per_s``), a server doing nothing at all
    (``bare_per_s``, bench/bare_http.py); and Flask's own work on the four requests in process
    (``flask_per_s``)."""
    database_url = f"sqlite:///{folder / 'http.db'}"
    token = prepare_database(database_url, folder)  # schema, the driver's model, user "loader" in "staff"
    services = Services(Settings(data_dir=folder, database_url=database_url, secret_key="load").resolved())
    services.definitions.deploy(MODEL, "throughput.bpmn", "admin")
    services.database.dispose()
    result = {}
    for name, app in (("", "bpmn_server.wsgi:app"), ("empty_", "bench.empty_api:app")):
        server = ServerProcess(database_url, folder, threads=4, app=app).start()
        try:
            result[f"{name}per_s"], result[f"{name}count"] = _http_rate(server.url, token, seconds)
        finally:
            server.stop()
    bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_http.py")], stdout=subprocess.PIPE, text=True)
    try:
        result["bare_per_s"], _ = _http_rate(f"http://127.0.0.1:{bare.stdout.readline().strip()}", token, seconds / 2)
    finally:
        bare.kill()
        bare.wait()
    result["flask_per_s"] = rate(_flask_in_process(), seconds / 2)[0]
    return result


def _http_rate(base: str, token: str, seconds: float) -> tuple[float, int]:
    one_instance = functools.partial(run_http, base, token)
    for _ in range(3):
        one_instance()  # warm up
    per_s, count, _ = rate(one_instance, seconds)
    return per_s, count


def _flask_in_process():
    """One instance's four requests handed to bench/empty_api.py's Flask app as WSGI calls, no server:
    what Flask itself costs, whatever server runs it."""
    from werkzeug.test import EnvironBuilder

    from bench.empty_api import app

    requests = [("POST", "/api/v1/process-instances", "", {"key": KEY, "businessKey": "h"}),
                ("GET", "/api/v1/tasks", "instanceId=bare", None),
                ("POST", "/api/v1/tasks/bare/claim", "", {}),
                ("POST", "/api/v1/tasks/bare/complete", "", {"data": DECISION})]
    calls = []
    for method, path, query, body in requests:
        data = json.dumps(body).encode() if body is not None else b""
        calls.append((EnvironBuilder(path=path, method=method, query_string=query, data=data,
                                     content_type="application/json",
                                     headers={"Authorization": "Bearer t"}).get_environ(), data))

    def four_requests() -> None:
        for environ, data in calls:
            b"".join(app.wsgi_app({**environ, "wsgi.input": io.BytesIO(data)}, lambda *_: None))

    return four_requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="time per measurement")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--more", type=int, default=300, help="instances stored before the second SQL count")
    parser.add_argument("--profile", help="profile the SQLite service loop into this file (cProfile) and stop")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-throughput-"))

    sqlite = service_stack(f"sqlite:///{folder / 'service.db'}", folder)
    definition = sqlite.definitions.get(KEY)
    specs = build_specs(BpmnDocument.load(MODEL, "throughput.bpmn"), KEY)  # the same spec, built afresh
    if args.profile:
        import cProfile

        run_service(sqlite)
        profiler = cProfile.Profile()
        profiler.runcall(rate, lambda: run_service(sqlite), args.seconds)
        profiler.dump_stats(args.profile)
        print(f"profile of the SQLite service loop written to {args.profile}")
        return
    assert sqlite.engine.specs_for(definition).spec.task_specs.keys() == specs.spec.task_specs.keys()
    run_bare(specs, sqlite.engine.script_engine)
    bare_per_s, bare_count, bare_cpu = rate(lambda: run_bare(specs, sqlite.engine.script_engine), args.seconds / 2)
    floors = {}
    for name, sqlalchemy in (("sqlite3", False), ("core", True)):
        floor = DurableFloor(folder / "floor.db", sqlite.engine, specs, sqlalchemy=sqlalchemy)
        floor.run()
        floors[name] = rate(floor.run, args.seconds / 2)[0]
    floor_per_s, core_floor_per_s = floors["sqlite3"], floors["core"]
    service = measure_service(sqlite, args.seconds, more=args.more)
    state_bytes, state_tasks = loop_state_bytes(sqlite)
    sqlite.database.dispose()

    pg = None
    if not args.no_postgres:
        pg_services = service_stack(fresh_postgres(args.postgres, "bpmn_bench_throughput"), folder)
        pg = measure_service(pg_services, args.seconds, more=args.more)
        pg_services.database.dispose()
    http = None if args.no_http else measure_http(folder, args.seconds)

    ratio = service["per_s"] / bare_per_s
    print(f"start -> user task -> exclusive gateway -> end (one client, sequential); bare {bare_count} runs")
    print(f"  bare SpiffWorkflow      : {bare_per_s:8.1f} instances/s  ({1000 / bare_per_s:6.2f} ms each)")
    floor_ratio, core_floor_ratio = floor_per_s / bare_per_s, core_floor_per_s / bare_per_s
    print(f"  durable floor (sqlite3) : {floor_per_s:8.1f} instances/s  ({1000 / floor_per_s:6.2f} ms each)"
          f"  ratio {floor_ratio:.3f}: the best any implementation of this storage design can do here")
    print(f"  same, SQLAlchemy Core   : {core_floor_per_s:8.1f} instances/s  ({1000 / core_floor_per_s:6.2f} ms each)"
          f"  ratio {core_floor_ratio:.3f}: the best on DESIGN.md's store toolkit, without the ORM")
    print(f"  service layer, SQLite   : {service['per_s']:8.1f} instances/s  ({1000 / service['per_s']:6.2f} ms each)"
          f"  ratio {ratio:.3f} (target >= 0.3); per CPU s {service['per_cpu']:.1f} vs bare {bare_cpu:.1f}")
    pg_ratio = http_ratio = http_ceiling_ratio = float("nan")
    if pg:
        pg_ratio = pg["per_s"] / bare_per_s
        print(f"  service layer, Postgres : {pg['per_s']:8.1f} instances/s  ({1000 / pg['per_s']:6.2f} ms each)"
              f"  ratio {pg_ratio:.3f}")
    if http:
        http_ratio = http["per_s"] / bare_per_s
        print(f"  HTTP (gunicorn, SQLite) : {http['per_s']:8.1f} instances/s  ({1000 / http['per_s']:6.2f} ms each)"
              f"  ratio {http_ratio:.3f} (target >= 0.15)")
        print(f"  HTTP floor, gunicorn    : {http['empty_per_s']:8.1f} instances/s  "
              f"({1000 / http['empty_per_s']:6.2f} ms each): the four requests, plain Flask doing nothing")
        least_ms = 1000 / http["bare_per_s"] + 1000 / http["flask_per_s"]
        print(f"  HTTP floor, any server  : {least_ms:6.2f} ms each = loopback round trips "
              f"{1000 / http['bare_per_s']:.2f} ms (a server doing nothing) + Flask in process "
              f"{1000 / http['flask_per_s']:.2f} ms")
        sqlite3_ceiling = 1000 / (least_ms + 1000 / floor_per_s) / bare_per_s
        http_ceiling_ratio = 1000 / (least_ms + 1000 / core_floor_per_s) / bare_per_s
        print(f"  best HTTP ratio possible: {http_ceiling_ratio:.3f} on DESIGN.md's store (Core floor + least HTTP), "
              f"{sqlite3_ceiling:.3f} on hand-written sqlite3 (target >= 0.15)")
    for name, result in (("SQLite", service), ("PostgreSQL", pg)):
        if result:
            few, many = result["sql_few"], result["sql_many"]
            print(f"  SQL per step, {name:10s}: " + ", ".join(f"{k} {few[k]}" for k in few)
                  + f"  (after {args.more}+ instances: " + ", ".join(f"{k} {many[k]}" for k in many) + ")")
    print(f"  stored state after {LOOPS} script-loop iterations: {state_bytes} bytes of JSON, {state_tasks} tasks")
    print(f"RESULT throughput ratio={ratio:.3f} http_ratio={http_ratio:.3f} pg_ratio={pg_ratio:.3f} "
          f"floor_ratio={floor_ratio:.3f} core_floor_ratio={core_floor_ratio:.3f} "
          f"http_ceiling_ratio={http_ceiling_ratio:.3f} "
          f"start_sql={service['sql_few']['start']} complete_sql={service['sql_few']['complete']} "
          f"state_bytes_200={state_bytes}")


if __name__ == "__main__":
    main()
