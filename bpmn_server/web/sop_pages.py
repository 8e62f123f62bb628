"""The SOP handbook pages: ``/sop`` (catalogue), ``/sop/<key>`` (latest version) and ``/sop/<key>/v/<n>``.

Readable without signing in by default: a handbook is meant for everyone who does the work (see
docs/sop.md). With ``BPMN_SERVER_SOP_PUBLIC=false`` they are for signed-in users only, as every
other page (the REST API's SOP endpoint always needs a token).
"""

from __future__ import annotations

import html

from flask import Blueprint, Response, current_app, request

from ..errors import NotFound
from .pages import require_sign_in

bp = Blueprint("sop_pages", __name__)


@bp.before_request
def _sign_in_unless_public():
    """Public handbooks need nobody; otherwise the pages' sign-in rule applies."""
    return None if _services().settings.sop_public else require_sign_in()


def _services():
    return current_app.extensions["bpmn_server"]


def _html_response(body: str, status: int = 200, etag: str | None = None) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src http: https: data:; base-uri 'none'; form-action 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    if etag:
        response.set_etag(etag)
        return response.make_conditional(request)
    return response


def _not_found(message: str) -> Response:
    body = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SOP not found</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}"
        "h1{font-size:1.5rem}</style></head><body><h1>SOP not found</h1>"
        f"<p>{html.escape(message)}.</p><p><a href=\"/sop\">All published SOPs</a></p></body></html>"
    )
    return _html_response(body, status=404)


def _sop_page(key: str, version: int | None) -> Response:
    try:
        page = _services().sop.page(key, version, link_prefix="")
    except NotFound as error:
        return _not_found(error.detail[:1].upper() + error.detail[1:])
    return _html_response(page.html, etag=page.etag)


@bp.get("/sop/<key>")
def latest_sop(key: str) -> Response:
    """The SOP of the latest version of a process that is not retired."""
    return _sop_page(key, None)


@bp.get("/sop/<key>/v/<version>")
def versioned_sop(key: str, version: str) -> Response:
    """The SOP of one version; it never changes once the version is deployed."""
    if not version.isdigit():
        return _not_found(f"“{version}” is not a version number")
    return _sop_page(key, int(version))


@bp.get("/sop/<key>/diff/<old>/<new>")
def sop_changes(key: str, old: str, new: str) -> Response:
    """What changed in the SOP between two versions: added, removed and changed steps."""
    if not (old.isdigit() and new.isdigit()):
        return _not_found("versions are numbers, e.g. /sop/<key>/diff/1/2")
    try:
        body = _services().sop.diff(key, int(old), int(new))
    except NotFound as error:
        return _not_found(error.detail[:1].upper() + error.detail[1:])
    return _html_response(body)


@bp.get("/sop")
def sop_index() -> Response:
    """Every process with a published SOP: its latest version, and links to the earlier ones."""
    definitions = _services().definitions
    page = definitions.list_definitions(latest_only=True, include_retired=False, limit=1000)
    rows = []
    for definition in page.items:
        name = html.escape(definition.name or definition.key)
        key = html.escape(definition.key)
        older = " ".join(
            f'<a href="/sop/{key}/v/{n}">v{n}</a>' for n in range(definition.version - 1, 0, -1)
        )
        if definition.version > 1:
            older += f' · <a href="/sop/{key}/diff/{definition.version - 1}/{definition.version}">changes</a>'
        rows.append(
            f'<tr><td><a href="/sop/{key}">{name}</a></td><td><code>{key}</code></td>'
            f"<td>{definition.version}</td><td>{older}</td></tr>"
        )
    body = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SOP handbooks</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;"
        "text-align:left}</style></head><body><h1>SOP handbooks</h1>"
        + ("<table><thead><tr><th>Process</th><th>Key</th><th>Version</th><th>Earlier versions</th></tr></thead>"
           "<tbody>" + "".join(rows) + "</tbody></table>" if rows else "<p>No process has been deployed yet.</p>")
        + "</body></html>"
    )
    return _html_response(body)
