"""Settings of one bpmn_server process, read from ``BPMN_SERVER_*`` environment variables.

The defaults need no configuration at all: SQLite in ``./data``, the scheduler on for
``serve``/``worker`` and off for library use and tests.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PREFIX = "BPMN_SERVER_"


def _as_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything a server, worker or command needs to know about its environment."""

    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: str = ""
    scheduler: bool = False
    diagrams_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_upload_bytes: int = 10 * 1024 * 1024
    max_xml_depth: int = 256
    max_xml_elements: int = 200_000
    script_cpu_seconds: float = 2.0
    script_max_output_bytes: int = 1024 * 1024
    max_variables_bytes: int = 4 * 1024 * 1024
    timer_sweep_seconds: float = 30.0
    timer_batch_size: int = 100
    timer_max_attempts: int = 5
    token_ttl_days: int = 90
    admin_username: str = "admin"
    secure_cookies: bool = False  # mark the web session cookie Secure (serve behind HTTPS)
    log_level: str = "INFO"
    log_json: bool = True  # JSON lines with request and instance ids; false: plain text
    migrate_on_start: bool = True  # `serve`/`worker` apply pending schema migrations first
    rate_limit_expensive_per_minute: int = 60  # per token (or signed-in user): uploads, audit exports/verify, SOP; 0: off
    login_failures_per_user: int = 5  # failed web sign-ins per username per window; 0: off
    login_failures_per_address: int = 20  # failed web sign-ins per client address per window; 0: off
    login_failure_window_seconds: int = 300
    sop_public: bool = True  # /sop pages readable without signing in; false: only for signed-in users
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every field from ``BPMN_SERVER_<FIELD>``; keyword overrides win."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(PREFIX + f.name.upper())
            if raw is None or f.name == "extra":
                continue
            values[f.name] = _convert(f.type, raw)
        values.update(overrides)
        return cls(**values).resolved()

    def resolved(self) -> Settings:
        """Fill in the defaults that depend on other settings (database file, secret)."""
        data_dir = Path(self.data_dir)
        database_url = self.database_url or f"sqlite:///{(data_dir / 'bpmn_server.db').resolve()}"
        secret = self.secret_key or _stored_secret(data_dir)
        return replace(self, data_dir=data_dir, database_url=database_url, secret_key=secret)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _stored_secret(data_dir: Path) -> str:
    """A random secret kept in the data folder, so sessions survive restarts without configuration."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _convert(annotation: Any, raw: str) -> Any:
    text = str(annotation)
    if "bool" in text:
        return _as_bool(raw)
    if "int" in text:
        return int(raw)
    if "float" in text:
        return float(raw)
    if "Path" in text:
        return Path(raw) if raw else None
    return raw
