"""Shared fixtures: settings, a fresh database per test (SQLite always, PostgreSQL when enabled),
the services facade with a manual clock, the Flask app and its test client.

PostgreSQL runs when ``BPMN_SERVER_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it); each xdist
worker gets a database of its own, emptied between tests (``BPMN_SERVER_TEST_DB_TAG`` keeps
several test runs on one server apart).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bpmn_server.clock import ManualClock
from bpmn_server.settings import Settings
from bpmn_server.store import Database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BPMN_SERVER_TEST_POSTGRES_URL")
CONFORMANCE_DIR = Path(
    os.environ.get("BPMN_SERVER_CONFORMANCE_DIR", PROJECT_ROOT.parent / "shared" / "conformance")
)
DIAGRAMS_DIR = PROJECT_ROOT / "diagrams"

BACKENDS = ["sqlite", "postgres"]


def conformance_path(*parts: str) -> Path:
    """A folder of the shared conformance material, or skip (saying why) when this clone has none."""
    path = CONFORMANCE_DIR.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"conformance material missing in CI: {path}")
        pytest.skip(f"conformance material not found at {path} (set BPMN_SERVER_CONFORMANCE_DIR)")
    return path


@pytest.fixture
def miwg_dir() -> Path:
    return conformance_path("miwg-reference")


@pytest.fixture
def betsy_dir() -> Path:
    return conformance_path("betsy")


def _worker_postgres_url(worker_id: str) -> str:
    """A database of this xdist worker's own on the test PostgreSQL server (created on first use)."""
    base = POSTGRES_URL
    assert base is not None
    run = os.environ.get("BPMN_SERVER_TEST_DB_TAG", "")
    name = f"bpmn_test_{run}{worker_id}".replace("-", "_")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


_postgres_databases: dict[str, Database] = {}


def _postgres_database(worker_id: str) -> Database:
    if worker_id not in _postgres_databases:
        database = Database(_worker_postgres_url(worker_id), pool_size=5)
        database.drop_all()
        database.create_all()
        _postgres_databases[worker_id] = database
    database = _postgres_databases[worker_id]
    database.truncate_all()
    return database


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The storage backend under test; PostgreSQL is skipped only when not configured."""
    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("PostgreSQL tests need BPMN_SERVER_TEST_POSTGRES_URL (set by .ci/run)")
    return request.param


@pytest.fixture
def database(backend, tmp_path, worker_id) -> Database:
    """A fresh, empty database of the backend under test."""
    if backend == "postgres":
        yield _postgres_database(worker_id)
        return
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path, database) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database.url,
        secret_key="test-secret",
        scheduler=False,
    ).resolved()


@pytest.fixture
def services(settings, database, clock):
    """The service facade every interface uses, on the test database and a manual clock."""
    from bpmn_server.services import Services

    return Services(settings, database=database, clock=clock)


@pytest.fixture
def app(services):
    from bpmn_server import create_app

    app = create_app(services=services, testing=True)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_token(services) -> str:
    """A bearer token of the bootstrap administrator."""
    return services.identity.bootstrap_admin().token


@pytest.fixture
def auth(admin_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_token}"}


@pytest.fixture(scope="session")
def worker_id(request) -> str:
    """xdist's worker id ('master' without xdist)."""
    return getattr(request.config, "workerinput", {}).get("workerid", "master")
