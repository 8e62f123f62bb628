"""REST: deploy (multipart and raw XML), validate, list, fetch, download, retire; problem+json errors."""

from __future__ import annotations

import io

import pytest

from .models import definitions, linear_process

PROBLEM = "application/problem+json"


def deploy(client, auth, source: bytes, name: str = "simple.bpmn"):
    return client.post("/api/v1/deployments", headers=auth,
                       data={"file": (io.BytesIO(source), name)}, content_type="multipart/form-data")


def test_multipart_deploy_then_download_byte_identical(client, auth):
    source = linear_process()
    response = deploy(client, auth, source)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["created"] is True
    assert [(d["key"], d["version"]) for d in body["definitions"]] == [("simple", 1)]
    xml = client.get("/api/v1/process-definitions/simple/versions/1/xml", headers=auth)
    assert xml.status_code == 200
    assert xml.data == source
    assert xml.mimetype == "application/xml"
    cached = client.get("/api/v1/process-definitions/simple/versions/1/xml",
                        headers={**auth, "If-None-Match": xml.headers["ETag"]})
    assert cached.status_code == 304


def test_raw_xml_deploy_and_redeploy_is_deduplicated(client, auth):
    headers = {**auth, "Content-Type": "application/xml"}
    first = client.post("/api/v1/deployments?name=raw.bpmn", data=linear_process(), headers=headers)
    assert first.status_code == 201
    again = client.post("/api/v1/deployments?name=raw.bpmn", data=linear_process(), headers=headers)
    assert again.status_code == 200
    assert again.json["created"] is False
    assert again.json["id"] == first.json["id"]


def test_list_filter_latest_and_paginate(client, auth):
    deploy(client, auth, linear_process(label="one"))
    deploy(client, auth, linear_process(label="two"))
    deploy(client, auth, linear_process("other", label="x"), "other.bpmn")
    everything = client.get("/api/v1/process-definitions", headers=auth).json
    assert everything["total"] == 3
    latest = client.get("/api/v1/process-definitions?latestOnly=true", headers=auth).json
    assert sorted((d["key"], d["version"]) for d in latest["items"]) == [("other", 1), ("simple", 2)]
    page = client.get("/api/v1/process-definitions?key=simple&limit=1&offset=1", headers=auth).json
    assert page["total"] == 2 and [d["version"] for d in page["items"]] == [2]
    one = client.get("/api/v1/process-definitions/simple", headers=auth).json
    assert one["version"] == 2 and one["links"]["xml"].endswith("/versions/2/xml")


def test_validate_without_deploying(client, auth):
    broken = definitions("""
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ghost"/>
  </bpmn:process>""")
    response = client.post("/api/v1/validations", data=broken, headers={**auth, "Content-Type": "application/xml"})
    assert response.status_code == 200
    assert response.json["valid"] is False
    finding = next(f for f in response.json["findings"] if f["rule"] == "dangling-reference")
    assert finding["element_id"] == "f1" and finding["line"] > 0
    assert client.get("/api/v1/process-definitions", headers=auth).json["total"] == 0


@pytest.mark.parametrize(
    ("source", "status", "slug"),
    [
        (b"<bpmn:definitions xmlns:bpmn='x'><unclosed>", 422, "invalid-document"),
        (b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<d>&xxe;</d>', 422,
         "hostile-document"),
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
         b"<lolz>&lol2;</lolz>", 422, "hostile-document"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", 422, "invalid-document"),
    ],
)
def test_bad_xml_is_a_problem_with_position_and_nothing_is_stored(client, auth, source, status, slug):
    response = client.post("/api/v1/deployments", data=source, headers={**auth, "Content-Type": "application/xml"})
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    assert response.json["type"] == f"/problems/{slug}"
    assert response.json["detail"]
    assert response.json.get("line")
    assert client.get("/api/v1/process-definitions", headers=auth).json["total"] == 0


def test_missing_file_is_422(client, auth):
    response = client.post("/api/v1/deployments", headers=auth, data={}, content_type="multipart/form-data")
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.json["errors"] == [{"field": "file", "message": "missing"}]


def test_oversize_upload_is_413(client, auth, app):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/v1/deployments", data=b"<x>" + b" " * 4096 + b"</x>",
                           headers={**auth, "Content-Type": "application/xml"})
    assert response.status_code == 413 and response.mimetype == PROBLEM


def test_unknown_definition_is_404_problem(client, auth):
    response = client.get("/api/v1/process-definitions/nope/versions/3", headers=auth)
    assert response.status_code == 404 and response.mimetype == PROBLEM
    assert response.json["type"] == "/problems/not-found"


def test_bad_query_argument_is_422_listing_the_field(client, auth):
    response = client.get("/api/v1/process-definitions?limit=abc", headers=auth)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.json["errors"][0]["field"] == "limit"


def test_retire_with_if_match(client, auth):
    deploy(client, auth, linear_process())
    wrong = client.post("/api/v1/process-definitions/simple/versions/1/retire",
                        headers={**auth, "If-Match": '"nope"'})
    assert wrong.status_code == 412
    etag = client.get("/api/v1/process-definitions/simple/versions/1/xml", headers=auth).headers["ETag"]
    ok = client.post("/api/v1/process-definitions/simple/versions/1/retire", headers={**auth, "If-Match": etag})
    assert ok.status_code == 200 and ok.json["retired_at"]
    assert client.get("/api/v1/process-definitions/simple", headers=auth).status_code == 404


def test_requests_without_valid_token_are_401(client, services, clock):
    assert client.get("/api/v1/process-definitions").status_code == 401
    bad = client.get("/api/v1/process-definitions", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.mimetype == PROBLEM
    assert "WWW-Authenticate" in bad.headers
    services.identity.bootstrap_admin()
    issued = services.identity.create_token("admin", "short", ttl_days=1)
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    clock.advance(2 * 86400)
    expired = client.get("/api/v1/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json["detail"]


def test_openapi_document_is_served(client):
    spec = client.get("/api/openapi.json")
    assert spec.status_code == 200
    paths = spec.json["paths"]
    assert "/api/v1/deployments" in paths
    assert "/api/v1/process-definitions/{key}/versions/{version}/xml" in paths
    assert spec.json["openapi"].startswith("3.1")


def test_health_and_ready(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}
