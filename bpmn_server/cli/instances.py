"""``bpmn-server instances``: start process instances and list them from the command line."""

from __future__ import annotations

import json

import click

from ..errors import BpmnServerError


def parse_vars(pairs: tuple[str, ...]) -> dict:
    """``k=v`` pairs; a value that reads as JSON (numbers, true, lists…) is taken as JSON, else as text."""
    variables = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{pair}' is not name=value", param_hint="--var")
        try:
            variables[name] = json.loads(text)
        except ValueError:
            variables[name] = text
    return variables


@click.group("instances")
def instances_group() -> None:
    """Start and list process instances."""


@instances_group.command("start")
@click.argument("key")
@click.option("--var", "pairs", multiple=True, help="a variable as name=value (repeatable; JSON values allowed)")
@click.option("--business-key", help="the business key (e.g. the order number)")
@click.option("--version", type=int, help="a given version instead of the latest")
@click.option("--as", "actor", default="admin", show_default=True, help="the user who starts it")
@click.option("--idempotency-key", help="a key naming this start: run again with the same key (within 24 h), "
                                        "it prints the instance the first run started instead of starting another")
def start_command(key: str, pairs: tuple[str, ...], business_key: str | None, version: int | None, actor: str,
                  idempotency_key: str | None) -> None:
    """Start an instance of process KEY and print its id, status and open activities."""
    from . import fail, load_services

    services = load_services()
    try:
        principal = services.identity.principal_for(actor)
        info = services.instances.start(key, principal=principal, version=version, business_key=business_key,
                                        variables=parse_vars(pairs), idempotency_key=idempotency_key)
    except BpmnServerError as error:
        fail(error)
        return
    activities = ", ".join(a.element_id for a in info.activities or []) or "-"
    replayed = " (started before with this idempotency key)" if info.replayed else ""
    click.echo(f"{info.id} {info.definition_key} v{info.definition_version} {info.status} at: {activities}{replayed}")


@instances_group.command("list")
@click.option("--key", help="only this process")
@click.option("--status", help="running, waiting, completed, terminated, failed or suspended")
@click.option("--business-key")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_command(key: str | None, status: str | None, business_key: str | None, limit: int, as_json: bool) -> None:
    """List instances, newest first."""
    from . import fail, load_services

    services = load_services()
    try:
        page = services.instances.list(key=key, status=status, business_key=business_key, limit=limit)
    except BpmnServerError as error:
        fail(error)
        return
    if as_json:
        click.echo(json.dumps({"total": page.total, "items": [i.as_dict() for i in page.items]}, default=str))
        return
    for info in page.items:
        click.echo(f"{info.id}  {info.definition_key} v{info.definition_version}  {info.status:<10} "
                   f"{info.business_key or '-':<12} {info.started_by}  {info.started_at:%Y-%m-%d %H:%M}")
    click.echo(f"{page.total} instance(s)")
