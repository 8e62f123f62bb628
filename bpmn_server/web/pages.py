"""The web pages' blueprint and what every page view shares: the signed-in principal, the
services facade, sign-in enforcement and HTML error pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from ..errors import BpmnServerError, Forbidden, Unauthenticated
from ..flask_app import record_refusal
from ..identity.principal import Principal
from ..store import RETRY_AFTER_SECONDS, is_database_lost
from .security import signed_in_principal

bp = Blueprint("web", __name__, template_folder="templates")

PUBLIC_ENDPOINTS = frozenset({"web.login"})


def services():
    """The Services facade of the running app."""
    return current_app.extensions["bpmn_server"]


def principal() -> Principal:
    """The signed-in user of this request (pages run only after ``require_sign_in``)."""
    return g.principal


def render(template: str, status: int = 200, **context: Any):
    """Render a page template with the signed-in user in the context."""
    return render_template(f"web/{template}", user=g.get("principal"), **context), status


def has_service(name: str) -> bool:
    """Whether the facade has a service yet (runtime parts land one by one)."""
    return getattr(services(), name, None) is not None


@bp.before_request
def require_sign_in():
    """Send anyone who is not signed in to the sign-in page, remembering where they wanted to go."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if signed_in_principal(services()) is None:
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("web.login") + "?" + urlencode({"next": target}))
    return None


def unread_notifications() -> int | None:
    """How many unread notifications the signed-in user has (None before notifications exist)."""
    outbox = getattr(services(), "outbox", None)
    user = g.get("principal")
    if outbox is None or user is None:
        return None
    try:
        return outbox.notifications(user, limit=1)[2]
    except Exception as err:
        if is_database_lost(err):  # the page still renders (it may be the "database unavailable" page)
            return None
        raise


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    return {"has_service": has_service, "unread_notifications": unread_notifications}


@bp.errorhandler(Unauthenticated)
def _unauthenticated(error: Unauthenticated):
    flash(error.detail, "error")
    return redirect(url_for("web.login", next=request.path))


@bp.errorhandler(BpmnServerError)
def _domain_error(error: BpmnServerError):
    if isinstance(error, Forbidden):  # refusals are audited once, as the API does
        record_refusal(error)
    return render("error.html", error.status, title=error.title, detail=error.detail, code=error.status)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    if is_database_lost(getattr(error, "original_exception", None)):  # an unhandled error: the database is gone
        page, status = render("error.html", 503, title="Database unavailable", code=503,
                              detail="The database is unreachable or restarting; try again in a few seconds.")
        return page, status, {"Retry-After": RETRY_AFTER_SECONDS}
    return render("error.html", error.code or 500, title=error.name, detail=error.description,
                  code=error.code)


def wants_page() -> bool:
    """Whether an error at this URL should be an HTML page rather than problem+json."""
    if request.path.startswith("/api/"):
        return False
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in (None, "text/html")
