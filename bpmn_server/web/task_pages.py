"""Task performer pages: My tasks / Group tasks with filters and counts, one task with its generated
form, the instance's data, the diagram with the step highlighted and the SOP step; claim, unclaim,
complete and comment as POST forms (CSRF) answered with a redirect (Post/Redirect/Get)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.datastructures import MultiDict

from ..errors import BpmnServerError, Conflict, Forbidden, InvalidInput
from ..sop.instructions import Instructions, documentation_of
from .pages import bp, has_service, principal, render, services

TABS = {"mine": "My tasks", "group": "Group tasks"}
_SCOPES = {"mine": "mine", "group": "claimable"}
PAGE_SIZE = 50


def _filters(args: MultiDict) -> tuple[dict[str, Any], dict[str, str]]:
    """The task service's filters from the query string, and the values to show back in the form."""
    shown = {name: args.get(name, "").strip() for name in ("process", "due", "overdue", "priority", "sort")}
    filters: dict[str, Any] = {}
    if shown["process"]:
        filters["process_key"] = shown["process"]
    if shown["due"]:
        try:
            day = date.fromisoformat(shown["due"])
        except ValueError:
            shown["due"] = ""
        else:  # due on or before that day
            filters["due_before"] = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    if shown["overdue"] == "1":
        filters["overdue"] = True
    if shown["priority"].isdigit():
        filters["min_priority"] = int(shown["priority"])
    else:
        shown["priority"] = ""
    if shown["sort"] in ("due", "priority", "created", "name"):
        filters["sort"] = shown["sort"] if shown["sort"] != "priority" else "-priority"
    return filters, shown


@bp.get("/tasks")
def tasks():
    """My tasks and the group tasks I may claim, with counts, filters and sorting."""
    if not has_service("tasks"):
        return render("unavailable.html", section="tasks", title="Tasks",
                      detail="Task lists appear here once the execution runtime is installed.")
    tab = request.args.get("tab", "mine")
    if tab not in TABS:
        tab = "mine"
    filters, shown = _filters(request.args)
    task_service = services().tasks
    user = principal()
    try:
        counts = {name: task_service.list(user, scope=scope, limit=1, **_without_sort(filters)).total
                  for name, scope in _SCOPES.items()}
        page = task_service.list(user, scope=_SCOPES[tab], limit=PAGE_SIZE, **filters)
    except InvalidInput as error:
        flash(error.detail, "error")
        return redirect(url_for("web.tasks", tab=tab))
    keys = sorted({d.key for d in services().definitions.list_definitions(latest_only=True, limit=500).items})
    return render("tasks.html", tab=tab, tabs=TABS, counts=counts, page=page, filters=shown, process_keys=keys,
                  now=services().clock.now())


def _without_sort(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if k != "sort"}


# -- one task ---------------------------------------------------------------------------------------
def _task_page(task_id: str, *, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
               status: int = 200, message: str | None = None):
    user = principal()
    task = services().tasks.get(task_id, user)
    comments = services().tasks.comments(task_id, user)
    instance = services().instances.get(task.instance_id, principal=user)
    fields = (task.form or {}).get("fields") or []
    values = values if values is not None else {f["id"]: _shown_default(f, instance.variables or {}) for f in fields}
    return render(
        "task.html",
        status,
        task=task,
        instance=instance,
        comments=comments,
        fields=fields,
        values=values,
        errors=errors or {},
        error_message=message,
        may_claim=task.assignee is None and task.status == "open",
        is_mine=task.assignee == user.username,
        is_open=task.status in ("open", "claimed"),
        now=services().clock.now(),
        markers={task.element_id: "active"},
        instructions=_instructions(task),
    )


def _instructions(task) -> Instructions | None:
    """The step's documentation from the model, rendered and sanitized as the SOP shows it."""
    definitions = services().definitions
    definition = definitions.get(task.process_key, task.process_version)
    element = definitions.document_of(definition).element(task.element_id)
    return documentation_of(element) if element is not None else None


def _shown_default(field: dict[str, Any], variables: dict[str, Any]) -> Any:
    """What a field shows before the performer types: the current variable, else the model's default."""
    value = variables.get(field["id"], field.get("default"))
    return "" if value is None else value


@bp.get("/tasks/<task_id>")
def task(task_id: str):
    """One task: form, data, diagram, SOP step, comments, actions."""
    return _task_page(task_id)


def _submitted(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The form's values as the task service takes them (unchecked boxes are false, empty is absent)."""
    data: dict[str, Any] = {}
    for field in fields:
        name = field["id"]
        if field.get("readonly"):
            continue
        if (field.get("type") or "").lower() == "boolean":
            data[name] = "true" if "true" in request.form.getlist(name) else "false"
        elif request.form.get(name, "") != "":
            data[name] = request.form[name]
    return data


@bp.post("/tasks/<task_id>/complete")
def complete_task(task_id: str):
    """Complete with the form's data; bad fields come back inline (422), nothing changes."""
    user = principal()
    task = services().tasks.get(task_id, user)
    fields = (task.form or {}).get("fields") or []
    data = _submitted(fields)
    try:
        services().tasks.complete(task_id, data, user)
    except InvalidInput as error:
        bad = {e["field"]: e["message"] for e in error.extra.get("errors") or [] if "field" in e}
        shown = {f["id"]: request.form.get(f["id"], "") for f in fields}
        for f in fields:
            if (f.get("type") or "").lower() == "boolean":
                shown[f["id"]] = data.get(f["id"], "false")
        return _task_page(task_id, values=shown, errors=bad, status=422, message=error.detail)
    except (Conflict, Forbidden) as error:
        flash(error.detail, "error")
        return redirect(url_for("web.task", task_id=task_id), 303)
    flash(f"Completed “{task.name or task.element_id}”.", "success")
    return redirect(url_for("web.tasks"), 303)


def _task_action(task_id: str, action, done: str):
    try:
        action()
    except BpmnServerError as error:
        flash(error.detail, "error")
    else:
        flash(done, "success")
    return redirect(url_for("web.task", task_id=task_id), 303)


@bp.post("/tasks/<task_id>/claim")
def claim_task(task_id: str):
    """Take a group task."""
    user = principal()
    return _task_action(task_id, lambda: services().tasks.claim(task_id, user), "The task is yours now.")


@bp.post("/tasks/<task_id>/unclaim")
def unclaim_task(task_id: str):
    """Give a task back to its group."""
    user = principal()
    return _task_action(task_id, lambda: services().tasks.unclaim(task_id, user),
                        "The task is back in the group's list.")


@bp.post("/tasks/<task_id>/assign")
def assign_task(task_id: str):
    """Hand a task to someone else (its assignee delegates; an administrator assigns)."""
    user = principal()
    assignee = request.form.get("assignee", "").strip()
    return _task_action(task_id, lambda: services().tasks.assign(task_id, assignee, user),
                        f"The task is now assigned to {assignee}.")


@bp.post("/tasks/<task_id>/comments")
def comment_task(task_id: str):
    """Add a comment."""
    user = principal()
    text = request.form.get("text", "")
    return _task_action(task_id, lambda: services().tasks.comment(task_id, text, user), "Comment added.")


# -- notifications ----------------------------------------------------------------------------------
@bp.get("/notifications")
def notifications():
    """Reminders, escalations and assignments sent to me."""
    if not has_service("outbox"):
        return render("unavailable.html", section="tasks", title="Notifications",
                      detail="Notifications appear here once reminders and escalations are installed.")
    items, total, unread = services().outbox.notifications(principal(), limit=100)
    return render("notifications.html", items=items, total=total, unread=unread)


@bp.post("/notifications/read")
def read_notifications():
    """Mark every notification read."""
    count = services().outbox.mark_all_read(principal())
    flash(f"{count} notification{'s' if count != 1 else ''} marked read.", "success")
    return redirect(url_for("web.notifications"), 303)
