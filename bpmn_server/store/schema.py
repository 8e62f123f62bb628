"""Schema migrations (Alembic): upgrade a database to the running code's schema, from any earlier
release, on SQLite and PostgreSQL. ``bpmn-server db upgrade`` and start-up call ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from .database import Database

SCRIPTS = Path(__file__).with_name("alembic")
_MIGRATION_LOCK = 0x62706D6E  # "bpmn"


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(database: Database) -> str | None:
    """The migration the database is at (None: never migrated)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply every pending migration up to ``revision``, in one transaction.

    Several processes may start at once against one PostgreSQL: an advisory lock lets one migrate
    while the others wait and then find nothing to do. A database whose tables were made by
    ``create_all`` of this release (no version recorded yet) is stamped instead of re-created.
    """
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config = _config(connection)
        context = MigrationContext.configure(connection)
        if context.get_current_revision() is None and inspect(connection).has_table("process_definition"):
            command.stamp(config, "head")
        else:
            command.upgrade(config, revision)


def downgrade(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def new_revision(database: Database, message: str) -> None:
    """Write a new migration by comparing the models with a database at head (developers only)."""
    with database.engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
