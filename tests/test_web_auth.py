"""Signing in and out of the web pages: sessions, CSRF, safe redirects, the login rate limit, headers."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from bpmn_server import create_app
from tests.conftest import POSTGRES_URL
from tests.models import linear_process
from tests.web_support import create_people, csrf_from, fast_password_hashing, page_token, sign_in


@pytest.fixture
def backend() -> str:
    """Pages, not storage, are under test here: SQLite only (the services have their own backend tests)."""
    return "sqlite"


@pytest.fixture
def people(services, monkeypatch):
    fast_password_hashing(monkeypatch)
    create_people(services)


def test_pages_redirect_to_sign_in_and_back(client, people):
    response = client.get("/processes?retired=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fprocesses%3Fretired%3D1"

    response = sign_in(client, "clerk", next_url="/processes?retired=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/processes?retired=1"
    page = client.get("/processes")
    assert page.status_code == 200
    assert "clerk" in page.get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client, people):
    for username, password in (("clerk", "wrong"), ("nobody", "clerk-demo")):
        response = sign_in(client, username, password)
        assert response.status_code == 401
        assert "Unknown username or wrong password" in response.get_data(as_text=True)
    assert client.get("/processes").status_code == 302


def test_sign_out_ends_the_session(client, people):
    sign_in(client, "clerk")
    token = page_token(client)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/processes").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_next_never_leaves_the_site(client, people, target):
    response = sign_in(client, "clerk", next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/tasks"


def test_forms_without_the_csrf_token_are_refused(client, people, services):
    services.definitions.deploy(linear_process("simple"), "simple.bpmn", "clerk")
    login_page = client.get("/login")
    assert client.post("/login", data={"username": "clerk", "password": "clerk-demo"}).status_code == 400
    assert client.post("/login", data={"username": "clerk", "password": "clerk-demo",
                                       "csrf_token": "forged"}).status_code == 400
    response = client.post("/login", data={"username": "clerk", "password": "clerk-demo",
                                           "csrf_token": csrf_from(login_page.get_data(as_text=True))})
    assert response.status_code == 302

    refused = client.post("/processes/simple/v/1/retire")
    assert refused.status_code == 400
    assert "CSRF" in refused.get_data(as_text=True)
    assert services.definitions.get("simple", 1).retired_at is None
    assert client.post("/logout").status_code == 400
    assert client.get("/processes").status_code == 200  # still signed in


def test_a_new_session_gets_a_new_csrf_token(client, people):
    before = csrf_from(client.get("/login").get_data(as_text=True))
    sign_in(client, "clerk")
    after = page_token(client)
    assert after != before


def test_api_calls_riding_on_the_session_cookie_need_the_csrf_token(client, people):
    sign_in(client, "clerk")
    upload = {"file": (io.BytesIO(linear_process("viaweb")), "viaweb.bpmn")}
    assert client.post("/api/v1/deployments", data=upload, content_type="multipart/form-data").status_code == 400
    upload = {"file": (io.BytesIO(linear_process("viaweb")), "viaweb.bpmn")}
    response = client.post("/api/v1/deployments", data=upload, content_type="multipart/form-data",
                           headers={"X-CSRF-Token": page_token(client)})
    assert response.status_code == 201


def test_bearer_token_api_calls_need_no_csrf_token(client, auth):
    upload = {"file": (io.BytesIO(linear_process("script")), "script.bpmn")}
    response = client.post("/api/v1/deployments", data=upload, content_type="multipart/form-data", headers=auth)
    assert response.status_code == 201


def test_session_cookie_is_httponly_and_samesite(client, people):
    response = sign_in(client, "clerk")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_when_configured(services, people):
    from dataclasses import replace

    services.settings = replace(services.settings, secure_cookies=True)
    client = create_app(services=services, testing=True).test_client()
    response = sign_in(client, "clerk")
    assert "Secure" in response.headers["Set-Cookie"]


def test_repeated_failed_sign_ins_are_throttled(client, app, people, clock):
    for _ in range(5):
        assert sign_in(client, "clerk", "guess").status_code == 401
    blocked = sign_in(client, "clerk")  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)
    assert sign_in(app.test_client(), "manager").status_code == 302  # others on the same address still sign in
    clock.advance(timedelta(minutes=6))
    assert sign_in(client, "clerk").status_code == 302


def test_many_failures_from_one_address_block_it(client, people):
    for attempt in range(20):
        assert sign_in(client, f"guess{attempt}", "guess").status_code == 401
    assert sign_in(client, "clerk").status_code == 429


# the sign-in count is shared through the database: these run on PostgreSQL (several nodes) too
ON_BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL tests need BPMN_SERVER_TEST_POSTGRES_URL (set by .ci/run)"))])


@pytest.fixture
def two_workers(services, settings, database, clock, people):
    """Two app instances on one database, as two gunicorn workers or two nodes run them."""
    from bpmn_server.services import Services
    from bpmn_server.store import Database

    other = Services(settings, database=Database(database.url), clock=clock)
    yield create_app(services=services, testing=True), create_app(services=other, testing=True)
    other.database.dispose()


@ON_BOTH_BACKENDS
def test_workers_share_the_sign_in_count(two_workers, clock):
    first, second = (app.test_client() for app in two_workers)
    for client in (first, second, first, second, first):
        assert sign_in(client, "clerk", "guess").status_code == 401
    blocked = sign_in(second, "clerk")
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "300"
    assert sign_in(first, "clerk").status_code == 429
    clock.advance(timedelta(minutes=5))
    assert sign_in(second, "clerk").status_code == 302


@ON_BOTH_BACKENDS
def test_a_correct_password_clears_the_users_count_on_every_worker(two_workers):
    first, second = two_workers
    guesser = first.test_client()
    for _ in range(4):
        assert sign_in(guesser, "clerk", "guess").status_code == 401
    assert sign_in(second.test_client(), "clerk").status_code == 302
    for _ in range(5):  # a fresh count: five more failures before the block
        assert sign_in(guesser, "clerk", "guess").status_code == 401
    assert sign_in(second.test_client(), "clerk").status_code == 429


def test_pages_carry_security_headers(client, people):
    sign_in(client, "clerk")
    response = client.get("/processes")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    stylesheet = client.get("/static/css/app.css")
    assert stylesheet.status_code == 200 and "no-store" not in stylesheet.headers.get("Cache-Control", "")
