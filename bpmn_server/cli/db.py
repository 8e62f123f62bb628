"""``bpmn-server db``: schema migrations (upgrade, current) on the configured database."""

from __future__ import annotations

import click


@click.group("db")
def db_group() -> None:
    """Database schema: upgrade to this release, show the current revision."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="migrate up to this revision")
def upgrade_command(revision: str) -> None:
    """Apply pending migrations; running instances, tasks, timers and the audit chain are kept."""
    from ..settings import Settings
    from ..store import Database, schema

    database = Database(Settings.from_env().resolved().database_url)
    before = schema.current_revision(database)
    schema.upgrade(database, revision)
    after = schema.current_revision(database)
    click.echo(f"database at {after}" + (f" (was {before or 'empty'})" if before != after else " (up to date)"))


@db_group.command("current")
def current_command() -> None:
    """Print the database's schema revision and this release's head."""
    from ..settings import Settings
    from ..store import Database, schema

    database = Database(Settings.from_env().resolved().database_url)
    click.echo(f"database: {schema.current_revision(database) or 'not migrated'}; code: {schema.head_revision()}")
