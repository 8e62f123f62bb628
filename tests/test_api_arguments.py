"""How the API reads arguments (api/arguments.py): unknown query parameters are a 422, not silently
ignored; a name may be sent as requests spell it (camelCase) or as responses do (snake_case), not both."""

from __future__ import annotations

import pytest

from .runtime_helpers import approval_process, create_people, upload

PROBLEM = "application/problem+json"


@pytest.fixture
def people(services, client, auth):
    headers = create_people(services)
    assert upload(client, auth, approval_process(), "approval.bpmn").status_code == 201
    return headers


def start(client, headers, **body):
    response = client.post("/api/v1/process-instances", headers=headers, json={"key": "approval", **body})
    assert response.status_code == 201, response.json
    return response.json


def test_a_misspelt_filter_is_a_422_not_every_row(client, people):
    start(client, people["clerk"], businessKey="B-1")
    start(client, people["clerk"], businessKey="B-2")
    for url, name in (("/api/v1/process-instances?businessKy=B-1", "businessKy"),
                      ("/api/v1/tasks?instanceID=x", "instanceID"),
                      ("/api/v1/process-definitions?latest=true", "latest")):
        refused = client.get(url, headers=people["clerk"])
        assert refused.status_code == 422 and refused.mimetype == PROBLEM, url
        assert [e["field"] for e in refused.json["errors"]] == [name], refused.json


def test_filters_and_members_may_be_spelt_as_responses_spell_them(client, people):
    first = start(client, people["clerk"], business_key="B-1", variables={"amount": 3})
    assert first["business_key"] == "B-1"
    start(client, people["clerk"], businessKey="B-2")
    for query in ({"business_key": "B-1"}, {"businessKey": "B-1"}):
        listed = client.get("/api/v1/process-instances", headers=people["clerk"], query_string=query).json
        assert [i["id"] for i in listed["items"]] == [first["id"]], query
    tasks = client.get("/api/v1/tasks", headers=people["clerk"], query_string={"instance_id": first["id"]}).json
    assert [t["instance_id"] for t in tasks["items"]] == [first["id"]]


def test_both_spellings_of_one_name_are_refused(client, people):
    both = client.post("/api/v1/process-instances", headers=people["clerk"],
                       json={"key": "approval", "businessKey": "B-1", "business_key": "B-2"})
    assert both.status_code == 422 and both.mimetype == PROBLEM
    assert "give either business_key or businessKey" in both.json["detail"]
    query = client.get("/api/v1/tasks?instance_id=a&instanceId=b", headers=people["clerk"])
    assert query.status_code == 422 and "give either instance_id or instanceId" in query.json["detail"]
    assert client.get("/api/v1/process-instances", headers=people["clerk"]).json["total"] == 0


@pytest.mark.parametrize("body", ["business_key", ["business_key"], 7, None])
def test_a_body_that_is_not_an_object_is_a_422(client, people, body):
    refused = client.post("/api/v1/process-instances", headers=people["clerk"], json=body)
    assert refused.status_code == 422 and refused.mimetype == PROBLEM, refused.get_data(as_text=True)
