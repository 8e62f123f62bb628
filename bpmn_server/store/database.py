"""The database connection and the one place where transactions begin and commit.

Every command runs inside ``Database.transaction()``: it loads, changes, appends audit events and
commits once when the block ends (or rolls back on any exception). Reads that change nothing use
``Database.read()`` (ORM objects) or ``Database.query()`` (plain rows, the cheapest lookup). On
PostgreSQL these run in autocommit mode: under READ COMMITTED every statement sees the latest
committed data either way, and a read saves the ``BEGIN``/``ROLLBACK`` round trips. Exports, which
read in several statements or stream through a server-side cursor, use ``Database.snapshot()``:
one read-only REPEATABLE READ transaction. Read sessions refuse to flush, so nothing can be written
through them by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .models import Base


class Database:
    """An engine plus session factory for SQLite (embedded default) or PostgreSQL (multi-node)."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, echo, begin="BEGIN IMMEDIATE")
            self._read_engine = _sqlite_engine(url, echo, begin="BEGIN")
            self._snapshot_engine = self._read_engine  # a WAL read transaction is a snapshot already
        else:
            self.engine = create_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            # same pool; events registered on the engine apply to it too
            self._read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
            self._snapshot_engine = self.engine.execution_options(isolation_level="REPEATABLE READ",
                                                                  postgresql_readonly=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._snapshot_sessions = sessionmaker(self._snapshot_engine, expire_on_commit=False)
        for readers in (self._read_sessions, self._snapshot_sessions):
            event.listen(readers, "before_flush", _refuse_writes)

    @property
    def engines(self) -> list[Engine]:
        """The engines to attach event listeners to (each statement passes exactly one of them)."""
        return [self.engine, self._read_engine] if self.is_sqlite else [self.engine]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction: commits when the block ends, rolls back if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def read(self) -> Session:
        """A read-only unit of work (``with database.read() as session:``); nothing it does is committed.

        Leaving the block closes the session, which ends the transaction without expiring what was
        loaded (``rollback()`` would), so the objects a read returns stay usable, detached, after it.
        """
        return self._read_sessions()

    def snapshot(self) -> Session:
        """A read-only transaction in which every statement sees the same snapshot (the first one's):
        for exports that read in several statements or stream rows through a server-side cursor."""
        return self._snapshot_sessions()

    @contextmanager
    def query(self) -> Iterator[Connection]:
        """A connection for reads with Core statements: rows, not ORM objects; nothing is committed."""
        with self._read_engine.connect() as connection:
            yield connection

    def create_all(self) -> None:
        """Create missing tables (tests and first start; migrations handle upgrades)."""
        Base.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        """Drop every table, Alembic's revision record included (a later start then migrates from scratch)."""
        Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    def truncate_all(self) -> None:
        """Empty every table quickly (test isolation on a shared PostgreSQL database)."""
        with self.engine.begin() as conn:
            if self.is_sqlite:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(table.delete())
            else:
                names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self._read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        self._read_engine.dispose()


RETRY_AFTER_SECONDS = "5"  # a database restart or fail-over takes seconds; clients and balancers wait this long


def is_database_lost(error: BaseException | None) -> bool:
    """Whether an exception means the database cannot be reached now (connection refused or cut, server
    shutting down or starting up), as opposed to a bug. Lock contention never gets this far: the
    services answer it with a Conflict."""
    return isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated)


def _refuse_writes(session: Session, _flush_context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("Database.read() is read-only: change data inside Database.transaction()")


def _sqlite_engine(url: str, echo: bool, *, begin: str) -> Engine:
    """WAL, foreign keys, and an explicit BEGIN (IMMEDIATE for writers: no lock-upgrade deadlocks)."""
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # pysqlite must not issue its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql(begin)

    return engine
