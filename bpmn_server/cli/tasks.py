"""``bpmn-server tasks``: a person's task list and completing a task from the command line."""

from __future__ import annotations

import json

import click

from ..errors import BpmnServerError


@click.group("tasks")
def tasks_group() -> None:
    """List and complete human tasks."""


@tasks_group.command("list")
@click.option("--user", "username", required=True, help="whose task list (assigned and claimable)")
@click.option("--scope", type=click.Choice(["mine", "claimable", "all"]), help="default: mine and claimable")
@click.option("--process", "process_key", help="only tasks of this process")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_command(username: str, scope: str | None, process_key: str | None, as_json: bool) -> None:
    """The open tasks USER may work on."""
    from . import fail, load_services

    services = load_services()
    try:
        principal = services.identity.principal_for(username)
        page = services.tasks.list(principal, scope=scope, process_key=process_key, limit=500)
    except BpmnServerError as error:
        fail(error)
        return
    if as_json:
        click.echo(json.dumps({"total": page.total, "items": [t.as_dict() for t in page.items]}, default=str))
        return
    for task in page.items:
        who = task.assignee or ("groups: " + ",".join(task.candidate_groups) if task.candidate_groups else "anyone")
        due = f" due {task.due_at:%Y-%m-%d %H:%M}" if task.due_at else ""
        click.echo(f"{task.id}  {task.name}  [{task.process_key} {task.business_key or '-'}]  {who}{due}")
    click.echo(f"{page.total} task(s)")


@tasks_group.command("complete")
@click.argument("task_id")
@click.option("--data", "data_text", default="{}", help="form values as a JSON object")
@click.option("--as", "actor", default="admin", show_default=True, help="who completes it")
def complete_command(task_id: str, data_text: str, actor: str) -> None:
    """Complete TASK_ID with form data; bad fields are listed and nothing changes."""
    from . import fail, load_services

    try:
        data = json.loads(data_text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--data") from None
    services = load_services()
    try:
        principal = services.identity.principal_for(actor)
        task = services.tasks.complete(task_id, data, principal)
    except BpmnServerError as error:
        for bad in error.extra.get("errors") or []:
            click.echo(f"  {bad['field']}: {bad['message']}", err=True)
        fail(error)
        return
    instance = services.instances.get(task.instance_id, with_variables=False)
    click.echo(f"completed {task.name}; instance {instance.id} is {instance.status}")
