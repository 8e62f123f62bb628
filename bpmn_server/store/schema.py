"""Schema migrations (Alembic): upgrade a database to the running code's schema, from any earlier
release, on SQLite and PostgreSQL. ``bpmn-server db upgrade`` and start-up call ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .database import Database

SCRIPTS = Path(__file__).with_name("alembic")


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
    """Apply every pending migration up to ``revision`` in one transaction per step."""
    with database.engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def new_revision(database: Database, message: str) -> None:
    """Write a new migration by comparing the models with a database at head (developers only)."""
    with database.engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)
