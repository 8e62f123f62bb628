"""The modeler: bpmn-js in the browser, saving back through the same validate → deploy path as an
upload (a JSON POST with the session's CSRF token), answering with the new version and its findings."""

from __future__ import annotations

import re

from flask import jsonify, request, url_for

from ..errors import InvalidDocument, InvalidInput, RateLimited
from .pages import bp, principal, render, services
from .security import count_expensive_page

_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@bp.get("/modeler")
def modeler():
    """Edit a version (``?key=&version=``; the newest active one without a version) or draw a new model."""
    key = request.args.get("key") or None
    definition = services().definitions.get(key, request.args.get("version", type=int)) if key else None
    return render("modeler.html", definition=definition, findings=(definition.findings or []) if definition else [])


@bp.post("/modeler/save")
def modeler_save():
    """Validate and deploy the modeler's XML as a new version; findings come back for the diagram."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("xml"), str) or not body["xml"].strip():
        return jsonify(detail="send a JSON object with the diagram as 'xml'"), 400
    name = _file_name(body.get("name"))
    try:
        count_expensive_page(principal().username)
    except RateLimited as error:
        retry_after = error.extra["retry_after"]
        return jsonify(detail=error.detail, retry_after=retry_after), error.status, {"Retry-After": str(retry_after)}
    try:
        result = services().definitions.deploy(body["xml"].encode("utf-8"), name, principal().username)
    except InvalidDocument as error:
        return jsonify(detail=error.detail, line=error.line, column=error.column), error.status
    except InvalidInput as error:
        return jsonify(detail=error.detail), 422
    return jsonify(
        created=result.created,
        definitions=[
            {
                "key": d.key,
                "version": d.version,
                "name": d.name,
                "error_count": d.error_count,
                "url": url_for("web.process_version", key=d.key, version=d.version),
                "modeler_url": url_for("web.modeler", key=d.key, version=d.version),
            }
            for d in result.definitions
        ],
        findings=[f.as_dict() for f in result.findings],
    ), 201 if result.created else 200


def _file_name(name: object) -> str:
    """A plain file name for the deployment record."""
    text = _FILE_NAME.sub("-", str(name or "")).strip("-.")[:200]
    if not text:
        text = "model"
    return text if text.endswith((".bpmn", ".xml")) else text + ".bpmn"
