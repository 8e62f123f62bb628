"""Fault suite: a server process killed with SIGKILL in the middle of a load run, database
connections cut under a running server, and a PostgreSQL server of the test's own restarted or
crashed under load. Afterwards nothing is half-written, no task is lost or duplicated, every
acknowledged start is stored, the audit chain verifies, and the server recovers without a restart.
Bounded: a few dozen cases per scenario."""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from bench.driver import PROCESS_KEY, LoadResult, ServerProcess, call, drive, one_case, prepare_database
from bpmn_server import create_app
from bpmn_server.identity.principal import system_principal
from bpmn_server.services import Services
from bpmn_server.settings import Settings
from bpmn_server.store.models import HumanTask, ProcessInstance

from .private_postgres import PrivatePostgres, free_port, postgres_bindir, private_postgres

pytestmark = pytest.mark.slow
DATABASE_UNAVAILABLE = (503, "/problems/database-unavailable")


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


def _start_load(server: ServerProcess, token: str, cases_per_client: int, *, stop: threading.Event | None = None,
                back: threading.Event | None = None) -> tuple[LoadResult, list[threading.Thread]]:
    """Four client threads running start → claim → complete against ``server`` until ``stop``. A
    client whose case failed waits for ``back`` before its next one (as a client honouring
    Retry-After would), so an outage costs each client one failed case, not a burst of them."""
    result = LoadResult()

    def client(number: int) -> None:
        for i in range(cases_per_client):
            if stop is not None and stop.is_set():
                return
            if not one_case(server.url, token, result, f"k{number}-{i}") and back is not None:
                back.wait(timeout=60)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    return result, clients


def _join(clients: list[threading.Thread]) -> None:
    """Wait for the load clients; each request has a timeout, so a hang shows up here as a failure."""
    for client in clients:
        client.join(timeout=90)
    assert not any(client.is_alive() for client in clients), "a load client hangs"


def _finish_waiting_work(server: ServerProcess, token: str) -> None:
    """Every instance a fault left waiting continues, over HTTP: claim and complete its task."""
    status, page = call(server.url, "GET", f"/tasks?processKey={PROCESS_KEY}&limit=200", token)
    assert status == 200
    for task in page["items"]:
        if task["status"] == "open":
            assert call(server.url, "POST", f"/tasks/{task['id']}/claim", token, {})[0] == 200
        assert call(server.url, "POST", f"/tasks/{task['id']}/complete", token, {"data": {}})[0] == 200


def test_server_killed_mid_load_loses_and_half_writes_nothing(services, settings, tmp_path):
    token = prepare_database(settings.database_url, tmp_path / "data")
    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    stop = threading.Event()
    result, clients = _start_load(server, token, 25, stop=stop)
    assert result.wait_until_completed(8)
    server.kill()
    stop.set()
    _join(clients)

    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    try:
        _assert_consistent(services, result.started_ids)
        _finish_waiting_work(server, token)
        after = drive([server.url], token, clients=2, cases_per_client=3)
        assert after.completed == 6 and after.errors == 0
    finally:
        server.stop()
    _assert_consistent(services, result.started_ids)
    with services.database.read() as session:
        assert set(session.scalars(select(ProcessInstance.status))) == {"completed"}


def test_starts_retried_with_their_idempotency_key_across_a_kill_start_each_instance_once(services, settings,
                                                                                       tmp_path):
    """Clients start instances with an Idempotency-Key each; the server is killed mid-load, so some
    answers never arrive (whether those starts committed, the client cannot know). Afterwards every
    client retries every start it sent with the same key, blindly: each business key has exactly one
    instance, and every retry answers 201."""
    token = prepare_database(settings.database_url, tmp_path / "data")
    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    first_answers: dict[str, int] = {}
    sent = threading.Condition()
    stop = threading.Event()

    def start(base: str, key: str) -> int:
        return call(base, "POST", "/process-instances", token, {"key": PROCESS_KEY, "businessKey": key},
                    headers={"Idempotency-Key": key})[0]

    def client(number: int) -> None:
        for i in range(60):
            if stop.is_set():
                return
            status = start(server.url, f"i{number}-{i}")
            with sent:
                first_answers[f"i{number}-{i}"] = status
                sent.notify_all()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    with sent:
        assert sent.wait_for(lambda: len(first_answers) >= 16, timeout=60)
    server.kill()
    stop.set()
    _join(clients)
    assert 0 in first_answers.values(), "the kill cut no request short"

    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    try:
        assert {key: start(server.url, key) for key in first_answers} == dict.fromkeys(first_answers, 201)
    finally:
        server.stop()
    with services.database.read() as session:
        per_key = dict(session.execute(select(ProcessInstance.business_key, func.count())
                                       .group_by(ProcessInstance.business_key)).all())
    assert per_key == dict.fromkeys(first_answers, 1)
    _assert_consistent(services, [])


def test_database_connections_cut_then_server_recovers_without_restart(services, settings, tmp_path, backend):
    if backend != "postgres":
        pytest.skip("cutting server-side connections is a PostgreSQL scenario")
    token = prepare_database(settings.database_url, tmp_path / "data")
    server = ServerProcess(settings.database_url, tmp_path / "data", threads=4).start()
    try:
        assert drive([server.url], token, clients=2, cases_per_client=3).completed == 6
        database_name = settings.database_url.rsplit("/", 1)[1]
        admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # the timeout makes it wait until those backends are gone
            cut = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database_name}).scalar()
        admin.dispose()
        assert cut >= 1
        # the pool notices dead connections (pre-ping) and reconnects: no restart needed
        after = drive([server.url], token, clients=2, cases_per_client=3)
        assert after.completed == 6, after.failures
    finally:
        server.stop()
    _assert_consistent(services, [])


@pytest.fixture(scope="session")
def own_postgres():
    """A PostgreSQL server of this test session's own, which a test may restart or crash without
    disturbing the shared server the other tests use; stopped and removed afterwards."""
    if not os.environ.get("BPMN_SERVER_TEST_POSTGRES_URL"):
        pytest.skip("restarting PostgreSQL is a PostgreSQL scenario: set BPMN_SERVER_TEST_POSTGRES_URL (.ci/run does)")
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail("BPMN_SERVER_TEST_POSTGRES_URL is set, but the PostgreSQL server programs (initdb, pg_ctl) "
                    "are not installed: not found by pg_config --bindir, in /usr/lib/postgresql/<version>/bin "
                    "or on the PATH. Install the PostgreSQL server package.", pytrace=False)
    with private_postgres(bindir) as server:
        yield server


def _readiness(server: ServerProcess) -> tuple[int, dict, str | None]:
    """``/readyz``: status, body and Retry-After."""
    return _raw(f"{server.url}/readyz")


def _raw(url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict, str | None]:
    """One request with its Retry-After header (``call`` returns status and body only)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                                     if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        assert error.headers.get_content_type() == "application/problem+json"
        return error.code, json.loads(error.read()), error.headers.get("Retry-After")


def _assert_down(server: ServerProcess, token: str) -> None:
    """With the database gone: the API answers 503 problem+json with Retry-After at once, the server
    reports not ready, and is still alive."""
    status, problem, retry_after = _raw(f"{server.url}/api/v1/process-instances", token, {"key": PROCESS_KEY})
    assert (status, problem["type"]) == DATABASE_UNAVAILABLE and int(retry_after) > 0, problem
    status, problem, retry_after = _raw(f"{server.url}/api/v1/tasks", token)
    assert (status, problem["type"]) == DATABASE_UNAVAILABLE and int(retry_after) > 0, problem
    status, problem, retry_after = _readiness(server)
    assert (status, problem["type"]) == (503, "/problems/not-ready") and int(retry_after) > 0
    assert _raw(f"{server.url}/healthz")[:2] == (200, {"status": "ok"})


@pytest.mark.parametrize("outage", ["restart", "crash"])
def test_postgres_restarted_under_load_fails_requests_cleanly_then_recovers(own_postgres: PrivatePostgres,
                                                                            outage, tmp_path):
    """``restart``: ``pg_ctl restart -m fast`` (sessions terminated, transactions rolled back) while
    requests are in flight. ``crash``: ``pg_ctl stop -m immediate`` under load, requests while it is
    down, then start (crash recovery from the WAL). Either way bpmn_server keeps running."""
    if not own_postgres.running():
        own_postgres.start()  # an earlier test failed while it was down
    url = own_postgres.create_database(f"outage_{outage}")
    token = prepare_database(url, tmp_path / "data")
    server = ServerProcess(url, tmp_path / "data", threads=4).start()
    back = threading.Event()
    try:
        result, clients = _start_load(server, token, 10, back=back)
        assert result.wait_until_completed(4, timeout=30)
        if outage == "restart":
            own_postgres.restart("fast")
        else:
            own_postgres.stop("immediate")
            _assert_down(server, token)
            own_postgres.start()
        back.set()
        _join(clients)
        # each client's case cut by the outage failed with a clean 503 (never a 500, a hang or a cut
        # connection); its next cases, on the same server process, completed
        assert 1 <= result.errors <= 4 and set(result.failures) == {DATABASE_UNAVAILABLE}, result.failures
        assert result.completed == 40 - result.errors

        # recovered without restarting bpmn_server
        assert _readiness(server)[:2] == (200, {"status": "ready"})
        _finish_waiting_work(server, token)
        after = drive([server.url], token, clients=2, cases_per_client=3)
        assert (after.completed, after.errors) == (6, 0), after.failures
        assert server.process.poll() is None
    finally:
        back.set()  # no client keeps waiting when the test failed during the outage
        server.stop()
    services = Services(Settings(data_dir=tmp_path / "data", database_url=url, secret_key="load").resolved())
    try:
        _assert_consistent(services, result.started_ids + after.started_ids)
        with services.database.read() as session:
            assert set(session.scalars(select(ProcessInstance.status))) == {"completed"}
    finally:
        services.database.dispose()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_unreachable_database_is_503_problem_with_retry_after(store, tmp_path: Path, caplog):
    """No database at the configured address: API requests get 503 problem+json with Retry-After (not
    a 500), readiness says not ready, liveness still answers."""
    if store == "postgres":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens there
    else:
        url = f"sqlite:///{tmp_path / 'missing-folder' / 'bpmn.db'}"  # a folder that does not exist
    app = create_app(services=Services(Settings(data_dir=tmp_path / "data", database_url=url,
                                                secret_key="test").resolved()))
    client = app.test_client()
    auth = {"Authorization": "Bearer some-token"}
    for response in (client.get("/api/v1/tasks", headers=auth),
                     client.post("/api/v1/process-instances", json={"key": PROCESS_KEY}, headers=auth)):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert response.json["type"] == DATABASE_UNAVAILABLE[1] and int(response.headers["Retry-After"]) > 0
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json["type"]) == (503, "/problems/not-ready")
    assert int(ready.headers["Retry-After"]) > 0
    assert client.get("/healthz").status_code == 200
    # a web page says so too, as a page, and the log has one line per failed request, no traceback
    with client.session_transaction() as session:
        session["username"] = "clerk"
    with caplog.at_level(logging.WARNING):
        page = client.get("/tasks", headers={"Accept": "text/html"})
    assert page.status_code == 503 and page.mimetype == "text/html", page.get_data(as_text=True)[:500]
    assert "Database unavailable" in page.get_data(as_text=True) and int(page.headers["Retry-After"]) > 0
    lost = [r for r in caplog.records if "database unavailable during GET /tasks" in r.getMessage()]
    assert len(lost) == 1 and lost[0].exc_info is None
