"""Webhooks and notifications from the outbox: signed deliveries, retries with backoff, dead after N,
subscriptions managed by administrators, notifications listed for the right people only."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bpmn_server.identity.principal import Principal
from bpmn_server.runtime import outbox
from bpmn_server.runtime.outbox import OutboxService, enqueue

ADMIN = Principal("admin", frozenset(), True)


class Receiver:
    """A local HTTP server on port 0 that answers with the queued status codes (then 204)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def service(database, clock) -> OutboxService:
    return OutboxService(database, clock, max_attempts=3, backoff_seconds=10, timeout_seconds=2)


def _people(services):
    services.identity.create_user("ann", password="ann-password", groups=["managers"])
    services.identity.create_user("bob", password="bob-password", groups=["managers", "clerks"])
    services.identity.create_user("carl", password="carl-password", groups=["clerks"])


def test_webhook_is_signed_with_hmac_sha256_and_delivered_once(services, database, clock, service, receiver):
    subscription = service.create_subscription(ADMIN, receiver.url, [outbox.TASK_REMINDER])
    with database.transaction() as session:
        enqueue(session, outbox.TASK_REMINDER, recipients=[], payload={"task": "Approve refund"}, now=clock.now(),
                instance_id="i-1", task_id="t-1")
        enqueue(session, outbox.TASK_CREATED, recipients=[], payload={"task": "other"}, now=clock.now())

    report = service.deliver_webhooks()

    assert report.delivered == 1
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(subscription.secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers[outbox.SIGNATURE_HEADER] == expected
    assert headers["X-Bpmn-Event"] == "task.reminder"
    sent = json.loads(body)
    assert sent["event"] == "task.reminder" and sent["data"] == {"task": "Approve refund"}
    assert sent["instance_id"] == "i-1" and sent["task_id"] == "t-1"
    assert service.deliver_webhooks().delivered == 0  # nothing is sent twice
    assert len(receiver.requests) == 1


def test_failed_webhook_is_retried_with_backoff_then_dead(database, clock, service, receiver):
    subscription = service.create_subscription(ADMIN, receiver.url, [])
    receiver.statuses = [500, 503, 500, 500]
    with database.transaction() as session:
        enqueue(session, outbox.INSTANCE_FAILED, recipients=[], payload={"message": "boom"}, now=clock.now())

    assert service.deliver_webhooks().retried == 1
    assert service.deliver_webhooks().delivered == 0  # backing off: not yet
    assert len(receiver.requests) == 1
    clock.advance(timedelta(seconds=10))
    assert service.deliver_webhooks().retried == 1  # second attempt after 10 s
    clock.advance(timedelta(seconds=10))
    assert service.deliver_webhooks().dead == 0  # third attempt waits 20 s
    clock.advance(timedelta(seconds=10))
    assert service.deliver_webhooks().dead == 1
    clock.advance(timedelta(days=1))
    assert service.deliver_webhooks().delivered == 0
    assert len(receiver.requests) == 3
    deliveries, total = service.deliveries(ADMIN, subscription.id)
    assert total == 1
    assert deliveries[0].status == "dead" and deliveries[0].attempts == 3
    assert "HTTP 500" in deliveries[0].last_error


def test_webhook_retry_succeeds_after_a_failure(database, clock, service, receiver):
    service.create_subscription(ADMIN, receiver.url, ["*"])
    receiver.statuses = [502]
    with database.transaction() as session:
        enqueue(session, outbox.TASK_ESCALATED, recipients=[], payload={}, now=clock.now())
    assert service.deliver_webhooks().retried == 1
    clock.advance(timedelta(seconds=10))
    assert service.deliver_webhooks().delivered == 1
    first, second = receiver.requests
    assert first[0]["X-Bpmn-Delivery"] == second[0]["X-Bpmn-Delivery"]  # receivers can de-duplicate


def test_unreachable_receiver_does_not_block_and_is_retried(database, clock, service):
    service.create_subscription(ADMIN, "http://127.0.0.1:9/nothing-listens-here", [])
    with database.transaction() as session:
        enqueue(session, outbox.TASK_CREATED, recipients=[], payload={}, now=clock.now())
    report = service.deliver_webhooks()
    assert report.retried == 1


def test_notifications_go_to_the_named_people_and_group_members(services, database, clock, service):
    _people(services)
    with database.transaction() as session:
        enqueue(session, outbox.TASK_REMINDER, recipients=["carl", "group:managers", "bob"],
                payload={"task": "Approve refund"}, now=clock.now(), task_id="t-1")

    def listed(name):
        groups = frozenset(services.identity.principal_for(name).groups)
        return service.notifications(Principal(name, groups, False))

    ann_items, ann_total, ann_unread = listed("ann")
    assert ann_total == 1 and ann_unread == 1 and ann_items[0].kind == "task.reminder"
    assert listed("bob")[1] == 1  # named and a member of managers: one notification, not two
    assert listed("carl")[1] == 1
    assert service.notifications(ADMIN)[1] == 0


def test_notification_api_lists_and_marks_read_for_the_caller_only(services, client, database, clock):
    _people(services)
    ann = {"Authorization": f"Bearer {services.identity.create_token('ann').token}"}
    carl = {"Authorization": f"Bearer {services.identity.create_token('carl').token}"}
    with database.transaction() as session:
        enqueue(session, outbox.TASK_CREATED, recipients=["group:managers"], payload={"task": "A"}, now=clock.now())
        enqueue(session, outbox.TASK_ASSIGNED, recipients=["ann"], payload={"task": "B"}, now=clock.now())

    page = client.get("/api/v1/notifications", headers=ann).get_json()
    assert page["total"] == 2 and page["unread"] == 2
    first = page["items"][0]["id"]
    assert client.post(f"/api/v1/notifications/{first}/read", headers=carl).status_code == 404
    answer = client.post(f"/api/v1/notifications/{first}/read", headers=ann)
    assert answer.status_code == 200 and answer.get_json()["read"] is True
    assert client.get("/api/v1/notifications?unreadOnly=true", headers=ann).get_json()["total"] == 1
    assert client.post("/api/v1/notifications/read", headers=ann).get_json() == {"marked": 1}
    assert client.get("/api/v1/notifications", headers=ann).get_json()["unread"] == 0
    assert client.get("/api/v1/notifications", headers=carl).get_json()["total"] == 0
    assert client.get("/api/v1/notifications").status_code == 401


def test_webhook_subscriptions_are_for_administrators(services, client, auth, receiver):
    services.identity.create_user("ann", password="ann-password")
    ann = {"Authorization": f"Bearer {services.identity.create_token('ann').token}"}
    body = {"url": receiver.url, "event_types": ["task.reminder", "task.escalated"]}
    assert client.post("/api/v1/webhooks", json=body, headers=ann).status_code == 403
    created = client.post("/api/v1/webhooks", json=body, headers=auth)
    assert created.status_code == 201
    subscription = created.get_json()
    assert len(subscription["secret"]) >= 32
    assert client.get("/api/v1/webhooks", headers=auth).get_json()[0]["secret"] is None
    bad = client.post("/api/v1/webhooks", json={"url": "ftp://x", "event_types": []}, headers=auth)
    assert bad.status_code == 422
    unknown = client.post("/api/v1/webhooks", json={"url": receiver.url, "event_types": ["nope"]}, headers=auth)
    assert unknown.status_code == 422
    patched = client.patch(f"/api/v1/webhooks/{subscription['id']}", json={"active": False}, headers=auth)
    assert patched.get_json()["active"] is False
    assert client.delete(f"/api/v1/webhooks/{subscription['id']}", headers=auth).status_code == 204
    deliveries = client.get(f"/api/v1/webhooks/{subscription['id']}/deliveries", headers=auth).get_json()
    assert deliveries["total"] == 0
