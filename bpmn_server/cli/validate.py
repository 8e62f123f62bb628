"""``bpmn-server validate PATH...``: validate BPMN files or folders, for people and for CI.

Prints every finding as ``file:line: severity rule [element-id] message`` and a summary line;
exits 0 without errors, 1 with errors (or warnings under ``--strict``), 2 on a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click

from ..parser.findings import Finding
from ..parser.namespaces import BPMN
from ..parser.validation import validate_source

BPMN_SUFFIXES = (".bpmn", ".bpmn2", ".xml")
_SNIFF_BYTES = 64 * 1024


def bpmn_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    """The files to validate: named files as given; in folders, BPMN files found recursively."""
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                if candidate.is_file() and candidate.suffix.lower() in BPMN_SUFFIXES and _looks_like_bpmn(candidate):
                    yield candidate
        else:
            yield path


def _looks_like_bpmn(path: Path) -> bool:
    """``.bpmn`` files always count; an ``.xml`` file only if it mentions the BPMN model namespace."""
    if path.suffix.lower() != ".xml":
        return True
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    return BPMN.encode() in head or BPMN.encode("utf-16-le") in head or BPMN.encode("utf-16-be") in head


def format_finding(finding: Finding) -> str:
    """One finding on one line: ``file:line: severity rule [element-id] message``."""
    location = f"{finding.file}:{finding.line}" if finding.line else f"{finding.file}"
    element = f" [{finding.element_id}]" if finding.element_id else ""
    message = " ".join(finding.message.split())
    return f"{location}: {finding.severity} {finding.rule}{element} {message}"


@click.command("validate")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for CI pipelines",
)
@click.option("--strict", is_flag=True, help="fail (exit 1) on warnings too, not only on errors")
def validate_command(paths: tuple[Path, ...], output_format: str, strict: bool) -> None:
    """Validate BPMN files or folders (searched recursively): XSD errors and semantic findings."""
    files = list(dict.fromkeys(bpmn_files(paths)))
    if not files:
        raise click.UsageError("no BPMN files (*.bpmn, *.bpmn2, BPMN *.xml) found in the given paths")
    results: list[tuple[Path, list[Finding]]] = []
    for path in files:
        try:
            source = path.read_bytes()
        except OSError as err:
            raise click.UsageError(f"cannot read {path}: {err.strerror}") from None
        results.append((path, validate_source(source, str(path))))
    all_findings = [finding for _, findings in results for finding in findings]
    counts = {
        severity: sum(1 for finding in all_findings if finding.severity == severity)
        for severity in ("error", "warning", "info")
    }
    failed = counts["error"] > 0 or (strict and counts["warning"] > 0)
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "summary": {
                        "files": len(files),
                        "errors": counts["error"],
                        "warnings": counts["warning"],
                        "info": counts["info"],
                    },
                    "files": [
                        {"file": str(path), "findings": [finding.as_dict() for finding in findings]}
                        for path, findings in results
                    ],
                },
                indent=2,
            )
        )
    else:
        for finding in all_findings:
            click.echo(format_finding(finding))
        click.echo(
            f"{len(files)} files, {counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
        )
    click.get_current_context().exit(1 if failed else 0)
