"""``bpmn-server serve``: first-start set-up (schema, administrator, example models) and the HTTP server."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import BpmnServerError

DEMO_USERS = {
    "clerk": ["clerks", "support"],
    "manager": ["managers"],
    "accountant": ["accounting"],
    "lead": ["finance-leads", "team-leads", "support-l2"],
    "hr": ["hr", "managers"],
    "it": ["it"],
}


def prepare(services, *, diagrams: Path | None, demo_users: bool) -> list[str]:
    """Make a fresh data folder usable: administrator, example models, optional demo users."""
    lines: list[str] = []
    settings = services.settings
    boot = services.identity.bootstrap_admin()
    token_file = settings.data_dir / "admin-token"
    if boot.created:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        token_file.write_text(boot.token + "\n")
        token_file.chmod(0o600)
        lines.append(f"created administrator '{boot.username}'; token (also in {token_file}):")
        lines.append(f"  {boot.token}")
    elif token_file.exists():
        lines.append(f"administrator token: {token_file}")
    if diagrams and diagrams.is_dir():
        for path in sorted(diagrams.glob("*.bpmn")):
            try:
                result = services.definitions.deploy(path.read_bytes(), path.name, settings.admin_username)
            except BpmnServerError as error:
                lines.append(f"could not deploy {path.name}: {error.detail}")
                continue
            if result.created:
                names = ", ".join(f"{d.key} v{d.version}" for d in result.definitions)
                lines.append(f"deployed {path.name}: {names}")
    if demo_users:
        lines.extend(_create_demo_users(services))
    return lines


def _create_demo_users(services) -> list[str]:
    lines = []
    for username, groups in DEMO_USERS.items():
        try:
            services.identity.create_user(username, password=f"{username}-demo", groups=groups,
                                          display_name=username.title())
        except BpmnServerError:
            continue  # exists from an earlier start
        token = services.identity.create_token(username, "demo").token
        token_file = services.settings.data_dir / f"{username}-token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        lines.append(f"demo user {username} (password {username}-demo, groups {', '.join(groups)}), "
                     f"token in {token_file}")
    return lines


@click.command("serve")
@click.option("--host", default=None, help="address to listen on (BPMN_SERVER_HOST, default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (BPMN_SERVER_PORT, default 8080)")
@click.option("--diagrams", type=click.Path(path_type=Path), default=None,
              help="deploy every *.bpmn of this folder at start (BPMN_SERVER_DIAGRAMS_DIR)")
@click.option("--demo-users", is_flag=True, help="create demo users (clerk, manager, …) on first start")
@click.option("--threads", type=int, default=8, show_default=True)
@click.option("--scheduler/--no-scheduler", default=True, help="fire timers in this process")
def serve_command(host, port, diagrams, demo_users, threads, scheduler) -> None:
    """Run the HTTP server (REST API, OpenAPI docs, web pages) on the configured database."""
    from . import load_services

    overrides = {"scheduler": scheduler}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    services = load_services(**overrides)
    settings = services.settings
    diagrams = diagrams or settings.diagrams_dir
    for line in prepare(services, diagrams=diagrams, demo_users=demo_users):
        click.echo(line)
    url = f"http://{settings.host}:{settings.port}/"
    click.echo(f"bpmn_server is running at {url}  (API docs: {url}api/docs, database: {_safe(settings.database_url)})")
    _run_http(services, threads)


def _safe(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if ":" in credentials else url
    return url


def _run_http(services, threads: int) -> None:
    """Serve with gunicorn (one process, threads) so `serve` behaves like production."""
    from gunicorn.app.base import BaseApplication

    from .. import create_app

    settings = services.settings

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", 1)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", os.environ.get("BPMN_SERVER_ACCESS_LOG", None))
            self.cfg.set("timeout", 120)

        def load(self):
            app = create_app(services=services)
            _start_scheduler(services)
            return app

    _Server().run()


def _start_scheduler(services) -> None:
    if services.settings.scheduler:
        services.start_scheduler()


@click.command("worker")
def worker_command() -> None:
    """Fire timers and deliver webhooks without serving HTTP."""
    from . import load_services

    services = load_services(scheduler=True)
    settings = services.settings
    click.echo(f"bpmn_server worker: firing timers and delivering webhooks on {_safe(settings.database_url)} "
               f"(sweep every {settings.timer_sweep_seconds:g} s; Ctrl+C stops)")
    services.run_worker()
