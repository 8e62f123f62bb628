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
    from .db import db_group
    from .deploy import deploy_command
    from .serve import serve_command, worker_command
    from .users import token_group, user_group

    for command in (serve_command, worker_command, deploy_command, user_group, token_group, db_group):
        main.add_command(command)
    for module, attribute in (("validate", "validate_command"), ("sop", "sop_command"), ("audit", "audit_group"),
                              ("instances", "instances_group"), ("tasks", "tasks_group")):
        try:
            imported = __import__(f"{__name__}.{module}", fromlist=[attribute])
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{module}":
                raise
            continue
        main.add_command(getattr(imported, attribute))


_register()

__all__ = ["main", "load_services", "fail", "Path"]
