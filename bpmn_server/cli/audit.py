"""``bpmn-server audit``: verify the hash chain, export the log (XES, OCEL 2.0, CSV), list events.

The command line works on the configured database directly, so it acts as ``system:cli`` with an
administrator's rights: whoever can run it can read the database anyway.

Exit codes: 0 success (``verify``: the chain is intact), 1 the chain is broken or the command
failed, 2 a usage error.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click

from ..errors import BpmnServerError

CLI_ACTOR = "system:cli"


class IsoDateTime(click.ParamType):
    """An ISO 8601 date or date-time; without an offset it is read as UTC."""

    name = "ISO-8601"

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or date-time (e.g. 2026-01-31T09:00:00Z)", param, ctx)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


ISO = IsoDateTime()


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQUENCE:HASH`` (as ``audit verify`` prints it) -> (sequence, hash)."""
    sequence, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not sep or not sequence.strip().isdigit() or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise click.BadParameter(f"{text.strip()!r} is not SEQUENCE:HASH (64 hex digits)", param_hint="--anchor")
    return int(sequence), digest


def _principal():
    from ..identity import system_principal

    return system_principal(CLI_ACTOR)


@click.group("audit")
def audit_group() -> None:
    """Verify, export and list the tamper-evident audit log."""


@audit_group.command("verify")
@click.option("--anchor", "anchors", multiple=True, metavar="SEQ:HASH",
              help="a head printed by an earlier verify and kept outside the database (repeatable)")
@click.option("--anchor-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a file of SEQ:HASH lines (blank lines and # comments ignored)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def verify_command(anchors: tuple[str, ...], anchor_file: Path | None, as_json: bool) -> None:
    """Check every event's hash and link; exit 1 and show the first bad event if the chain is broken."""
    from . import fail, load_services

    given = [parse_anchor(a) for a in anchors]
    if anchor_file is not None:
        lines = anchor_file.read_text(encoding="utf-8").splitlines()
        given += [parse_anchor(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    services = load_services()
    try:
        result = services.audit.verify(_principal(), anchors=dict(given))
        first_bad = None
        if not result.ok and result.first_bad_sequence is not None:
            page = services.audit.list_events(_principal(), after_sequence=result.first_bad_sequence - 1, limit=1)
            first_bad = page.items[0] if page.items else None
    except BpmnServerError as error:
        fail(error)
        return
    if as_json:
        body = result.to_dict()
        body["event"] = first_bad.to_dict() if first_bad else None
        click.echo(json.dumps(body))
    elif result.ok:
        click.echo(f"intact: {result.message}")
        click.echo(f"anchor: {result.head_sequence}:{result.head_hash}")
    else:
        click.echo(f"BROKEN ({result.problem}) at event {result.first_bad_sequence}: {result.message}")
        if first_bad is not None:
            label = "event" if first_bad.sequence == result.first_bad_sequence else "next event present"
            click.echo(f"{label}: {_line(first_bad)}")
    sys.exit(0 if result.ok else 1)


@audit_group.command("export")
@click.option("--format", "format_", type=click.Choice(["xes", "ocel", "csv"]), default="xes", show_default=True)
@click.option("--process", "process_key", help="only events of this process (definition key)")
@click.option("--instance", "instance_id", help="only events of this instance")
@click.option("--user", "actor", help="only events this user (or system:timer…) caused")
@click.option("--since", type=ISO, help="from this moment on (inclusive)")
@click.option("--until", type=ISO, help="before this moment (exclusive)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write (default: standard output)")
def export_command(format_: str, process_key: str | None, instance_id: str | None, actor: str | None,
                   since: datetime | None, until: datetime | None, output: Path | None) -> None:
    """Export the log as IEEE XES, OCEL 2.0 JSON or CSV, streamed (memory stays flat)."""
    from . import fail, load_services

    services = load_services()
    try:
        chunks = services.audit.export(_principal(), format_, process_key=process_key, instance_id=instance_id,
                                       actor=actor, since=since, until=until)
        if output is None:
            stream = sys.stdout.buffer
            for chunk in chunks:
                stream.write(chunk)
            stream.flush()
            return
        size = _write_atomically(output, chunks)
    except BpmnServerError as error:
        fail(error)
        return
    except OSError as error:
        click.echo(f"error: cannot write {output}: {error.strerror or error}", err=True)
        sys.exit(1)
    click.echo(f"{output}: {format_} export written ({size:,} bytes)", err=True)


def _write_atomically(path: Path, chunks) -> int:
    """Write the chunks to a temporary file beside ``path``, then rename: never a half export."""
    directory = path.resolve().parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    size = 0
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                size += len(chunk)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size


@audit_group.command("list")
@click.option("--instance", "instance_id", help="the history of one instance")
@click.option("--user", "actor", help="what one user (or system:timer…) did")
@click.option("--process", "process_key", help="events of one process (definition key)")
@click.option("--type", "event_type", help="one event type, e.g. task-completed")
@click.option("--since", type=ISO, help="from this moment on (inclusive)")
@click.option("--until", type=ISO, help="before this moment (exclusive)")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON (one page, with the total)")
def list_command(instance_id: str | None, actor: str | None, process_key: str | None, event_type: str | None,
                 since: datetime | None, until: datetime | None, limit: int, offset: int, as_json: bool) -> None:
    """List events, oldest first."""
    from . import fail, load_services

    services = load_services()
    try:
        page = services.audit.list_events(
            _principal(), instance_id=instance_id, actor=actor, process_key=process_key, event_type=event_type,
            since=since, until=until, limit=limit, offset=offset,
        )
    except BpmnServerError as error:
        fail(error)
        return
    if as_json:
        click.echo(json.dumps({"total": page.total, "offset": page.offset, "limit": page.limit,
                               "items": [item.to_dict() for item in page.items]}))
        return
    for item in page.items:
        click.echo(_line(item))
    shown = f"{offset + 1}-{offset + len(page.items)}" if page.items else "none"
    click.echo(f"({shown} of {page.total} events)", err=True)


def _line(item) -> str:
    """One event on one line: sequence, time, type/transition, actor, where."""
    where = " ".join(
        part for part in (
            f"instance={item.instance_id}" if item.instance_id else "",
            f"process={item.definition_key}" + (f"@{item.definition_version}" if item.definition_version else "")
            if item.definition_key else "",
            f"element={item.element_id}" if item.element_id else "",
        ) if part
    )
    stamp = item.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{item.sequence:>8} {stamp} {item.event_type}/{item.transition} by {item.actor} {where}".rstrip()
