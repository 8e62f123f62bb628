"""A throwaway PostgreSQL server of a test's own (initdb in a temporary folder, a free port), so a
fault test can restart or stop it without disturbing the shared server other test workers use."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

SUPERUSER = "postgres"  # also the account that runs the server when the tests run as root


def postgres_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest
    ``/usr/lib/postgresql/<version>/bin``, else wherever ``initdb`` is on the PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def free_port() -> int:
    """A TCP port nobody listens on at this moment (the system picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """One PostgreSQL cluster in ``folder`` listening on 127.0.0.1:``port``; ``pg_ctl`` drives it."""

    def __init__(self, bindir: Path, folder: Path, port: int) -> None:
        self.bindir = bindir
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = port
        # PostgreSQL refuses to run as root: then its programs run as the postgres account
        self._as_owner = ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [*self._as_owner, str(self.bindir / program), *args]
        # the server's log goes to a file (-l): pg_ctl's own output is short and ends when it returns
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}\n{log}")
        return done

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER, "--no-locale",
                  "--encoding=UTF8", "--no-sync")

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off")  # a throwaway cluster: no durability needed
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: sessions are terminated, their transactions rolled back) and start again
        on the same port; returns once the server accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w", "-t", "30", "restart")

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        """Stop the server (``immediate``: like a crash, the next start recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop", check=check)

    def running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return self.url(name)


@contextmanager
def private_postgres(bindir: Path) -> Iterator[PrivatePostgres]:
    """A fresh cluster on a free port; always stopped and its folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bpmn-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, SUPERUSER, SUPERUSER)
        server = PrivatePostgres(bindir, folder, free_port())
        server.initdb()
        try:
            server.start()
            yield server
        finally:
            server.stop("immediate", check=False)  # it may be down already (a test stopped it)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
