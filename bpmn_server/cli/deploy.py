"""``bpmn-server deploy``: deploy BPMN files into the configured database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BpmnServerError


@click.command("deploy")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--as", "actor", default="admin", show_default=True, help="who the deployment is recorded as")
def deploy_command(paths: tuple[Path, ...], actor: str) -> None:
    """Deploy BPMN files (or every *.bpmn in a folder) as new process versions."""
    from . import load_services

    services = load_services()
    failed = 0
    for path in _bpmn_files(paths):
        try:
            result = services.definitions.deploy(path.read_bytes(), path.name, actor)
        except BpmnServerError as error:
            failed += 1
            where = f":{error.extra['line']}" if error.extra.get("line") else ""
            click.echo(f"{path}{where}: not deployed: {error.detail}", err=True)
            continue
        state = "deployed" if result.created else "unchanged (same file deployed before)"
        click.echo(f"{path}: {state}, deployment {result.deployment.id}")
        for definition in result.definitions:
            flag = "executable" if definition.executable else "not executable"
            click.echo(f"  {definition.key} v{definition.version} ({flag}, {definition.error_count} errors)")
    sys.exit(1 if failed else 0)


def _bpmn_files(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in {".bpmn", ".bpmn2"}))
        else:
            files.append(path)
    return files
