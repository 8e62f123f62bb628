"""The database connection and the one place where transactions begin and commit.

Every command runs inside ``Database.transaction()``: it loads, changes, appends audit events and
commits once when the block ends (or rolls back on any exception). Reads that change nothing use
``Database.read()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
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
        else:
            self.engine = create_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self._read_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

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

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work; nothing it does is committed.

        ``close()`` ends the transaction without expiring what was loaded (``rollback()`` would), so
        the objects a read returns stay usable, detached, after the block.
        """
        session = self._read_sessions()
        try:
            yield session
        finally:
            session.close()

    def create_all(self) -> None:
        """Create missing tables (tests and first start; migrations handle upgrades)."""
        Base.metadata.create_all(self.engine)

    def drop_all(self) -> None:
        Base.metadata.drop_all(self.engine)

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
