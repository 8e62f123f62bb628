"""Sign in with username and password, sign out."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for

from ..errors import RateLimited, Unauthenticated
from .pages import bp, render, services
from .security import safe_next, sign_in, sign_out, signed_in_principal


def _throttle():
    return current_app.extensions["bpmn_server_login_throttle"]


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; on success, back to where the user was going (on this site only)."""
    target = safe_next(request.values.get("next"), url_for("web.tasks"))
    if request.method == "GET":
        if signed_in_principal(services()) is not None:
            return redirect(target)
        return render("login.html", next=target, username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    try:
        attempt = _throttle().attempt(username, address)  # counts as failed until the password is right
    except RateLimited as refused:
        minutes = max(1, round(refused.extra["retry_after"] / 60))
        page, status = render("login.html", 429, next=target, username=username,
                              error=f"Too many failed sign-ins. Try again in about {minutes} minute"
                                    f"{'s' if minutes != 1 else ''}.")
        return page, status, {"Retry-After": str(refused.extra["retry_after"])}
    try:
        principal = services().identity.authenticate_password(username, password)
    except Unauthenticated:
        return render("login.html", 401, next=target, username=username,
                      error="Unknown username or wrong password.")
    _throttle().succeeded(username, attempt)
    sign_in(principal, services().clock.now())
    return redirect(target)


@bp.post("/logout")
def logout():
    """End the session (POST with the CSRF token, so no other site can sign you out)."""
    sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("web.login"))
