"""Rate limits shared through the database: the expensive API endpoints per token (429 problem+json with
Retry-After, nothing changed), windows passing on the injected clock, tokens and users counted apart,
concurrent hits never past the limit, limits switched off, old windows pruned — SQLite and PostgreSQL."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bpmn_server.clock import ManualClock
from bpmn_server.errors import RateLimited
from bpmn_server.settings import Settings
from bpmn_server.store.models import AuditEvent, Deployment, RateLimit
from bpmn_server.store.rate_limits import Limit, RateLimiter, bucket

from .models import linear_process
from .test_deploy_versions import _race as race
from .web_support import create_people, fast_password_hashing, page_token, sign_in

LIMIT = 3
PROBLEM = "application/problem+json"
SOP = "/api/v1/process-definitions/simple/versions/1/sop"
EXPENSIVE = [  # (method, path, keyword arguments of the test client call)
    ("post", "/api/v1/validations", {}),
    ("post", "/api/v1/deployments", {}),
    ("get", "/api/v1/audit/export", {"query_string": {"format": "csv"}}),
    ("get", "/api/v1/audit/verify", {}),
    ("get", SOP, {}),
]


@pytest.fixture
def settings(tmp_path, database) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database.url, secret_key="test-secret",
                    rate_limit_expensive_per_minute=LIMIT).resolved()


@pytest.fixture
def model(services):
    services.definitions.deploy(linear_process(), "simple.bpmn", "admin")


def _call(client, headers, method: str, path: str, **kwargs):
    if method == "post":
        kwargs["data"] = {"file": (io.BytesIO(linear_process("uploaded")), "uploaded.bpmn")}
        kwargs["content_type"] = "multipart/form-data"
    return getattr(client, method)(path, headers=headers, **kwargs)


def _deploy(client, headers, label: str):
    return client.post("/api/v1/deployments", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(linear_process("simple", label=label)), "simple.bpmn")})


def _assert_refused(response, retry_after: int) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.headers["Retry-After"] == str(retry_after)
    problem = response.get_json()
    assert problem["type"] == "/problems/rate-limited" and problem["status"] == 429
    assert "3 expensive requests" in problem["detail"] and "rate_limit_expensive_per_minute" in problem["detail"]
    assert f"try again in {retry_after} s" in problem["detail"]
    assert problem["retry_after"] == retry_after
    assert problem["limit"] == {"setting": "rate_limit_expensive_per_minute", "hits": LIMIT, "window_seconds": 60}


def _count(services, column) -> int:
    with services.database.read() as session:
        return session.scalar(select(func.count(column)))


def test_a_token_over_its_limit_gets_429_with_retry_after_and_changes_nothing(client, auth, services, clock):
    for label in ("one", "two", "three"):
        assert _deploy(client, auth, label).status_code == 201
    deployments, events = _count(services, Deployment.id), _count(services, AuditEvent.sequence)

    clock.advance(20)  # the window started at 09:00:00 and ends at 09:01:00
    _assert_refused(_deploy(client, auth, "four"), retry_after=40)
    assert (_count(services, Deployment.id), _count(services, AuditEvent.sequence)) == (deployments, events)
    assert services.definitions.get("simple").version == 3
    assert client.get("/api/v1/process-definitions", headers=auth).status_code == 200  # cheap calls go on

    clock.advance(40)  # the next window
    assert _deploy(client, auth, "four").status_code == 201
    assert services.definitions.get("simple").version == 4


@pytest.mark.parametrize(("method", "path", "kwargs"), EXPENSIVE, ids=[path for _, path, _ in EXPENSIVE])
def test_every_expensive_endpoint_counts_against_one_limit_per_token(client, auth, model, method, path, kwargs):
    others = [call for call in EXPENSIVE if call[1] != path]
    for other_method, other_path, other_kwargs in others[:LIMIT]:
        response = _call(client, auth, other_method, other_path, **other_kwargs)
        assert response.status_code < 400, response.get_data(as_text=True)
    _assert_refused(_call(client, auth, method, path, **kwargs), retry_after=60)


def test_two_tokens_are_counted_apart(client, auth, services, model):
    other = {"Authorization": f"Bearer {services.identity.create_token('admin', 'second').token}"}
    for _ in range(LIMIT):
        assert client.get(SOP, headers=auth).status_code == 200
    _assert_refused(client.get(SOP, headers=auth), retry_after=60)
    for _ in range(LIMIT):
        assert client.get(SOP, headers=other).status_code == 200
    _assert_refused(client.get(SOP, headers=other), retry_after=60)


def test_a_signed_in_browser_is_counted_per_user(client, app, auth, services, model, monkeypatch):
    fast_password_hashing(monkeypatch)
    create_people(services)
    sign_in(client, "clerk")
    for _ in range(LIMIT):
        assert client.get(SOP).status_code == 200
    _assert_refused(client.get(SOP), retry_after=60)
    second_browser = app.test_client()  # the same user in another browser shares the count
    sign_in(second_browser, "clerk")
    _assert_refused(second_browser.get(SOP), retry_after=60)
    manager = app.test_client()
    sign_in(manager, "manager")
    assert manager.get(SOP).status_code == 200
    assert client.get(SOP, headers=auth).status_code == 200  # the administrator's token is not the clerk


def test_limit_zero_switches_it_off(client, auth, services, model):
    from dataclasses import replace

    services.settings = replace(services.settings, rate_limit_expensive_per_minute=0)
    for _ in range(LIMIT * 3):
        assert client.get(SOP, headers=auth).status_code == 200
    assert _count(services, RateLimit.bucket) == 0  # not even counted


# -- the limiter itself ---------------------------------------------------------------------------------

PER_MINUTE = Limit(10, timedelta(minutes=1), "calls", "test_calls_per_minute")


def test_concurrent_hits_never_pass_the_limit(database, clock):
    threads, per_thread = 8, 5
    limiter = RateLimiter(database, clock)
    allowed: list[int] = []
    refused: list[RateLimited] = []

    def hammer() -> None:
        for _ in range(per_thread):
            try:
                allowed.append(limiter.hit(("shared", PER_MINUTE))[0].hits)
            except RateLimited as error:
                refused.append(error)

    assert race(threads, hammer) == []
    assert sorted(allowed) == list(range(1, PER_MINUTE.hits + 1))  # each count handed out once
    assert len(refused) == threads * per_thread - PER_MINUTE.hits
    with database.read() as session:
        assert session.scalar(select(RateLimit.hits).where(RateLimit.bucket == "shared")) == PER_MINUTE.hits


def test_all_or_none_a_refused_hit_counts_in_no_bucket(database, clock):
    limiter = RateLimiter(database, clock)
    small = Limit(1, timedelta(minutes=5), "tries", "test_tries")
    limiter.hit(("b", small))
    with pytest.raises(RateLimited, match=r"1 tries per 5 minutes \(setting test_tries\); try again in 300 s"):
        limiter.hit(("a", PER_MINUTE), ("b", small))
    assert [hit.hits for hit in limiter.hit(("a", PER_MINUTE))] == [1]  # "a" was not counted before


def test_a_node_with_a_lagging_clock_counts_in_the_newer_window(database, clock):
    ahead, behind = RateLimiter(database, clock), RateLimiter(database, ManualClock(clock.now()))
    clock.advance(61)  # this node is already in the second window; the other is still in the first
    two = Limit(2, timedelta(minutes=1), "calls", "test_calls")
    assert ahead.hit(("skewed", two))[0].hits == 1
    assert behind.hit(("skewed", two))[0].hits == 2  # not a reset to an older window
    with pytest.raises(RateLimited):
        ahead.hit(("skewed", two))


def test_a_limit_of_zero_hits_or_zero_seconds_counts_nothing(database, clock):
    limiter = RateLimiter(database, clock)
    off = [Limit(0, timedelta(minutes=1), "calls", "off"), Limit(5, timedelta(0), "calls", "off")]
    for _ in range(10):
        assert limiter.hit(*(("off", limit) for limit in off)) == []
    with database.read() as session:
        assert session.scalars(select(RateLimit.bucket)).all() == []


def test_refund_and_clear(database, clock):
    limiter = RateLimiter(database, clock)
    first = limiter.hit(("kept", PER_MINUTE), ("cleared", PER_MINUTE))
    limiter.hit(("kept", PER_MINUTE))
    limiter.refund(first[:1], clear=["cleared"])
    with database.read() as session:
        assert dict(session.execute(select(RateLimit.bucket, RateLimit.hits)).all()) == {"kept": 1}
    clock.advance(60)
    limiter.refund(first[:1])  # a hit of an ended window is not refunded into the new one
    assert limiter.hit(("kept", PER_MINUTE))[0].hits == 1


def test_ended_windows_are_pruned(database, clock):
    limiter = RateLimiter(database, clock)
    limiter.hit(("idle", PER_MINUTE), ("busy", PER_MINUTE))
    clock.advance(30)
    limiter.hit(("busy", PER_MINUTE))  # within a minute of the last pruning: no pruning
    clock.advance(45)  # 09:01:15: both windows have ended, "busy" gets a new one
    limiter.hit(("busy", PER_MINUTE))
    with database.read() as session:
        assert session.scalars(select(RateLimit.bucket)).all() == ["busy"]


def test_overlong_bucket_values_are_hashed_to_fit(database, clock):
    key = bucket("login:user", "x" * 5000)  # whatever someone types into the sign-in form
    assert len(key) <= 255 and key.startswith("login:user:sha256:")
    assert bucket("login:user", "alice") == "login:user:alice"
    assert RateLimiter(database, clock).hit((key, PER_MINUTE))[0].hits == 1


def test_page_uploads_and_modeler_saves_share_the_users_limit(client, app, services, model, monkeypatch):
    fast_password_hashing(monkeypatch)
    create_people(services)
    sign_in(client, "clerk")
    token = page_token(client, "/processes/upload")

    def upload(label: str):
        return client.post("/processes/upload", content_type="multipart/form-data", data={
            "file": (io.BytesIO(linear_process("paged", label=label)), "paged.bpmn"), "csrf_token": token})

    def modeler_save(label: str):
        return client.post("/modeler/save", json={"xml": linear_process("paged", label=label).decode()},
                           headers={"X-CSRF-Token": token})

    assert client.get(SOP).status_code == 200  # an API call on the session: the same budget
    assert upload("one").status_code == 201
    assert modeler_save("two").status_code == 201
    deployments = _count(services, Deployment.id)

    refused = upload("three")
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert refused.headers["Retry-After"] == "60" and "rate_limit_expensive_per_minute" in refused.get_data(as_text=True)
    saved = modeler_save("four")
    assert saved.status_code == 429 and saved.headers["Retry-After"] == "60"
    assert saved.get_json()["retry_after"] == 60 and "try again in 60 s" in saved.get_json()["detail"]
    assert _count(services, Deployment.id) == deployments  # nothing was deployed
    manager = app.test_client()
    sign_in(manager, "manager")
    assert manager.post("/modeler/save", json={"xml": linear_process("paged", label="five").decode()},
                        headers={"X-CSRF-Token": page_token(manager, "/modeler")}).status_code == 201
