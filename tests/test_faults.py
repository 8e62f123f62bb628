"""Fault suite: a server process killed with SIGKILL in the middle of a load run, and database
connections cut under a running server. Afterwards nothing is half-written, no task is lost or
duplicated, every acknowledged start is stored, the audit chain verifies, and the server recovers
without a restart. Bounded: a few dozen cases per scenario."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, func, select, text

from bench.driver import PROCESS_KEY, LoadResult, ServerProcess, call, drive, one_case, prepare_database
from bpmn_server.identity.principal import system_principal
from bpmn_server.store.models import HumanTask, ProcessInstance

pytestmark = pytest.mark.slow


def _assert_consistent(services, acknowledged: list[str]) -> None:
    """Every acknowledged instance is stored; each is either completed or running with exactly one
    open task; no task row is duplicated; the audit chain is intact."""
    with services.database.read() as session:
        instances = {row.id: row.status for row in session.scalars(select(ProcessInstance))}
        open_tasks = dict(session.execute(
            select(HumanTask.instance_id, func.count()).where(HumanTask.status.in_(("open", "claimed")))
            .group_by(HumanTask.instance_id)).all())
        duplicates = session.execute(
            select(HumanTask.instance_id, HumanTask.spiff_task_id, func.count())
            .group_by(HumanTask.instance_id, HumanTask.spiff_task_id).having(func.count() > 1)).all()
    assert set(acknowledged) <= set(instances), "an instance the server acknowledged was lost"
    assert not duplicates
    for instance_id, status in instances.items():
        assert status in ("running", "completed"), (instance_id, status)
        assert open_tasks.get(instance_id, 0) == (1 if status == "running" else 0), instance_id
    assert services.audit.verify(system_principal()).ok


def test_server_killed_mid_load_loses_and_half_writes_nothing(services, settings, tmp_path):
    token = prepare_database(settings.database_url, tmp_path / "data")
    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    stop = threading.Event()
    result = LoadResult()

    def clients() -> None:
        workers = [threading.Thread(target=lambda n=n: [
            one_case(server.url, token, result, f"k{n}-{i}") for i in range(25) if not stop.is_set()])
            for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    load = threading.Thread(target=clients)
    load.start()
    assert result.wait_until_completed(8)
    server.kill()
    stop.set()
    load.join()

    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    try:
        _assert_consistent(services, result.started_ids)
        # every instance left waiting continues after the restart, over HTTP
        status, page = call(server.url, "GET", f"/tasks?processKey={PROCESS_KEY}&limit=200", token)
        assert status == 200
        for task in page["items"]:
            if task["status"] == "open":
                assert call(server.url, "POST", f"/tasks/{task['id']}/claim", token, {})[0] == 200
            assert call(server.url, "POST", f"/tasks/{task['id']}/complete", token, {"data": {}})[0] == 200
        after = drive([server.url], token, clients=2, cases_per_client=3)
        assert after.completed == 6 and after.errors == 0
    finally:
        server.stop()
    _assert_consistent(services, result.started_ids)
    with services.database.read() as session:
        assert set(session.scalars(select(ProcessInstance.status))) == {"completed"}


def test_database_connections_cut_then_server_recovers_without_restart(services, settings, tmp_path, backend):
    if backend != "postgres":
        pytest.skip("cutting server-side connections is a PostgreSQL scenario")
    token = prepare_database(settings.database_url, tmp_path / "data")
    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    try:
        assert drive([server.url], token, clients=2, cases_per_client=3).completed == 6
        database_name = settings.database_url.rsplit("/", 1)[1]
        admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            cut = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database_name}).scalar()
        admin.dispose()
        assert cut >= 1
        # the pool notices dead connections (pre-ping) and reconnects: no restart needed
        after = drive([server.url], token, clients=2, cases_per_client=3)
        assert after.completed == 6, after.errors
    finally:
        server.stop()
    _assert_consistent(services, [])
