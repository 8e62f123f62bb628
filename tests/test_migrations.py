"""Schema migrations: the migrated schema is exactly what the models declare (tables, indexes,
triggers), an upgrade from the first migration keeps work in flight (instances, open tasks,
pending timers, the audit chain) and the tables added since work, and processes starting at once
migrate only once."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from bpmn_server.errors import RateLimited
from bpmn_server.services import Services
from bpmn_server.settings import Settings
from bpmn_server.store import Base, Database, schema
from bpmn_server.store.models import Timer
from bpmn_server.store.rate_limits import Limit, RateLimiter

from .conftest import POSTGRES_URL
from .runtime_helpers import ADMIN, CLERK, MANAGER, REVIEW, deploy_refund

FIRST_REVISION = "0001"


@pytest.fixture
def empty_database(backend, tmp_path, worker_id):
    """A database with no tables at all (not even Alembic's)."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'migrate.db'}")
    else:
        name = f"bpmn_migrate_{os.environ.get('BPMN_SERVER_TEST_DB_TAG', '')}{worker_id}".replace("-", "_")
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        database = Database(POSTGRES_URL.rsplit("/", 1)[0] + "/" + name)
    yield database
    database.dispose()


def _services(database: Database, tmp_path, clock) -> Services:
    settings = Settings(data_dir=tmp_path / "data", database_url=database.url, secret_key="t").resolved()
    return Services(settings, database=database, clock=clock)


def test_migrations_build_exactly_the_schema_the_models_declare(empty_database):
    schema.upgrade(empty_database)
    assert schema.current_revision(empty_database) == schema.head_revision()
    with empty_database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []
    with pytest.raises(Exception, match="append-only"), empty_database.engine.begin() as connection:
        connection.execute(text("INSERT INTO audit_event (sequence, event_id, timestamp, event_type, transition, "
                                "actor, data, prev_hash, hash) VALUES (1, 'e', '2026-01-01', 'x', 'complete', "
                                "'a', '{}', 'p', 'h')"))
        connection.execute(text("UPDATE audit_event SET actor = 'mallory'"))


def test_upgrade_from_the_first_migration_keeps_work_in_flight(empty_database, tmp_path, clock):
    schema.upgrade(empty_database, FIRST_REVISION)
    services = _services(empty_database, tmp_path, clock)
    deploy_refund(services)
    instance = services.instances.start("refund_request", principal=CLERK, business_key="M-1")
    review = services.tasks.list(CLERK).items[0]
    services.tasks.complete(review.id, REVIEW, CLERK)  # over 500: waits for the manager, timers set
    assert not inspect(empty_database.engine).has_table("rate_limit")

    schema.upgrade(empty_database)  # to head, across every later migration (0002: rate_limit)
    assert schema.current_revision(empty_database) == schema.head_revision() != FIRST_REVISION
    services = _services(empty_database, tmp_path, clock)
    approval = services.tasks.list(MANAGER).items[0]
    assert approval.instance_id == instance.id
    with services.database.read() as session:
        assert {t.element_id for t in session.scalars(select(Timer).where(Timer.status == "waiting"))} >= {
            "daily_reminder", "approval_overdue"}
    clock.advance(timedelta(days=1, minutes=1))
    assert services.timers.fire_due().fired == 1  # the pending reminder still fires after the upgrade
    services.tasks.claim(approval.id, MANAGER)
    services.tasks.complete(approval.id, {"approved": True}, MANAGER)
    assert services.instances.get(instance.id).status in ("running", "completed")
    assert services.audit.verify(ADMIN).ok

    limiter = RateLimiter(empty_database, clock)  # the table 0002 added counts, refuses and starts over
    limit = Limit(2, timedelta(minutes=1), "calls", "test_limit")
    assert [hit.hits for hit in limiter.hit(("upgraded", limit)) + limiter.hit(("upgraded", limit))] == [1, 2]
    with pytest.raises(RateLimited):
        limiter.hit(("upgraded", limit))
    clock.advance(timedelta(minutes=1))
    assert limiter.hit(("upgraded", limit))[0].hits == 1


def test_processes_starting_together_migrate_once(empty_database, backend):
    if backend != "postgres":
        pytest.skip("several processes share a database only on PostgreSQL")
    errors: list[BaseException] = []

    def start() -> None:
        try:
            schema.upgrade(Database(empty_database.url))
        except BaseException as error:  # noqa: BLE001 — collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert schema.current_revision(empty_database) == schema.head_revision()


def test_db_upgrade_command_reports_what_it_did(empty_database, tmp_path, monkeypatch, backend):
    from click.testing import CliRunner

    from bpmn_server.cli import main

    monkeypatch.setenv("BPMN_SERVER_DATABASE_URL", empty_database.url)
    monkeypatch.setenv("BPMN_SERVER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    first = runner.invoke(main, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert f"database at {schema.head_revision()} (was empty)" in first.output
    again = runner.invoke(main, ["db", "upgrade"])
    assert "(up to date)" in again.output
    assert schema.head_revision() in runner.invoke(main, ["db", "current"]).output
