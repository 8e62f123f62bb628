"""Process owner pages: the catalogue of definitions, one version with its findings, upload, retire,
and the version's XML (for download and for the modeler/viewer)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flask import Response, flash, redirect, request, url_for

from ..errors import Forbidden, InvalidDocument, InvalidInput, RateLimited
from .pages import bp, has_service, principal, render, services
from .security import count_expensive_page

CATALOGUE_PAGE = 500


@dataclass
class ProcessEntry:
    """One process key in the catalogue: its versions, newest first."""

    key: str
    versions: list[Any] = field(default_factory=list)

    @property
    def latest(self):
        return self.versions[0]

    @property
    def active(self):
        """The newest version that is not retired (what a new instance starts)."""
        return next((v for v in self.versions if v.retired_at is None), None)


def finding_counts(definition) -> dict[str, int]:
    """How many findings of each severity a version has."""
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in definition.findings or []:
        counts[finding.get("severity", "info")] = counts.get(finding.get("severity", "info"), 0) + 1
    return counts


def instance_counts(definitions) -> dict[int, int]:
    """How many instances of each shown version the signed-in user may read (the instance list shows
    the same ones)."""
    instances = getattr(services(), "instances", None)
    if instances is None:
        return {}
    return {d.id: instances.list(definition_id=d.id, principal=principal(), limit=1).total for d in definitions}


@bp.app_template_global()
def findings_of(definition) -> dict[str, int]:
    return finding_counts(definition)


@bp.get("/processes")
def processes():
    """The catalogue: every process key with its versions, owner, findings and state."""
    show_retired = request.args.get("retired") == "1"
    page = services().definitions.list_definitions(include_retired=True, limit=CATALOGUE_PAGE)
    entries: dict[str, ProcessEntry] = {}
    for definition in page.items:
        entries.setdefault(definition.key, ProcessEntry(definition.key)).versions.insert(0, definition)
    listed = [e for e in entries.values() if show_retired or e.active is not None]
    counts = instance_counts([e.active or e.latest for e in listed])
    return render("processes.html", entries=listed, hidden=len(entries) - len(listed), show_retired=show_retired,
                  counts=counts, truncated=page.total > len(page.items))


@bp.get("/processes/<key>/v/<int:version>")
def process_version(key: str, version: int):
    """One version: facts, findings with line and element, diagram, actions."""
    definitions = services().definitions
    definition = definitions.get(key, version)
    versions = definitions.list_definitions(key=key, limit=CATALOGUE_PAGE).items
    user = principal()
    return render(
        "process_version.html",
        definition=definition,
        findings=definition.findings or [],
        counts=finding_counts(definition),
        versions=list(reversed(versions)),
        instance_count=instance_counts([definition]).get(definition.id),
        startable=has_service("instances") and definition.executable and not definition.error_count
        and definition.retired_at is None,
        may_retire=definition.retired_at is None and (user.is_admin or definition.owner == user.username),
        start_request=uuid.uuid4().hex,  # the start form's idempotency key: a second click starts nothing new
    )


@bp.get("/processes/<key>/v/<int:version>/xml")
def process_xml(key: str, version: int):
    """The deployed file, byte for byte (a download, also read by the viewer and the modeler)."""
    definitions = services().definitions
    definition = definitions.get(key, version)
    disposition = "attachment" if request.args.get("download") else "inline"
    return Response(
        definitions.source_of(definition),
        mimetype="application/xml",
        headers={"Content-Disposition": f'{disposition}; filename="{key}-v{version}.bpmn"'},
    )


@bp.post("/processes/<key>/v/<int:version>/retire")
def retire_version(key: str, version: int):
    """Stop new instances of a version (its owner or an administrator)."""
    try:
        services().definitions.retire(key, version, principal())
    except Forbidden as error:
        flash(error.detail, "error")
    else:
        flash(f"{key} version {version} is retired: no new instances start on it.", "success")
    return redirect(url_for("web.process_version", key=key, version=version))


@bp.route("/processes/upload", methods=["GET", "POST"])
def upload():
    """Upload a BPMN file: validated and deployed like the API's POST /deployments; findings shown."""
    if request.method == "GET":
        return render("upload.html")
    upload_file = request.files.get("file")
    if upload_file is None or not upload_file.filename:
        return render("upload.html", 422, error="Choose a BPMN file to upload.")
    data = upload_file.read()
    try:
        count_expensive_page(principal().username)
    except RateLimited as error:
        page, status = render("upload.html", error.status, error=error.detail)
        return page, status, {"Retry-After": str(error.extra["retry_after"])}
    try:
        result = services().definitions.deploy(data, upload_file.filename, principal().username)
    except InvalidDocument as error:
        where = f" (line {error.line}, column {error.column})" if error.line else ""
        return render("upload.html", error.status, error=f"{error.detail}{where}")
    except InvalidInput as error:
        return render("upload.html", 422, error=error.detail)
    return render("upload_result.html", 201 if result.created else 200, result=result,
                  findings=[f.as_dict() for f in result.findings])

