"""Idempotent starts and messages (runtime/idempotency.py): a request repeated with the same
Idempotency-Key answers as the first one did, and nothing is started or delivered twice; the key is
stored in the transaction of the command that did the work, belongs to its user, lasts a day, and
names one request only. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bpmn_server.errors import IdempotencyKeyReused, InvalidInput, NotExecutable
from bpmn_server.store.models import IdempotencyKey, ProcessInstance

from .models import linear_process
from .runtime_helpers import (
    ADMIN,
    CLERK,
    MANAGER,
    approval_process,
    create_people,
    message_processes,
    race,
    upload,
)

PROBLEM = "application/problem+json"


@pytest.fixture
def approval(services):
    services.definitions.deploy(approval_process(), "approval.bpmn", "admin")


def instance_count(services) -> int:
    with services.database.read() as session:
        return session.scalar(select(func.count()).select_from(ProcessInstance))


def test_a_repeated_start_answers_with_the_first_instance(services, approval):
    first = services.instances.start("approval", principal=CLERK, business_key="R-1",
                                     variables={"amount": 5}, idempotency_key="order-7-start")
    again = services.instances.start("approval", principal=CLERK, business_key="R-1",
                                     variables={"amount": 5}, idempotency_key="order-7-start")
    assert not first.replayed and again.replayed
    assert again.id == first.id and again.variables == {"amount": 5} and instance_count(services) == 1
    # without a key every start is a new instance; another user's key is theirs alone
    assert services.instances.start("approval", principal=CLERK, business_key="R-1").id != first.id
    theirs = services.instances.start("approval", principal=MANAGER, business_key="R-1",
                                      variables={"amount": 5}, idempotency_key="order-7-start")
    assert theirs.id != first.id and not theirs.replayed and instance_count(services) == 3


def test_the_same_key_with_another_request_is_refused_and_changes_nothing(services, approval):
    first = services.instances.start("approval", principal=CLERK, variables={"amount": 5}, idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused) as refused:
        services.instances.start("approval", principal=CLERK, variables={"amount": 6}, idempotency_key="k1")
    assert refused.value.status == 422 and refused.value.extra["instance_id"] == first.id
    assert instance_count(services) == 1


def test_a_start_that_fails_keeps_no_key(services, approval):
    services.definitions.deploy(linear_process("draft", executable=False), "draft.bpmn", "admin")
    with pytest.raises(NotExecutable):
        services.instances.start("draft", principal=CLERK, idempotency_key="k2")
    with pytest.raises(InvalidInput):  # a bad variable: refused before anything is written
        services.instances.start("approval", principal=CLERK, variables={"9lives": 1}, idempotency_key="k2")
    with services.database.read() as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    started = services.instances.start("approval", principal=CLERK, idempotency_key="k2")  # the key is still free
    assert not started.replayed and instance_count(services) == 1


def test_a_key_lasts_a_day(services, approval, clock):
    first = services.instances.start("approval", principal=CLERK, idempotency_key="daily")
    clock.advance(timedelta(hours=23, minutes=59))
    assert services.instances.start("approval", principal=CLERK, idempotency_key="daily").id == first.id
    clock.advance(timedelta(minutes=2))  # 24 h and a minute after the first start: a new request
    later = services.instances.start("approval", principal=CLERK, idempotency_key="daily")
    assert later.id != first.id and not later.replayed
    with services.database.read() as session:  # the expired key made room for the new one
        assert session.scalars(select(IdempotencyKey.instance_id)).all() == [later.id]


def test_expired_keys_of_every_user_are_pruned(services, approval, clock):
    services.instances.start("approval", principal=CLERK, idempotency_key="old")  # prunes nothing yet
    services.instances.start("approval", principal=MANAGER, idempotency_key="old")
    clock.advance(timedelta(hours=25))
    services.instances.start("approval", principal=CLERK, idempotency_key="new")  # due: expired keys go
    with services.database.read() as session:
        assert session.execute(select(IdempotencyKey.owner, IdempotencyKey.key)).all() == [(CLERK.username, "new")]


@pytest.mark.parametrize("key", ["", "x" * 256, "new\nline", "schlüssel"])
def test_keys_that_cannot_be_header_values_are_refused(services, approval, key):
    with pytest.raises(InvalidInput) as refused:
        services.instances.start("approval", principal=CLERK, idempotency_key=key)
    assert refused.value.extra["errors"][0]["field"] == "Idempotency-Key"
    assert instance_count(services) == 0


def test_twin_requests_at_the_same_moment_start_one_instance(services, approval):
    start = lambda: services.instances.start("approval", principal=CLERK, variables={"amount": 1},  # noqa: E731
                                             idempotency_key="twin")
    for _round in range(3):
        results = race([start, start, start])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len({r.id for r in results}) == 1 and sum(not r.replayed for r in results) <= 1
    assert instance_count(services) == 1


def test_over_rest_a_retry_gets_the_same_instance_with_idempotent_replayed(services, client, auth):
    people = create_people(services)
    assert upload(client, auth, approval_process(), "approval.bpmn").status_code == 201
    headers = {**people["clerk"], "Idempotency-Key": "4f1c2b8e-retry"}
    body = {"key": "approval", "businessKey": "R-9", "variables": {"amount": 3}}
    first = client.post("/api/v1/process-instances", headers=headers, json=body)
    again = client.post("/api/v1/process-instances", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"] and again.headers["Location"] == first.headers["Location"]

    reused = client.post("/api/v1/process-instances", headers=headers, json={**body, "businessKey": "R-10"})
    assert reused.status_code == 422 and reused.mimetype == PROBLEM
    assert reused.json["type"] == "/problems/idempotency-key-reused" and reused.json["instance_id"] == first.json["id"]
    bad = client.post("/api/v1/process-instances", headers={**people["clerk"], "Idempotency-Key": "x" * 300}, json=body)
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "Idempotency-Key"
    assert client.get("/api/v1/process-instances", headers=people["clerk"]).json["total"] == 1
    spec = client.get("/api/openapi.json").get_json()
    parameters = spec["paths"]["/api/v1/process-instances"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)


@pytest.fixture
def messages(services):
    services.definitions.deploy(message_processes(), "messages.bpmn", "admin")


def received(services, instance_id: str) -> int:
    return sum(e["event_type"] == "message-received" for e in services.instances.history(instance_id))


def test_a_message_sent_again_with_its_key_is_delivered_once(services, messages):
    order = services.instances.start("order", principal=CLERK, business_key="O-1")
    send = lambda: services.messages.correlate("Payment received", principal=ADMIN, business_key="O-1",  # noqa: E731
                                               variables={"paid": 5}, idempotency_key="psp-evt-1")
    first, again = send(), send()  # without the key the second would be a 404: nobody waits any more
    assert first.instance_ids == again.instance_ids == [order.id]
    assert not first.replayed and again.replayed and not again.started
    assert received(services, order.id) == 1
    with pytest.raises(IdempotencyKeyReused):
        services.messages.correlate("Payment received", principal=ADMIN, business_key="O-1",
                                    variables={"paid": 6}, idempotency_key="psp-evt-1")


def test_a_message_start_sent_again_with_its_key_starts_one_instance(services, messages):
    send = lambda: services.messages.correlate("Customer inquiry", principal=ADMIN,  # noqa: E731
                                               business_key="Q-1", idempotency_key="mail-42")
    first, again = send(), send()
    assert first.started and again.started and again.replayed and first.instance_ids == again.instance_ids
    assert services.instances.list(key="inquiry").total == 1


def test_a_key_with_all_is_refused_before_anything_happens(services, messages):
    services.instances.start("order", principal=CLERK, business_key="O-1")
    with pytest.raises(InvalidInput) as refused:
        services.messages.correlate("Payment received", principal=ADMIN, all=True, idempotency_key="k")
    assert refused.value.extra["errors"][0]["field"] == "Idempotency-Key"
    assert services.instances.list(key="order", status="waiting").total == 1


def test_twin_messages_with_one_key_reach_the_instance_once(services, messages):
    order = services.instances.start("order", principal=CLERK, business_key="O-9")
    deliver = lambda: services.messages.correlate("Payment received", principal=ADMIN,  # noqa: E731
                                                  business_key="O-9", idempotency_key="twin-message")
    start = lambda: services.messages.correlate("Customer inquiry", principal=ADMIN,  # noqa: E731
                                                business_key="Q-9", idempotency_key="twin-start")
    delivered, started = race([deliver, deliver, deliver]), race([start, start, start])
    assert not [r for r in delivered + started if isinstance(r, Exception)], delivered + started
    assert {tuple(r.instance_ids) for r in delivered} == {(order.id,)} and received(services, order.id) == 1
    assert len({tuple(r.instance_ids) for r in started}) == 1 and services.instances.list(key="inquiry").total == 1


def test_over_rest_a_message_sent_again_with_its_key_is_idempotent_replayed(services, client, auth):
    people = create_people(services)
    assert upload(client, auth, message_processes(), "messages.bpmn").status_code == 201
    headers = {**people["clerk"], "Idempotency-Key": "evt-7"}
    body = {"name": "Customer inquiry", "businessKey": "Q-7"}
    first = client.post("/api/v1/messages", headers=headers, json=body)
    again = client.post("/api/v1/messages", headers=headers, json=body)
    assert first.status_code == again.status_code == 200 and first.json == again.json
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    both = client.post("/api/v1/messages", headers=headers, json={**body, "all": True})
    assert both.status_code == 422 and both.json["errors"][0]["field"] == "Idempotency-Key"
