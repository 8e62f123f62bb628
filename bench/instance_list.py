"""Instance lists for people who may read only some instances (runtime/instances.py: the people of a
case), against an administrator's list of all of them, with many instances stored.

Stores one real instance of bench/throughput.py's model, then clones its rows with SQL (instance,
task, candidate-group row) up to ``--instances``: one in a hundred has a task for group ``staff``,
the rest for twenty other groups; fifty different starters. Then times a page of 50 with its total
for an administrator (every instance), for ``bench`` in group ``staff`` (1 %) and for a user who may
read none, on SQLite and PostgreSQL (a fresh database ``bpmn_bench_instance_list``).

    .venv/bin/python bench/instance_list.py [--instances 50000] [--no-postgres]

Ends with ``RESULT instance_list ratio=<user/administrator on SQLite> …`` (1 would mean that
deciding what a user may read costs nothing; lower is better).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script (python bench/instance_list.py) or as bench.instance_list
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from bench.load import fresh_postgres  # noqa: E402
from bench.throughput import KEY, STAFF, service_stack  # noqa: E402
from bpmn_server.identity.principal import Principal  # noqa: E402
from bpmn_server.store.models import HumanTask, ProcessInstance, TaskCandidateGroup  # noqa: E402

READERS = {"admin": Principal("admin", frozenset(), is_admin=True), "staff": STAFF,
           "nobody": Principal("nobody", frozenset({"sales"}))}
BATCH = 2000


def clone_instances(services, count: int) -> None:
    """``count`` copies of one started instance's rows, with varied starters and candidate groups."""
    model = services.instances.start(KEY, principal=STAFF)
    with services.database.read() as session:
        instance = session.get(ProcessInstance, model.id)
        task = session.scalars(select(HumanTask).where(HumanTask.instance_id == model.id)).one()
        instance_row = {c.name: getattr(instance, c.name) for c in ProcessInstance.__table__.c}
        task_row = {c.name: getattr(task, c.name) for c in HumanTask.__table__.c}
    with services.database.transaction() as session:
        connection = session.connection()
        for first in range(0, count, BATCH):
            instances, tasks, groups = [], [], []
            for n in range(first, min(count, first + BATCH)):
                instance_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
                group = "staff" if n % 100 == 0 else f"group{n % 20}"
                instances.append({**instance_row, "id": instance_id, "started_by": f"user{n % 50}"})
                tasks.append({**task_row, "id": task_id, "instance_id": instance_id,
                              "spiff_task_id": str(uuid.uuid4()), "candidate_groups": [group]})
                groups.append({"task_id": task_id, "group_name": group})
            connection.execute(insert(ProcessInstance.__table__), instances)
            connection.execute(insert(HumanTask.__table__), tasks)
            connection.execute(insert(TaskCandidateGroup.__table__), groups)


def list_times(services, repeats: int = 5) -> dict[str, tuple[float, int]]:
    """Milliseconds for one page of 50 with its total, and that total, per reader."""
    found = {}
    for name, reader in READERS.items():
        services.instances.list(principal=reader, limit=50)  # warm up
        began = time.perf_counter()
        for _ in range(repeats):
            page = services.instances.list(principal=reader, limit=50)
        found[name] = ((time.perf_counter() - began) / repeats * 1000, page.total)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-instance-list-"))
    stores = {"sqlite": f"sqlite:///{folder / 'list.db'}"}
    if not args.no_postgres:
        stores["postgres"] = fresh_postgres(args.postgres, "bpmn_bench_instance_list")
    figures = {}
    for store, url in stores.items():
        services = service_stack(url, folder)
        clone_instances(services, args.instances)
        figures[store] = list_times(services)
        services.database.dispose()
        for name, (ms, total) in figures[store].items():
            print(f"  {store:8s} {name:7s}: {ms:7.1f} ms for a page of 50 and the total ({total} readable)")
    sqlite = figures["sqlite"]
    ratio = sqlite["staff"][0] / sqlite["admin"][0]
    extra = " ".join(f"{store}_{name}_ms={ms:.1f}" for store, by_reader in figures.items()
                     for name, (ms, _total) in by_reader.items())
    print(f"RESULT instance_list ratio={ratio:.2f} instances={args.instances} {extra}")


if __name__ == "__main__":
    main()
