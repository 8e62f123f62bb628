"""``bpmn-server user`` and ``bpmn-server token``: manage people and API tokens from a shell."""

from __future__ import annotations

import click

from ..errors import BpmnServerError


@click.group("user")
def user_group() -> None:
    """Create users and manage their groups."""


@user_group.command("create")
@click.argument("username")
@click.option("--group", "groups", multiple=True, help="group to join (repeatable)")
@click.option("--admin", is_flag=True, help="make the user an administrator")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="password for the web pages")
@click.option("--token/--no-token", default=True, help="also issue an API token and print it")
def create_user(username: str, groups: tuple[str, ...], admin: bool, password: str, token: bool) -> None:
    """Create a user."""
    from . import fail, load_services

    services = load_services()
    try:
        services.identity.create_user(username, password=password, groups=list(groups), is_admin=admin)
        click.echo(f"created user {username} (groups: {', '.join(groups) or 'none'})")
        if token:
            issued = services.identity.create_token(username, "cli")
            click.echo(f"token: {issued.token}")
    except BpmnServerError as error:
        fail(error)


@click.group("token")
def token_group() -> None:
    """Issue API tokens."""


@token_group.command("create")
@click.argument("username")
@click.option("--name", default="cli", show_default=True)
@click.option("--ttl-days", type=int, default=None, help="days until it expires (0: never)")
def create_token(username: str, name: str, ttl_days: int | None) -> None:
    """Issue a token for a user and print it (it is shown only once)."""
    from . import fail, load_services

    services = load_services()
    try:
        click.echo(services.identity.create_token(username, name, ttl_days=ttl_days, actor="cli").token)
    except BpmnServerError as error:
        fail(error)
