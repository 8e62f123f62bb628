"""Who is calling: the bearer token of an API request (or the signed-in web session)."""

from __future__ import annotations

from flask import current_app, g, request, session

from ..errors import Forbidden, Unauthenticated
from ..identity import Principal


def services():
    """The Services facade of the running app."""
    return current_app.extensions["bpmn_server"]


def current_principal() -> Principal:
    """The authenticated principal of this request, or raise Unauthenticated (401)."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("use 'Authorization: Bearer <token>'")
        principal = services().identity.authenticate_token(token.strip())
    elif session.get("username"):
        principal = services().identity.principal_for(session["username"])
    else:
        raise Unauthenticated("this endpoint needs a bearer token (Authorization: Bearer <token>)")
    g.principal = principal
    return principal


def require_admin() -> Principal:
    principal = current_principal()
    if not principal.is_admin:
        raise Forbidden("this action needs an administrator")
    return principal
