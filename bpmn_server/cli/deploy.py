"""``bpmn-server deploy PATH...``: deploy BPMN files into the configured database.

For each file it prints whether a new deployment was made (or the same bytes were deployed before),
then every process definition with its key, version and validation findings. A file with findings
still deploys (its versions cannot start while they have errors). Exit codes: 0 every file deployed,
1 at least one file refused (not XML, not BPMN, hostile, too large, no process), 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import BpmnServerError
from ..parser.findings import Finding
from .validate import bpmn_files, format_finding


@click.command("deploy")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--as", "actor", default="admin", show_default=True, help="who the deployment is recorded as")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts",
)
def deploy_command(paths: tuple[Path, ...], actor: str, output_format: str) -> None:
    """Deploy BPMN files (or every BPMN file in a folder) as new process versions."""
    from . import load_services

    files = bpmn_files(paths)
    services = load_services()
    reports = [_deploy_one(services, path, actor) for path in files]
    if output_format == "json":
        click.echo(json.dumps({"files": reports}, indent=2))
    else:
        for report in reports:
            _print_report(report)
    click.get_current_context().exit(1 if any(report["status"] == "refused" for report in reports) else 0)


def _deploy_one(services, path: Path, actor: str) -> dict:
    """Deploy one file; a refusal becomes a report, so the other files are still deployed."""
    try:
        result = services.definitions.deploy(path.read_bytes(), path.name, actor)
    except OSError as error:
        return {"file": str(path), "status": "refused", "error": f"cannot read the file: {error.strerror or error}"}
    except BpmnServerError as error:
        return {"file": str(path), "status": "refused", "error": error.detail, "type": error.type,
                "line": error.extra.get("line"), "column": error.extra.get("column")}
    return {
        "file": str(path),
        "status": "deployed" if result.created else "unchanged",
        "deployment": result.deployment.id,
        "definitions": [
            {
                "key": definition.key,
                "version": definition.version,
                "name": definition.name,
                "executable": definition.executable,
                "error_count": definition.error_count,
                "startable": bool(definition.executable and definition.error_count == 0),
                "findings": [{**finding, "file": str(path)} for finding in definition.findings or []],
            }
            for definition in result.definitions
        ],
    }


def _print_report(report: dict) -> None:
    path = report["file"]
    if report["status"] == "refused":
        where = f":{report['line']}" if report.get("line") else ""
        where += f":{report['column']}" if report.get("line") and report.get("column") else ""
        click.echo(f"{path}{where}: not deployed: {report['error']}", err=True)
        return
    state = "deployed" if report["status"] == "deployed" else "unchanged (the same file was deployed before)"
    click.echo(f"{path}: {state} as deployment {report['deployment']}")
    for definition in report["definitions"]:
        if not definition["executable"]:
            state = "not executable"
        elif definition["startable"]:
            state = "executable, can start"
        else:
            state = f"executable, cannot start: {definition['error_count']} errors"
        findings = definition["findings"]
        click.echo(f"  {definition['key']} version {definition['version']} ({state}; {len(findings)} findings)")
        for finding in findings:
            click.echo("    " + format_finding(Finding.from_dict(finding), hints=False))
