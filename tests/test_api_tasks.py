"""REST: the refund example end to end as its people do it, task lists per person, form errors,
claim rules, comments, ETags; problem+json for unknown tasks."""

from __future__ import annotations

import pytest

from .runtime_helpers import REFUND, REVIEW, create_people, upload

PROBLEM = "application/problem+json"


@pytest.fixture
def people(services, client, auth):
    headers = create_people(services)
    response = upload(client, auth, REFUND.read_bytes(), "refund-request.bpmn")
    assert response.status_code == 201, response.json
    return headers


def start_refund(client, headers, business_key="A-1001"):
    response = client.post("/api/v1/process-instances", headers=headers,
                           json={"key": "refund_request", "businessKey": business_key})
    assert response.status_code == 201, response.json
    return response.json


def only_task(client, headers, **query):
    listing = client.get("/api/v1/tasks", headers=headers, query_string=query)
    assert listing.status_code == 200, listing.json
    assert listing.json["total"] == 1, listing.json
    return listing.json["items"][0]


def test_refund_over_500_runs_end_to_end_through_the_api(client, people):
    instance = start_refund(client, people["clerk"])
    assert instance["status"] == "running"
    assert [a["element_id"] for a in instance["activities"]] == ["review_refund_request"]

    # the review is in the clerks' list only
    assert client.get("/api/v1/tasks", headers=people["manager"]).json["total"] == 0
    review = only_task(client, people["clerk"], scope="claimable")
    assert review["name"] == "Review refund request"
    assert review["candidate_groups"] == ["clerks"]
    assert review["sop_url"] == "/sop/refund_request/v/1#step-review_refund_request"
    fields = {f["id"]: f for f in review["form"]["fields"]}
    assert fields["amount"]["type"] == "long" and fields["amount"]["required"] is True
    assert [v["id"] for v in fields["reason"]["values"]] == ["damaged", "late", "wrong_item", "other"]
    assert fields["receipt_checked"]["default"] == "false"

    claimed = client.post(f"/api/v1/tasks/{review['id']}/claim", headers=people["clerk"])
    assert claimed.status_code == 200 and claimed.json["assignee"] == "clerk"
    assert only_task(client, people["clerk"], scope="mine")["id"] == review["id"]

    bad = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=people["clerk"],
                      json={"data": {"customer_name": "Ann", "amount": "lots", "reason": "bored"}})
    assert bad.status_code == 422 and bad.mimetype == PROBLEM
    assert {e["field"] for e in bad.json["errors"]} == {"order_id", "amount", "reason"}
    assert client.get(f"/api/v1/tasks/{review['id']}", headers=people["clerk"]).json["status"] == "claimed"

    done = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=people["clerk"], json={"data": REVIEW})
    assert done.status_code == 200, done.json
    assert done.json["status"] == "completed" and done.json["completed_by"] == "clerk"
    # sent again (its first answer lost): 409, saying who completed it and when, and nothing changes
    again = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=people["clerk"], json={"data": REVIEW})
    assert again.status_code == 409 and again.mimetype == PROBLEM
    assert again.json["completed_by"] == "clerk" and again.json["completed_at"] == done.json["completed_at"]
    assert "already completed (by clerk at " in again.json["detail"]

    # over 500: the manager's approval appears, the accountant has nothing yet
    assert client.get("/api/v1/tasks", headers=people["accountant"]).json["total"] == 0
    approval = only_task(client, people["manager"])
    assert approval["element_id"] == "approve_refund" and approval["business_key"] == "A-1001"
    followed = client.get(f"/api/v1/process-instances/{instance['id']}", headers=people["clerk"]).json
    assert {a["element_id"] for a in followed["activities"]} == {"approve_refund", "daily_reminder",
                                                                 "approval_overdue"}
    assert followed["variables"]["amount"] == 700
    assert client.post(f"/api/v1/tasks/{approval['id']}/complete", headers=people["manager"],
                       json={"data": {"approved": "true"}}).status_code == 200

    payment = only_task(client, people["accountant"])
    assert payment["element_id"] == "pay_refund"
    paid = client.post(f"/api/v1/tasks/{payment['id']}/complete", headers=people["accountant"],
                       json={"data": {"payment_reference": "PSP-42", "paid_on": "2026-01-06"}})
    assert paid.status_code == 200

    final = client.get(f"/api/v1/process-instances/{instance['id']}", headers=people["clerk"]).json
    assert final["status"] == "completed" and final["ended_at"] is not None
    assert final["variables"]["approved"] is True and final["variables"]["payment_reference"] == "PSP-42"
    history = client.get(f"/api/v1/process-instances/{instance['id']}/history", headers=people["clerk"]).json
    kinds = [(e["event_type"], e["element_id"]) for e in history["items"]]
    assert kinds[0] == ("instance-started", None) and kinds[-1] == ("instance-completed", None)
    assert ("task-completed", "approve_refund") in kinds
    assert [e["actor"] for e in history["items"] if e["event_type"] == "task-completed"] == \
        ["clerk", "manager", "accountant"]


def test_refund_up_to_500_goes_straight_to_payment(client, people):
    start_refund(client, people["clerk"])
    review = only_task(client, people["clerk"])
    response = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=people["clerk"],
                           json={"data": {**REVIEW, "amount": 500}})
    assert response.status_code == 200, response.json
    assert client.get("/api/v1/tasks", headers=people["manager"]).json["total"] == 0
    assert only_task(client, people["accountant"])["element_id"] == "pay_refund"


def test_non_candidate_cannot_claim_or_see_and_claimed_task_conflicts(client, people):
    start_refund(client, people["clerk"])
    review = only_task(client, people["clerk"])
    denied = client.post(f"/api/v1/tasks/{review['id']}/claim", headers=people["outsider"])
    assert denied.status_code == 403 and denied.mimetype == PROBLEM
    assert client.get(f"/api/v1/tasks/{review['id']}", headers=people["outsider"]).status_code == 403
    assert client.post(f"/api/v1/tasks/{review['id']}/claim", headers=people["clerk"]).status_code == 200
    # another clerk comes too late
    client.application.extensions["bpmn_server"].identity.add_to_group("lead", "clerks")
    late = client.post(f"/api/v1/tasks/{review['id']}/claim", headers=people["lead"])
    assert late.status_code == 409 and "already claimed by clerk" in late.json["detail"]
    # and cannot complete it either
    stolen = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=people["lead"], json={"data": REVIEW})
    assert stolen.status_code == 403
    # the refusals are in the instance's history, with who tried what
    history = client.get(f"/api/v1/process-instances/{review['instance_id']}/history", headers=people["clerk"])
    denied = [(e["actor"], e["data"]["action"]) for e in history.json["items"] if e["event_type"] == "permission-denied"]
    assert denied == [("outsider", "task.claim"), ("lead", "task.complete")]


def test_unclaim_assign_and_delegate(client, people, auth):
    start_refund(client, people["clerk"])
    review = only_task(client, people["clerk"])
    url = f"/api/v1/tasks/{review['id']}"
    assert client.post(f"{url}/claim", headers=people["clerk"]).status_code == 200
    back = client.post(f"{url}/unclaim", headers=people["clerk"])
    assert back.status_code == 200 and back.json["assignee"] is None and back.json["status"] == "open"
    # an administrator assigns; the assignee delegates to a colleague
    assigned = client.post(f"{url}/assign", headers=auth, json={"assignee": "clerk"})
    assert assigned.status_code == 200 and assigned.json["assignee"] == "clerk"
    assert client.post(f"{url}/assign", headers=people["outsider"], json={"assignee": "outsider"}).status_code == 403
    delegated = client.post(f"{url}/assign", headers=people["clerk"], json={"assignee": "lead"})
    assert delegated.status_code == 200 and delegated.json["assignee"] == "lead"
    assert only_task(client, people["lead"], scope="mine")["id"] == review["id"]
    unknown = client.post(f"{url}/assign", headers=auth, json={"assignee": "nobody"})
    assert unknown.status_code == 422 and unknown.json["errors"][0]["field"] == "assignee"
    history = client.get(f"/api/v1/process-instances/{review['instance_id']}/history", headers=auth).json["items"]
    transitions = [(e["event_type"], e["transition"]) for e in history if e["event_type"].startswith("task-")]
    assert transitions == [("task-created", "schedule"), ("task-claimed", "start"), ("task-unclaimed", "reassign"),
                           ("task-assigned", "assign"), ("task-delegated", "reassign")]


def test_comments_filters_sorting_and_etag(client, people, auth):
    first = start_refund(client, people["clerk"], "A-1")
    start_refund(client, people["clerk"], "A-2")
    listing = client.get("/api/v1/tasks", headers=people["clerk"], query_string={"limit": 1}).json
    assert listing["total"] == 2 and len(listing["items"]) == 1
    assert client.get("/api/v1/tasks", headers=people["clerk"],
                      query_string={"processKey": "other"}).json["total"] == 0
    assert client.get("/api/v1/tasks", headers=people["clerk"],
                      query_string={"name": "review", "minPriority": 50}).json["total"] == 2
    assert client.get("/api/v1/tasks", headers=people["clerk"],
                      query_string={"instanceId": first["id"]}).json["total"] == 1
    assert client.get("/api/v1/tasks", headers=people["clerk"], query_string={"sort": "bogus"}).status_code == 422
    assert client.get("/api/v1/tasks", headers=people["clerk"], query_string={"scope": "all"}).status_code == 403
    assert client.get("/api/v1/tasks", headers=auth, query_string={"scope": "all"}).json["total"] == 2

    task = only_task(client, people["clerk"], instanceId=first["id"])
    posted = client.post(f"/api/v1/tasks/{task['id']}/comments", headers=people["clerk"],
                         json={"text": "Customer called again"})
    assert posted.status_code == 201 and posted.json["author"] == "clerk"
    comments = client.get(f"/api/v1/tasks/{task['id']}/comments", headers=people["clerk"]).json["items"]
    assert [c["text"] for c in comments] == ["Customer called again"]

    fetched = client.get(f"/api/v1/tasks/{task['id']}", headers=people["clerk"])
    etag = fetched.headers["ETag"]
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers={**people["clerk"], "If-Match": '"99"'}
                       ).status_code == 412
    assert client.post(f"/api/v1/tasks/{task['id']}/claim", headers={**people["clerk"], "If-Match": etag}
                       ).status_code == 200


def test_unknown_task_is_a_404_problem(client, people):
    for method, url in (("get", "/api/v1/tasks/nope"), ("post", "/api/v1/tasks/nope/claim"),
                        ("post", "/api/v1/tasks/nope/complete")):
        response = getattr(client, method)(url, headers=people["clerk"], json={} if method == "post" else None)
        assert response.status_code == 404, url
        assert response.mimetype == PROBLEM and response.json["type"] == "/problems/not-found"


def test_openapi_documents_the_task_and_instance_endpoints(client):
    spec = client.get("/api/openapi.json").json
    for path in ("/api/v1/process-instances", "/api/v1/process-instances/{instance_id}/variables",
                 "/api/v1/tasks", "/api/v1/tasks/{task_id}/complete", "/api/v1/messages", "/api/v1/signals"):
        assert path in spec["paths"], path
    assert "TaskSchema" in str(spec["components"]["schemas"].keys()) or "Task" in spec["components"]["schemas"]


def test_two_people_completing_at_once_over_http_one_wins(app, client, people):
    import threading

    start_refund(client, people["clerk"])
    review = only_task(client, people["clerk"])
    url = f"/api/v1/tasks/{review['id']}/complete"
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def complete(amount: int) -> None:
        own_client = app.test_client()
        barrier.wait()
        statuses.append(own_client.post(url, headers=people["clerk"],
                                        json={"data": {**REVIEW, "amount": amount}}).status_code)

    threads = [threading.Thread(target=complete, args=(amount,)) for amount in (100, 900)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 409]
    # exactly one path was taken: either payment (100) or approval (900), never both
    waiting = client.get("/api/v1/tasks", headers=people["manager"]).json["total"] + \
        client.get("/api/v1/tasks", headers=people["accountant"]).json["total"]
    assert waiting == 1
