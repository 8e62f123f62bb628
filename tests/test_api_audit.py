"""The audit API: listing with filters and pages, verify, streamed exports, and auditor-only access
with refusals recorded — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest

from bpmn_server.audit import events as ev
from tests.audit_support import (
    INSTANCE_A,
    INSTANCE_B,
    assert_valid_ocel,
    assert_valid_xes,
    hash_of,
    seed_log,
    tamper,
)

EVENTS = "/api/v1/audit/events"


@pytest.fixture
def people(services):
    """Bearer headers of an auditor and of a clerk (who is no auditor); the log holds the refund cases."""
    seed_log(services.database, services.clock)
    identity = services.identity
    identity.create_user("audrey", groups=["auditor"])
    identity.create_user("clerk", groups=["clerks"])
    return {name: {"Authorization": f"Bearer {identity.create_token(name).token}"} for name in ("audrey", "clerk")}


def _events(client, headers, **query):
    response = client.get(EVENTS, headers=headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_an_auditor_pages_through_every_event_with_the_total(client, people):
    first = _events(client, people["audrey"], limit=5)
    second = _events(client, people["audrey"], limit=5, offset=5)
    # 13 seeded, then 2 user-created and 2 api-token-created events from the fixture itself
    assert first["total"] == second["total"] == 17
    assert [e["sequence"] for e in first["items"] + second["items"]] == list(range(1, 11))
    event = first["items"][3]
    assert (event["event_type"], event["transition"], event["actor"], event["group"]) == (
        ev.TASK_CREATED, "schedule", "system:engine", "managers")
    assert event["timestamp"] == "2026-01-05T09:05:00.000000+00:00"
    assert event["data"] == {"task_id": "task-800"} and len(event["hash"]) == 64
    assert first["nextAfterSequence"] == 5
    keyset = _events(client, people["audrey"], limit=5, afterSequence=first["nextAfterSequence"])
    assert [e["sequence"] for e in keyset["items"]] == list(range(6, 11))
    last = _events(client, people["audrey"], limit=10, afterSequence=10)
    assert [e["sequence"] for e in last["items"]] == list(range(11, 18)) and last["nextAfterSequence"] is None


def test_events_filter_by_instance_user_process_type_and_time(client, people):
    audrey = people["audrey"]
    history = _events(client, audrey, instanceId=INSTANCE_A)
    assert history["total"] == 6 and {e["instance_id"] for e in history["items"]} == {INSTANCE_A}
    assert _events(client, audrey, user="mia")["total"] == 3
    assert _events(client, audrey, actor="system:timer")["total"] == 2
    assert _events(client, audrey, process="refund", eventType=ev.TASK_CANCELLED)["items"][0]["instance_id"] == INSTANCE_B
    window = _events(client, audrey, since="2026-01-05T09:05:00Z", until="2026-01-05T09:15:00+00:00")
    assert [e["sequence"] for e in window["items"]] == [2, 3, 4, 5]
    naive = _events(client, audrey, since="2026-01-05T09:05:00", until="2026-01-05T09:15:00")
    assert naive["total"] == 4  # a time without an offset is UTC

    bad = client.get(EVENTS, headers=audrey, query_string={"eventType": "task-exploded", "limit": 0})
    assert bad.status_code == 422 and bad.mimetype == "application/problem+json"
    assert {e["field"] for e in bad.get_json()["errors"]} == {"eventType", "limit"}
    backwards = client.get(EVENTS, headers=audrey, query_string={"since": "2026-01-06", "until": "2026-01-05"})
    assert backwards.status_code == 422 and "since must be before until" in backwards.get_json()["detail"]


def test_verify_reports_intact_then_the_first_altered_event(client, people, services):
    intact = client.get("/api/v1/audit/verify", headers=people["audrey"]).get_json()
    assert intact["ok"] is True and intact["events_checked"] == 17
    assert intact["anchor"] == f"17:{hash_of(services.database, 17)}"

    tamper(services.database, "UPDATE audit_event SET data = '{}' WHERE sequence = 3")
    broken = client.get("/api/v1/audit/verify", headers=people["audrey"]).get_json()
    assert (broken["ok"], broken["problem"], broken["first_bad_sequence"]) == (False, "altered", 3)


def test_verify_checks_anchors_and_refuses_malformed_ones(client, people, services):
    database = services.database
    anchor = f"17:{hash_of(database, 17)}"
    tamper(database, "DELETE FROM audit_event WHERE sequence > 15",
           "UPDATE audit_head SET sequence = 15, hash = :h", h=hash_of(database, 15))
    assert client.get("/api/v1/audit/verify", headers=people["audrey"]).get_json()["ok"] is True
    cut = client.get("/api/v1/audit/verify", headers=people["audrey"],
                     query_string=[("anchor", anchor), ("anchor", f"2:{hash_of(database, 2)}")]).get_json()
    assert (cut["ok"], cut["problem"], cut["first_bad_sequence"]) == (False, "truncated", 16)
    bad = client.get("/api/v1/audit/verify", headers=people["audrey"], query_string={"anchor": "17:xyz"})
    assert bad.status_code == 422 and "SEQ:HASH" in bad.get_json()["detail"]


@pytest.mark.parametrize(
    ("format_", "media_type", "file_name"),
    [("xes", "application/xml", "audit-refund.xes"),
     ("ocel", "application/json", "audit-refund.ocel.json"),
     ("csv", "text/csv", "audit-refund.csv")],
)
def test_exports_stream_as_attachments_that_validate(client, people, format_, media_type, file_name):
    response = client.get("/api/v1/audit/export", headers=people["audrey"],
                          query_string={"format": format_, "process": "refund"})
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == media_type
    assert response.headers["Content-Disposition"] == f'attachment; filename="{file_name}"'
    body = response.get_data()
    if format_ == "xes":
        assert {t.find("string").get("value") for t in assert_valid_xes(body).findall("trace")} == {
            INSTANCE_A, INSTANCE_B}
    elif format_ == "ocel":
        assert len(assert_valid_ocel(body)["events"]) == 12  # the refund process' events only
    else:
        assert response.mimetype_params["charset"] == "utf-8"
        assert len(list(csv.DictReader(io.StringIO(body.decode("utf-8"))))) == 12


def test_export_of_a_time_window_names_its_file_after_it(client, people):
    response = client.get("/api/v1/audit/export", headers=people["audrey"],
                          query_string={"format": "csv", "since": "2026-01-05T09:05:00Z"})
    assert response.headers["Content-Disposition"] == 'attachment; filename="audit-20260105T0905Z.csv"'
    assert client.get("/api/v1/audit/export", headers=people["audrey"],
                      query_string={"format": "pdf"}).status_code == 422


def test_an_administrator_may_read_the_log(client, people, auth):
    assert client.get(EVENTS, headers=auth).status_code == 200


def test_anyone_else_gets_403_and_the_refusal_is_recorded(client, people):
    for path in (EVENTS, "/api/v1/audit/verify", "/api/v1/audit/export?format=xes"):
        refused = client.get(path, headers=people["clerk"])
        assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
        assert refused.get_json()["type"] == "/problems/forbidden" and "auditor" in refused.get_json()["detail"]
    assert client.get(EVENTS).status_code == 401  # no token: nobody to record

    denied = _events(client, people["audrey"], eventType=ev.PERMISSION_DENIED)
    assert [(e["actor"], e["data"]["action"]) for e in denied["items"]] == [
        ("clerk", "read the audit log"), ("clerk", "verify the audit log"), ("clerk", "export the audit log"),
    ]
    assert client.get("/api/v1/audit/verify", headers=people["audrey"]).get_json()["ok"] is True


def test_the_audit_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert {"/api/v1/audit/events", "/api/v1/audit/verify", "/api/v1/audit/export"} <= set(paths)
    parameters = {p["name"] for p in paths["/api/v1/audit/events"]["get"]["parameters"]}
    assert {"instanceId", "user", "process", "eventType", "since", "until", "offset", "limit"} <= parameters


def test_every_refused_request_is_audited_once(client, services, auth, backend):
    """An administrator-only endpoint refuses a plain user: one permission-denied event, with the
    request as the action; a refusal the runtime already recorded is not recorded twice."""
    from bpmn_server.identity.principal import Principal

    services.identity.create_user("pat", groups=["clerks"])
    pat = {"Authorization": f"Bearer {services.identity.create_token('pat').token}"}
    assert client.get("/api/v1/users", headers=pat).status_code == 403
    assert client.get("/api/v1/audit/verify", headers=pat).status_code == 403
    page = services.audit.list_events(Principal("root", is_admin=True), event_type="permission-denied")
    actions = sorted((e.actor, e.data["action"]) for e in page.items)
    assert len(actions) == 2, actions
    assert actions[0] == ("pat", "GET /api/v1/users"), actions
