"""REST: start and follow instances, variables with If-Match, terminate/suspend/resume/retry,
messages and signals, problem+json for unknown ids and processes that cannot start."""

from __future__ import annotations

import pytest

from .models import linear_process
from .runtime_helpers import approval_process, create_people, message_processes, script_process, upload

PROBLEM = "application/problem+json"


@pytest.fixture
def people(services, client, auth):
    headers = create_people(services)
    for source, name in ((approval_process(), "approval.bpmn"), (script_process("total = price * quantity"),
                         "scripted.bpmn"), (message_processes(), "messages.bpmn"),
                         (linear_process("draft", executable=False), "draft.bpmn")):
        assert upload(client, auth, source, name).status_code == 201
    return headers


def start(client, headers, **body):
    return client.post("/api/v1/process-instances", headers=headers, json=body)


def test_start_get_list_and_variables_with_if_match(client, people):
    created = start(client, people["clerk"], key="approval", businessKey="B-1", variables={"customer": "Ann"})
    assert created.status_code == 201, created.json
    body = created.json
    assert created.headers["Location"] == f"/api/v1/process-instances/{body['id']}"
    assert body["status"] == "running" and body["definition_version"] == 1 and body["started_by"] == "clerk"
    by_version = start(client, people["clerk"], key="approval", version=1)
    by_id = start(client, people["clerk"], definitionId=body["definition_id"])
    assert by_version.status_code == 201 and by_id.status_code == 201

    url = f"/api/v1/process-instances/{body['id']}"
    one = client.get(url, headers=people["clerk"])
    assert one.status_code == 200 and one.json["variables"] == {"customer": "Ann"}
    assert one.headers["ETag"] == f'"{one.json["row_version"]}"'
    listing = client.get("/api/v1/process-instances", headers=people["clerk"],
                         query_string={"businessKey": "B-1", "status": "running"}).json
    assert listing["total"] == 1 and listing["items"][0]["id"] == body["id"]
    assert client.get("/api/v1/process-instances", headers=people["clerk"],
                      query_string={"key": "approval", "limit": 2}).json["total"] == 3
    assert client.get("/api/v1/process-instances", headers=people["clerk"],
                      query_string={"status": "sleeping"}).status_code == 422

    variables = client.get(f"{url}/variables", headers=people["clerk"])
    etag = variables.headers["ETag"]
    patched = client.patch(f"{url}/variables", headers={**people["clerk"], "If-Match": etag},
                           json={"set": {"priority": "high"}, "remove": ["customer"]})
    assert patched.status_code == 200 and patched.json["variables"] == {"priority": "high"}
    stale = client.patch(f"{url}/variables", headers={**people["clerk"], "If-Match": etag}, json={"set": {"x": 1}})
    assert stale.status_code == 412 and stale.mimetype == PROBLEM
    not_mine = client.patch(f"{url}/variables", headers=people["manager"], json={"set": {"x": 1}})
    assert not_mine.status_code == 403
    history = client.get(f"{url}/history", headers=people["clerk"]).json["items"]
    change = [e for e in history if e["event_type"] == "variables-changed"][0]
    assert change["data"] == {"set": {"priority": "high"}, "removed": ["customer"]} and change["actor"] == "clerk"


def test_unknown_ids_and_unstartable_processes_are_problems(client, people):
    for method, url in (("get", "/api/v1/process-instances/nope"), ("get", "/api/v1/process-instances/nope/variables"),
                        ("post", "/api/v1/process-instances/nope/terminate"),
                        ("post", "/api/v1/process-instances/nope/retry")):
        response = getattr(client, method)(url, headers=people["clerk"], json={} if method == "post" else None)
        assert response.status_code == 404 and response.mimetype == PROBLEM, url
    missing = start(client, people["clerk"], key="nope")
    assert missing.status_code == 404 and missing.json["type"] == "/problems/not-found"
    draft = start(client, people["clerk"], key="draft")
    assert draft.status_code == 422 and draft.json["type"] == "/problems/not-executable"
    bad = start(client, people["clerk"], key="approval", variables={"9lives": 1})
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "9lives"
    assert start(client, people["clerk"]).status_code == 422


def test_suspend_resume_terminate_over_rest(client, people):
    instance = start(client, people["clerk"], key="approval").json
    url = f"/api/v1/process-instances/{instance['id']}"
    suspended = client.post(f"{url}/suspend", headers=people["clerk"])
    assert suspended.status_code == 200 and suspended.json["status"] == "suspended"
    task = client.get("/api/v1/tasks", headers=people["clerk"]).json["items"][0]
    blocked = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=people["clerk"], json={"data": {"amount": 1}})
    assert blocked.status_code == 409 and blocked.mimetype == PROBLEM
    assert client.post(f"{url}/resume", headers=people["clerk"]).json["status"] == "running"
    assert client.post(f"{url}/terminate", headers=people["manager"], json={}).status_code == 403
    ended = client.post(f"{url}/terminate", headers=people["clerk"], json={"reason": "duplicate"})
    assert ended.status_code == 200 and ended.json["status"] == "terminated"
    assert client.get("/api/v1/tasks", headers=people["clerk"]).json["total"] == 0
    assert client.post(f"{url}/suspend", headers=people["clerk"]).status_code == 409


def test_failed_instance_shows_incident_and_retries_over_rest(client, people):
    failed = start(client, people["clerk"], key="scripted", variables={"price": 5}).json
    assert failed["status"] == "failed"
    url = f"/api/v1/process-instances/{failed['id']}"
    seen = client.get(url, headers=people["clerk"]).json
    [incident] = seen["incidents"]
    assert incident["element_id"] == "compute" and incident["line"] == 1 and "quantity" in incident["message"]
    retried = client.post(f"{url}/retry", headers=people["clerk"], json={"variables": {"quantity": 2}})
    assert retried.status_code == 200 and retried.json["status"] == "running"
    assert client.get(f"{url}/variables", headers=people["clerk"]).json["variables"]["total"] == 10


def test_messages_and_signals_over_rest(client, people):
    order = start(client, people["clerk"], key="order", businessKey="O-1").json
    assert order["status"] == "waiting"
    delivered = client.post("/api/v1/messages", headers=people["clerk"],
                            json={"name": "Payment received", "businessKey": "O-1", "variables": {"paid": 5}})
    assert delivered.status_code == 200 and delivered.json["instance_ids"] == [order["id"]]
    unknown = client.post("/api/v1/messages", headers=people["clerk"], json={"name": "Nobody listens"})
    assert unknown.status_code == 404 and unknown.mimetype == PROBLEM and "Nobody listens" in unknown.json["detail"]
    start(client, people["clerk"], key="order", businessKey="O-2")
    start(client, people["clerk"], key="order", businessKey="O-3")
    ambiguous = client.post("/api/v1/messages", headers=people["clerk"], json={"name": "Payment received"})
    assert ambiguous.status_code == 409
    started = client.post("/api/v1/messages", headers=people["clerk"], json={"name": "Customer inquiry"})
    assert started.status_code == 200 and started.json["started"] is True
    alarms = [start(client, people["clerk"], key="alarm").json["id"] for _ in range(2)]
    signalled = client.post("/api/v1/signals", headers=people["clerk"], json={"name": "Storm warning"})
    assert signalled.status_code == 200 and sorted(signalled.json["instance_ids"]) == sorted(alarms)
    assert client.post("/api/v1/messages", headers=people["clerk"], json={}).status_code == 422


def test_who_may_read_an_instance(services, client, people, auth):
    """Its starter, its process's owner, whoever has, had or may take one of its tasks, auditors and
    administrators; anyone else gets 403 problem+json on every read and does not see it in lists."""
    services.definitions.deploy(approval_process("owned"), "owned.bpmn", "lead")  # lead owns "owned"
    services.identity.create_user("auditor", groups=["auditor"])
    people["auditor"] = {"Authorization": f"Bearer {services.identity.create_token('auditor').token}"}
    case = start(client, people["outsider"], key="owned", businessKey="R-1", variables={"customer": "Ann"}).json
    url = f"/api/v1/process-instances/{case['id']}"
    reads = (url, f"{url}/variables", f"{url}/history")

    def may_read(name: str) -> bool:
        answers = {client.get(read, headers=auth if name == "admin" else people[name]).status_code
                   for read in reads}
        listed = client.get("/api/v1/process-instances", headers=auth if name == "admin" else people[name],
                            query_string={"businessKey": "R-1"}).json
        assert answers in ({200}, {403}), (name, answers)
        assert (listed["total"] == 1) == (answers == {200}), (name, listed)
        return answers == {200}

    # starter, owner, auditor, admin, and the clerks, candidates of the open review
    assert {name for name in (*people, "admin") if may_read(name)} == {"outsider", "lead", "auditor", "admin",
                                                                       "clerk"}
    refused = client.get(url, headers=people["manager"])
    assert refused.mimetype == PROBLEM and "may not see process instance" in refused.json["detail"]

    review = client.get("/api/v1/tasks", headers=people["clerk"], query_string={"instanceId": case["id"]}).json
    done = client.post(f"/api/v1/tasks/{review['items'][0]['id']}/complete", headers=people["clerk"],
                       json={"data": {"amount": 700}})
    assert done.status_code == 200, done.json
    assert may_read("manager")  # a candidate of the approval now
    assert may_read("clerk")  # completed the review: still involved
    assert not may_read("accountant")
    assert client.patch(f"{url}/variables", headers=people["accountant"], json={"set": {"x": 1}}).status_code == 403
