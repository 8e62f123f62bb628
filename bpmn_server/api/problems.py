"""RFC 9457 problem+json responses: one mapping from domain errors and HTTP errors to JSON."""

from __future__ import annotations

from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

from ..errors import BpmnServerError, Forbidden
from ..flask_app import record_refusal
from ..store import RETRY_AFTER_SECONDS, is_database_lost

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int, type_: str, title: str, detail: str | None = None, headers: dict | None = None, **extra: Any
) -> Response:
    """A problem+json response; ``type`` is a stable slug under ``/problems/``."""
    body: dict[str, Any] = {"type": f"/problems/{type_}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path if request else None
    body.update({key: value for key, value in extra.items() if value is not None})
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def from_domain_error(error: BpmnServerError) -> Response:
    if isinstance(error, Forbidden):
        record_refusal(error)
    headers = {"WWW-Authenticate": 'Bearer realm="bpmn-server"'} if error.status == 401 else None
    # members of the problem itself win over same-named extras (e.g. a Conflict's ``status`` of an instance)
    extra = {k: v for k, v in error.extra.items() if k not in ("status", "type", "title", "detail", "headers")}
    return problem_response(error.status, error.type, error.title, error.detail, headers=headers, **extra)


def database_unavailable(detail: str = "the database is unreachable or restarting; try again shortly") -> Response:
    """503 with Retry-After: the database went away (restart, fail-over, network) and the request
    failed; its transaction was rolled back unless the connection broke during the commit itself."""
    return problem_response(503, "database-unavailable", "Database unavailable", detail,
                            headers={"Retry-After": RETRY_AFTER_SECONDS})


def from_http_exception(error: HTTPException) -> Response:
    """Werkzeug/webargs errors (404 routes, 405, 413, 422 argument validation) as problem+json; an
    unhandled exception arrives as a 500 that carries it, and a lost database becomes a 503."""
    if is_database_lost(getattr(error, "original_exception", None)):
        return database_unavailable()
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    extra: dict[str, Any] = {}
    messages = data.get("errors") or data.get("messages")
    detail = data.get("message") or error.description
    if messages:
        extra["errors"] = _flatten_webargs(messages)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in extra["errors"]) or detail
    slug = {
        400: "bad-request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        409: "conflict",
        412: "precondition-failed",
        413: "request-too-large",
        415: "unsupported-media-type",
        422: "invalid-input",
        428: "precondition-required",
        429: "rate-limited",
    }.get(status, "server-error" if status >= 500 else "error")
    return problem_response(status, slug, error.name, detail, headers=data.get("headers"), **extra)


def _flatten_webargs(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """webargs nests errors by location and field; turn them into a flat list of {field, message}."""
    flat: list[dict[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in {"json", "query", "form", "files", "headers", "path", "view_args", "json_or_form"} and not prefix:
                flat.extend(_flatten_webargs(value, ""))
            else:
                flat.extend(_flatten_webargs(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat.append({"field": prefix or "_", "message": " ".join(messages)})
    elif isinstance(messages, list):
        for item in messages:
            flat.extend(_flatten_webargs(item, prefix))
    else:
        flat.append({"field": prefix or "_", "message": str(messages)})
    return flat


def wants_problem_json() -> bool:
    return request.path.startswith("/api/")
