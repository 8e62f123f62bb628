"""Web-page security: sign-in sessions, CSRF tokens, the login rate limit and response headers.

Sessions are Flask's signed cookie (HttpOnly, SameSite=Lax, Secure when configured) holding the
username, a random CSRF token and the sign-in time; nothing else. Every state-changing request that
rides on the session cookie (forms, the modeler's JSON save, and API calls without a bearer token)
must carry the session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Flask, abort, g, request, session

from ..errors import NotFound, Unauthenticated
from ..identity.principal import Principal

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
    higher, since many people may share an address behind a proxy) within ``window``."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window: timedelta = timedelta(minutes=5)) -> None:
        self.limits = {"user": per_user, "addr": per_address}
        self.window = window
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return ("user", username.lower()), ("addr", address)

    def retry_after(self, username: str, address: str, now: datetime) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        wait = 0
        with self._lock:
            for key in self._keys(username, address):
                failures = self._failures.get(key)
                if not failures:
                    continue
                while failures and failures[0] <= now - self.window:
                    failures.popleft()
                if len(failures) >= self.limits[key[0]]:
                    wait = max(wait, int((failures[0] + self.window - now).total_seconds()) + 1)
                if not failures:
                    del self._failures[key]
        return wait

    def failed(self, username: str, address: str, now: datetime) -> None:
        with self._lock:
            for key in self._keys(username, address):
                self._failures[key].append(now)

    def succeeded(self, username: str, address: str) -> None:
        """A correct password clears the user's count (not the address's: others may be guessing there)."""
        with self._lock:
            self._failures.pop(("user", username.lower()), None)


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


def init_app(app: Flask) -> None:
    """Session cookie settings, the CSRF check and the security headers, for the whole app."""
    settings = app.extensions["bpmn_server"].settings
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.secure_cookies
    app.config["SESSION_COOKIE_NAME"] = "bpmn_server_session"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=SESSION_HOURS)
    app.extensions["bpmn_server_login_throttle"] = LoginThrottle()
    app.before_request(_check_csrf)
    app.after_request(_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
