"""The ``bpmn-server`` command line: serve, worker, validate, deploy, sop, audit, users and tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from ..errors import BpmnServerError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bpmn-server")
def main() -> None:
    """bpmn_server: a BPMN 2.0 modeling and execution server."""


def load_services(**overrides):
    """Services on the configured database (``BPMN_SERVER_*``), with the schema in place."""
    from ..logs import configure_logging
    from ..services import Services
    from ..settings import Settings

    services = Services(Settings.from_env(**overrides))
    configure_logging(services.settings.log_level, json_lines=services.settings.log_json)
    services.create_schema()
    return services


def fail(error: BpmnServerError) -> None:
    click.echo(f"error: {error.detail}", err=True)
    sys.exit(1)


def _register() -> None:
    from .audit import audit_group
    from .db import db_group
    from .deploy import deploy_command
    from .instances import instances_group
    from .serve import serve_command, worker_command
    from .sop import sop_command
    from .tasks import tasks_group
    from .users import token_group, user_group
    from .validate import validate_command

    for command in (serve_command, worker_command, validate_command, deploy_command, sop_command, audit_group,
                    instances_group, tasks_group, user_group, token_group, db_group):
        main.add_command(command)


_register()

__all__ = ["main", "load_services", "fail", "Path"]
