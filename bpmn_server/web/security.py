"""Web-page security: sign-in sessions, CSRF tokens, the login rate limit and response headers.

Sessions are Flask's signed cookie (HttpOnly, SameSite=Lax, Secure when configured) holding the
username, a random CSRF token and the sign-in time; nothing else. Every state-changing request that
rides on the session cookie (forms, the modeler's JSON save, and API calls without a bearer token)
must carry the session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, request, session

from ..errors import NotFound, Unauthenticated
from ..identity.principal import Principal
from ..store.rate_limits import Hit, Limit, RateLimiter, bucket, expensive_user_bucket

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
SESSION_HOURS = 12

# Only the app's own scripts; bpmn-js sets inline style attributes and draws data: images (its logo).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def csrf_token() -> str:
    """The CSRF token of this session (created on first use)."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok() -> bool:
    """Whether this request carries the session's CSRF token (form field or header)."""
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


def _check_csrf() -> None:
    """Refuse (400) a state-changing request that relies on the session cookie but lacks the token."""
    if request.method in SAFE_METHODS:
        return
    if request.path.startswith("/api/"):
        # Scripts authenticate with a bearer token and need no CSRF token; a browser riding on the
        # session cookie does.
        if request.headers.get("Authorization") or not session.get("username"):
            return
    if not csrf_ok():
        abort(400, description="The form has expired or did not come from this site (CSRF token missing "
                               "or wrong). Reload the page and try again.")


def sign_in(principal: Principal, now: datetime) -> None:
    """Start a fresh session for a user (a new CSRF token; nothing from before survives)."""
    session.clear()
    session.permanent = True
    session["username"] = principal.username
    session["signed_in_at"] = now.isoformat()
    session[CSRF_FIELD] = secrets.token_urlsafe(32)


def sign_out() -> None:
    session.clear()


def signed_in_principal(services) -> Principal | None:
    """The principal of the signed-in user, or None (no session, unknown or deactivated user)."""
    if "principal" in g:
        return g.principal
    username = session.get("username")
    if not username:
        return None
    try:
        principal = services.identity.principal_for(username)
    except (NotFound, Unauthenticated):
        session.clear()
        return None
    g.principal = principal
    return principal


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target on this site only (a path), never another host or scheme."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


class LoginThrottle:
    """Failed sign-ins are limited per username (``per_user``) and per client address (``per_address``,
    higher, since many people may share an address behind a proxy) within a fixed ``window``.

    Counted in the database (``store.rate_limits``), so every worker process and node shares the
    count. An attempt is counted before the password is checked, as if it failed (so guesses sent
    in parallel cannot all pass a check that has not seen the others fail yet); a correct password
    then takes it back and clears the user's count. A refused attempt counts nowhere.
    """

    def __init__(self, limiter: RateLimiter, per_user: int = 5, per_address: int = 20,
                 window: timedelta = timedelta(minutes=5)) -> None:
        self.limiter = limiter
        what = "failed sign-ins per {}"
        self.per_user = Limit(per_user, window, what.format("username"), "login_failures_per_user")
        self.per_address = Limit(per_address, window, what.format("client address"), "login_failures_per_address")

    @staticmethod
    def _user(username: str) -> str:
        return bucket("login:user", username.lower())

    def attempt(self, username: str, address: str) -> list[Hit]:
        """Count a sign-in attempt as failed until ``succeeded``; ``RateLimited`` (with
        ``retry_after`` seconds) when the user or the address has used up its tries."""
        return self.limiter.hit((bucket("login:addr", address), self.per_address),
                                (self._user(username), self.per_user))

    def succeeded(self, username: str, attempt: list[Hit]) -> None:
        """A correct password: the attempt was no failure, and the user's count starts over (not the
        address's: others may be guessing there)."""
        user = self._user(username)
        self.limiter.refund([hit for hit in attempt if hit.bucket != user], clear=[user])


def _security_headers(response):
    """Headers every response gets; the CSP goes on HTML pages (not Swagger UI's own page)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html" and not request.path.startswith("/api/docs"):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if session.get("username") and not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")  # pages of a signed-in user: never cached
    return response


def count_expensive_page(username: str) -> None:
    """Count an upload or a modeler save against the user's limit of expensive requests — the same
    budget as the user's expensive API calls on the session; ``RateLimited`` once it is used up."""
    current_app.extensions["bpmn_server"].count_expensive_request(expensive_user_bucket(username))


def init_app(app: Flask) -> None:
    """Session cookie settings, the CSRF check and the security headers, for the whole app."""
    services = app.extensions["bpmn_server"]
    settings = services.settings
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.secure_cookies
    app.config["SESSION_COOKIE_NAME"] = "bpmn_server_session"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
    app.extensions["bpmn_server_login_throttle"] = LoginThrottle(
        services.rate_limits, per_user=settings.login_failures_per_user, per_address=settings.login_failures_per_address,
        window=timedelta(seconds=settings.login_failure_window_seconds))
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
