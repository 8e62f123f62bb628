"""``bpmn-server validate PATH...``: validate BPMN files or folders, for people and for CI.

Prints every finding as ``file:line: severity rule [element-id] message`` (with a ``hint:`` line
when there is one) and a summary line. Exit codes: 0 no error-level finding, 1 at least one error
(or a warning under ``--strict``; a file that cannot be read, is not XML, not BPMN, hostile or too
large is an error too), 2 a usage error (no such path, no BPMN file found, bad option).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click

from ..parser.findings import Finding
from ..parser.namespaces import BPMN
from ..parser.validation import validate_source
from ..settings import PREFIX, Settings

BPMN_SUFFIXES = (".bpmn", ".bpmn2", ".xml")
_SNIFF_BYTES = 64 * 1024


def bpmn_files(paths: tuple[Path, ...]) -> list[Path]:
    """The files to validate or deploy, each once: named files as given; in folders, BPMN files found
    recursively. None at all is a usage error."""
    files = list(dict.fromkeys(_bpmn_files(paths)))
    if not files:
        raise click.UsageError("no BPMN files (*.bpmn, *.bpmn2, BPMN *.xml) found in the given paths")
    return files


def _bpmn_files(paths: tuple[Path, ...]) -> Iterator[Path]:
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
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return True  # reported as unreadable rather than skipped in silence
    return BPMN.encode() in head or BPMN.encode("utf-16-le") in head or BPMN.encode("utf-16-be") in head


def format_finding(finding: Finding, hints: bool = True) -> str:
    """One finding on one line: ``file:line[:column]: severity rule [element-id] message`` (+ hint)."""
    location = str(finding.file)
    if finding.line:
        location += f":{finding.line}" + (f":{finding.column}" if finding.column else "")
    element = f" [{finding.element_id}]" if finding.element_id else ""
    message = " ".join(finding.message.split())
    if finding.file and message.startswith(f"{finding.file} "):  # load errors name the file; it is in front
        message = "the file " + message[len(finding.file) + 1:]
    text = f"{location}: {finding.severity} {finding.rule}{element} {message}"
    if hints and finding.hint:
        text += f"\n    hint: {' '.join(finding.hint.split())}"
    return text


def file_limits() -> dict[str, int]:
    """The server's size limits (``BPMN_SERVER_MAX_UPLOAD_BYTES``, ``_MAX_XML_DEPTH``, ``_MAX_XML_ELEMENTS``),
    so that ``validate`` refuses exactly what a deploy would."""
    defaults = Settings()  # not resolved: validating must not create a data folder or a secret
    limits = {}
    for limit, setting in (("max_bytes", "max_upload_bytes"), ("max_depth", "max_xml_depth"),
                           ("max_elements", "max_xml_elements")):
        variable = PREFIX + setting.upper()
        try:
            limits[limit] = int(os.environ.get(variable, getattr(defaults, setting)))
        except ValueError:
            raise click.UsageError(f"{variable} must be a whole number") from None
    return limits


def validate_file(path: Path, engine: bool = True, limits: dict[str, int] | None = None) -> list[Finding]:
    """The findings of one file; a file that cannot be read gives one ``unreadable`` error."""
    try:
        source = path.read_bytes()
    except OSError as err:
        return [
            Finding(
                rule="unreadable",
                severity="error",
                message=f"cannot read the file: {err.strerror or err}",
                hint="check that the file exists and that you may read it",
                file=str(path),
            )
        ]
    return validate_source(source, str(path), engine=engine, **(limits or {}))


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
@click.option(
    "--engine/--no-engine",
    default=False,
    show_default=True,
    help="also check that this server can run every element of each executable process "
    "(not-executable-element, as a deploy reports it); the default checks BPMN validity: XSD and "
    "semantic rules, as for model interchange",
)
@click.option("--hints/--no-hints", default=True, show_default=True, help="print how to fix each finding")
def validate_command(
    paths: tuple[Path, ...], output_format: str, strict: bool, engine: bool, hints: bool
) -> None:
    """Validate BPMN files or folders (searched recursively): XSD errors and semantic findings.

    Exit status: 0 no errors, 1 errors (or warnings with --strict), 2 usage error.
    """
    files = bpmn_files(paths)
    limits = file_limits()
    results = [(path, validate_file(path, engine, limits)) for path in files]
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
            click.echo(format_finding(finding, hints))
        click.echo(
            f"{len(files)} files, {counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
        )
    click.get_current_context().exit(1 if failed else 0)
