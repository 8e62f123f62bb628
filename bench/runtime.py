"""Runtime overhead: the refund example started and run to its end (review 300 EUR -> pay) through
InstanceService/TaskService on SQLite, against bare SpiffWorkflow in memory on the same spec with the
same sandboxed script engine, in the same process. Also counts SQL statements per command.

    .venv/bin/python bench/runtime.py [--seconds 8]

Ends with ``RESULT runtime ratio=<service/bare> ...`` (instances per second through the services
divided by bare Spiff; higher is better).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import event, select

from bpmn_server.clock import ManualClock
from bpmn_server.identity.principal import Principal
from bpmn_server.services import Services
from bpmn_server.settings import Settings
from bpmn_server.store import Database
from bpmn_server.store.models import ProcessInstance

ROOT = Path(__file__).resolve().parent.parent
REVIEW = {"customer_name": "Ann Smith", "order_id": "A-1", "amount": 300, "reason": "late"}
PAYMENT = {"payment_reference": "PSP-1", "paid_on": "2026-01-06"}
CLERK = Principal("clerk", frozenset({"clerks"}))
ACCOUNTANT = Principal("accountant", frozenset({"accounting"}))


class StatementCounter:
    def __init__(self, database: Database) -> None:
        self.count = 0
        for engine in database.engines:
            event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args) -> None:
        self.count += 1


def run_through_services(services: Services, counter: StatementCounter | None = None) -> dict[str, int]:
    statements = {}
    mark = counter.count if counter else 0
    instance = services.instances.start("refund_request", principal=CLERK, business_key="A-1")
    if counter:
        statements["start"], mark = counter.count - mark, counter.count
    review = services.tasks.list(CLERK, instance_id=instance.id).items[0]
    if counter:
        statements["list"], mark = counter.count - mark, counter.count
    services.tasks.complete(review.id, REVIEW, CLERK)
    if counter:
        statements["complete"], mark = counter.count - mark, counter.count
    payment = services.tasks.list(ACCOUNTANT, instance_id=instance.id).items[0]
    services.tasks.complete(payment.id, PAYMENT, ACCOUNTANT)
    if counter:
        statements["list+complete"] = counter.count - mark
    return statements


def run_bare(specs, script_engine) -> None:
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=script_engine)
    workflow.do_engine_steps()
    for data in (REVIEW, PAYMENT):
        task = workflow.get_tasks(state=TaskState.READY, manual=True)[0]
        task.data.update(data)
        task.run()
        workflow.do_engine_steps()
    assert workflow.is_completed()


def rate(run, seconds: float) -> tuple[float, int, float]:
    """Runs per wall-clock second, the number of runs, and runs per CPU second of this process (the
    fairer figure on a shared machine: waiting for a core does not count)."""
    count, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        run()
        count += 1
    return count / (time.perf_counter() - started), count, count / max(time.process_time() - cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement (two measurements)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    database = Database(f"sqlite:///{folder / 'bench.db'}")
    database.create_all()
    settings = Settings(data_dir=folder, database_url=database.url, secret_key="bench", scheduler=False).resolved()
    services = Services(settings, database=database, clock=ManualClock())
    services.definitions.deploy((ROOT / "diagrams" / "refund-request.bpmn").read_bytes(), "refund.bpmn", "admin")
    definition = services.definitions.get("refund_request")
    specs = services.engine.specs_for(definition)

    run_through_services(services)  # warm up: specs cached, audit head created
    counter = StatementCounter(database)
    statements = run_through_services(services, counter)
    service_rate, service_count, service_cpu = rate(lambda: run_through_services(services), args.seconds)
    bare_rate, bare_count, bare_cpu = rate(lambda: run_bare(specs, services.engine.script_engine), args.seconds)
    with database.read() as session:  # stored state of a completed instance (JSON, without the spec)
        state_bytes = len(json.dumps(session.scalars(select(ProcessInstance.state).limit(1)).first()))
    ratio = service_rate / bare_rate
    print(f"refund process start -> review -> pay -> end ({service_count} through services, {bare_count} bare)")
    print(f"  services on SQLite : {service_rate:8.1f} instances/s  ({1000 / service_rate:.1f} ms each)")
    print(f"  bare SpiffWorkflow : {bare_rate:8.1f} instances/s  ({1000 / bare_rate:.1f} ms each)")
    print(f"  per CPU second     : services {service_cpu:.1f}, bare {bare_cpu:.1f} (ratio {service_cpu / bare_cpu:.3f})")
    print(f"  stored state       : {state_bytes} bytes of JSON per completed instance")
    print("  SQL statements     : " + ", ".join(f"{k} {v}" for k, v in statements.items()))
    print(f"RESULT runtime ratio={ratio:.3f} service_per_s={service_rate:.1f} bare_per_s={bare_rate:.1f} "
          f"cpu_ratio={service_cpu / bare_cpu:.3f} sql_start={statements['start']} sql_complete={statements['complete']} state_bytes={state_bytes}")


if __name__ == "__main__":
    main()
