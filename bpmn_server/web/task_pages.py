"""Task performer pages: My tasks / Group tasks, and one task with its form, data, diagram and SOP step."""

from __future__ import annotations

from .pages import bp, has_service, render


@bp.get("/tasks")
def tasks():
    """The performer's task lists (once the runtime's task service exists)."""
    if not has_service("tasks"):
        return render("unavailable.html", section="tasks", title="Tasks",
                      detail="Task lists appear here once the execution runtime is installed.")
    return render("unavailable.html", section="tasks", title="Tasks", detail="")
