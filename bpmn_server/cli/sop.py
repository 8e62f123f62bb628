"""``bpmn-server sop``: publish a model's SOP handbook as one self-contained HTML file."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import BpmnServerError


@click.command("sop")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--process", "process_id", default=None,
              help="the process to publish (default: every process, executable ones first)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="the HTML file to write (default: standard output)")
@click.option("--version", "version", default=None, help="the version to print on the handbook")
@click.option("--owner", default=None, help="the owner to print (default: the owner written in the model)")
def sop_command(model: Path, process_id: str | None, output: Path | None, version: str | None,
                owner: str | None) -> None:
    """Write the SOP handbook of MODEL (a .bpmn file) as HTML with inline CSS and SVG, no scripts."""
    from ..parser.document import BpmnDocument
    from ..sop.html import render_sop_html

    try:
        source = model.read_bytes()
    except OSError as error:
        click.echo(f"error: cannot read {model}: {error.strerror or error}", err=True)
        sys.exit(1)
    try:
        document = BpmnDocument.load(source, model.name)
        page = render_sop_html(document, process_id, version=version, owner=owner, link_prefix=None)
    except BpmnServerError as error:
        where = f" (line {error.extra['line']})" if error.extra.get("line") else ""
        click.echo(f"error: {error.detail}{where}", err=True)
        sys.exit(1)
    if output is None:
        click.echo(page, nl=False)
        return
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as error:
        click.echo(f"error: cannot write {output}: {error.strerror or error}", err=True)
        sys.exit(1)
    click.echo(f"{output}: SOP of {model.name} written ({len(page.encode('utf-8')) // 1024} KiB)", err=True)
