"""Operator and auditor pages: instances with filters, and one instance with its diagram (completed,
active and failed elements), variables, open tasks, timers, incidents (retry) and audit history, with
links to verify the audit chain and export the instance's log."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, flash, redirect, request, stream_with_context, url_for

from ..errors import BpmnServerError, Forbidden
from .pages import bp, has_service, principal, render, services

PAGE_SIZE = 50
STATUSES = ("running", "waiting", "completed", "terminated", "failed", "suspended")
EXPORTS = {"xes": ("application/xml", "xes"), "csv": ("text/csv; charset=utf-8", "csv"),
           "ocel": ("application/json", "ocel.json")}


def _unavailable():
    return render("unavailable.html", section="instances", title="Instances",
                  detail="Instances appear here once the execution runtime is installed.")


@bp.get("/instances")
def instances():
    """Instances, newest first, filtered by process, status, business key and starter."""
    if not has_service("instances"):
        return _unavailable()
    shown = {name: request.args.get(name, "").strip() for name in ("process", "status", "business_key", "started_by")}
    if shown["status"] not in STATUSES:
        shown["status"] = ""
    offset = max(request.args.get("offset", 0, type=int), 0)
    page = services().instances.list(
        key=shown["process"] or None,
        status=shown["status"] or None,
        business_key=shown["business_key"] or None,
        started_by=shown["started_by"] or None,
        principal=principal(),
        offset=offset,
        limit=PAGE_SIZE,
    )
    keys = sorted({d.key for d in services().definitions.list_definitions(latest_only=True, limit=500).items})
    return render("instances.html", may_audit=services().audit.may_read(principal()), page=page, filters=shown, statuses=STATUSES, process_keys=keys,
                  next_offset=offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None,
                  prev_offset=max(offset - PAGE_SIZE, 0) if offset else None)


def diagram_markers(instance, history: list[dict[str, Any]]) -> dict[str, str]:
    """How the diagram colours each element: completed (in the history), active now, failed (open incident)."""
    markers: dict[str, str] = {}
    for event in history:
        if event.get("element_id") and event.get("transition") == "complete":
            markers[event["element_id"]] = "completed"
    for activity in instance.activities or []:
        markers[activity.element_id] = "active"
    for incident in instance.incidents or []:
        if incident.element_id and incident.resolved_at is None:
            markers[incident.element_id] = "failed"
    return markers


@bp.get("/instances/<instance_id>")
def instance(instance_id: str):
    """One instance: diagram, variables, open tasks, timers, incidents and its audit history."""
    user = principal()
    info = services().instances.get(instance_id, principal=user)
    history = services().instances.history(instance_id, principal=user)
    open_tasks = services().tasks.list(user, instance_id=instance_id, scope="all" if user.is_admin else None,
                                       limit=100).items
    try:
        timers, _ = services().timers.list_timers(user, instance_id=instance_id, limit=100)
    except (Forbidden, AttributeError):
        timers = None  # the timer list is for administrators, as in the API
    return render(
        "instance.html",
        instance=info,
        history=history,
        open_tasks=open_tasks,
        timers=timers,
        markers=diagram_markers(info, history),
        open_incidents=[i for i in info.incidents if i.resolved_at is None],
        may_operate=user.is_admin or user.username == info.started_by,
        exports=EXPORTS,
        may_audit=services().audit.may_read(user),
    )


@bp.post("/instances/<instance_id>/retry")
def retry_instance(instance_id: str):
    """Run the failed element again (the starter or an administrator)."""
    try:
        services().instances.retry(instance_id, principal=principal())
    except BpmnServerError as error:
        flash(error.detail, "error")
    else:
        flash("Retried: the instance runs again.", "success")
    return redirect(url_for("web.instance", instance_id=instance_id), 303)


@bp.get("/instances/<instance_id>/audit.<kind>")
def export_instance_audit(instance_id: str, kind: str):
    """The instance's audit log as XES, CSV or OCEL, streamed (auditors and administrators)."""
    if kind not in EXPORTS:
        return render("error.html", 404, title="Unknown export format", code=404,
                      detail="Export as .xes, .csv or .ocel.")
    services().instances.get(instance_id, with_variables=False)  # 404 for an unknown instance
    mimetype, extension = EXPORTS[kind]
    chunks = services().audit.export(principal(), kind, instance_id=instance_id)
    return Response(stream_with_context(chunks), mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="instance-{instance_id}.{extension}"'})


@bp.get("/audit/verify")
def verify_audit():
    """Check the whole audit chain: intact, or the first altered, removed or reordered event (auditors)."""
    result = services().audit.verify(principal())
    return render("audit_verify.html", result=result)


@bp.post("/processes/<key>/v/<int:version>/start")
def start_instance(key: str, version: int):
    """Start an instance of this version (business key optional), then show it. The form carries a key
    made when the page was drawn: a double click or a resent form shows the instance the first
    submission started instead of starting another (the same form sent with another business key is
    another start)."""
    business_key = request.form.get("business_key", "").strip() or None
    try:
        info = services().instances.start(key, version=version, principal=principal(), business_key=business_key,
                                          idempotency_key=_start_key(request.form.get("start_request", ""),
                                                                     business_key))
    except BpmnServerError as error:
        flash(error.detail, "error")
        return redirect(url_for("web.process_version", key=key, version=version), 303)
    flash(f"Started {key} v{version}{f' for {business_key}' if business_key else ''}.", "success")
    return redirect(url_for("web.instance", instance_id=info.id), 303)


def _start_key(form_key: str, business_key: str | None) -> str | None:
    """The idempotency key of a start form's submission: its page's key and the business key sent."""
    if not form_key.strip():
        return None
    digest = hashlib.sha256((business_key or "").encode()).hexdigest()[:16]
    return f"web-start:{form_key.strip()[:64]}:{digest}"
