"""The SOP pages (/sop/<key>, /sop/<key>/v/<n>) and the API's HTML SOP, from stored deployments."""

from __future__ import annotations

from pathlib import Path

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def deploy(services, name: str = "refund-request.bpmn", source: bytes | None = None):
    data = source if source is not None else (DIAGRAMS / name).read_bytes()
    return services.definitions.deploy(data, name, "admin")


def test_latest_sop_is_served_after_deploying(client, services):
    deploy(services)
    response = client.get("/sop/refund_request")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "<h1>Refund request</h1>" in text
    assert ">Published<" in text and "<dd>1</dd>" in text
    assert 'id="step-approve_refund"' in text and "<svg" in text
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]  # no script may run


def test_each_version_keeps_its_own_sop(client, services):
    deploy(services)
    original = (DIAGRAMS / "refund-request.bpmn").read_text(encoding="utf-8")
    changed = original.replace('name="Pay refund"', 'name="Transfer the money"')
    deploy(services, source=changed.encode("utf-8"))
    first = client.get("/sop/refund_request/v/1").get_data(as_text=True)
    second = client.get("/sop/refund_request/v/2").get_data(as_text=True)
    latest = client.get("/sop/refund_request").get_data(as_text=True)
    assert "Transfer the money" not in first and ">Pay refund<" in first
    assert "Transfer the money" in second and "<dd>2</dd>" in second
    assert latest == second


def test_retired_version_says_so_and_latest_skips_it(client, services, admin_token):
    deploy(services)
    original = (DIAGRAMS / "refund-request.bpmn").read_text(encoding="utf-8")
    deploy(services, source=original.replace("Refund requested", "Refund asked").encode("utf-8"))
    principal = services.identity.authenticate_token(admin_token)
    services.definitions.retire("refund_request", 2, principal)
    assert "Retired" in client.get("/sop/refund_request/v/2").get_data(as_text=True)
    assert "<dd>1</dd>" in client.get("/sop/refund_request").get_data(as_text=True)


def test_unknown_process_or_version_is_a_readable_404(client, services):
    deploy(services)
    for url in ("/sop/no_such_process", "/sop/refund_request/v/7", "/sop/refund_request/v/latest"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "text/html"
        assert "SOP not found" in response.get_data(as_text=True)


def test_deploying_publishes_the_sop_and_audits_it(services, admin_token):
    result = deploy(services)
    definition = services.definitions.get("refund_request", 1)
    assert definition.sop_state == "published"
    assert definition.sop_published_by == "admin"
    assert definition.sop_published_at == result.definitions[0].created_at
    principal = services.identity.authenticate_token(admin_token)
    events = services.audit.list_events(principal, event_type="sop-published").items
    assert [(e.definition_key, e.definition_version) for e in events] == [("refund_request", 1)]


def test_api_serves_the_sop_as_html_to_authenticated_callers(client, services, auth):
    deploy(services)
    url = "/api/v1/process-definitions/refund_request/versions/1/sop"
    assert client.get(url).status_code == 401
    response = client.get(url, headers=auth)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert 'id="step-pay_refund"' in response.get_data(as_text=True)
    again = client.get(url, headers={**auth, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    missing = client.get("/api/v1/process-definitions/refund_request/versions/5/sop", headers=auth)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_sop_index_lists_deployed_processes(client, services):
    deploy(services)
    deploy(services, "employee-onboarding.bpmn")
    text = client.get("/sop").get_data(as_text=True)
    assert 'href="/sop/refund_request"' in text and 'href="/sop/employee_onboarding"' in text


def test_changes_page_compares_two_versions(client, services):
    deploy(services)
    original = (DIAGRAMS / "refund-request.bpmn").read_text(encoding="utf-8")
    deploy(services, source=original.replace('name="Pay refund"', 'name="Transfer the money"').encode("utf-8"))
    second = client.get("/sop/refund_request/v/2").get_data(as_text=True)
    assert 'href="/sop/refund_request/diff/1/2"' in second
    response = client.get("/sop/refund_request/diff/1/2")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "<del>Pay refund</del> <ins>Transfer the money</ins>" in text
    assert "0 added, 0 removed, 1 changed steps" in " ".join(text.split())
    assert client.get("/sop/refund_request/diff/1/9").status_code == 404
    assert client.get("/sop/refund_request/diff/a/b").status_code == 404


def test_handbooks_can_be_for_signed_in_users_only(services, settings, database, clock, monkeypatch):
    """BPMN_SERVER_SOP_PUBLIC=false: /sop pages send visitors to sign in first, then show the page."""
    import dataclasses

    from bpmn_server import create_app
    from bpmn_server.services import Services

    from .web_support import fast_password_hashing, sign_in

    deploy(services)
    fast_password_hashing(monkeypatch)
    services.identity.create_user("clerk", password="clerk-demo", groups=["clerks"])
    private = Services(dataclasses.replace(settings, sop_public=False), database=database, clock=clock)
    client = create_app(services=private, testing=True).test_client()
    for url in ("/sop", "/sop/refund_request", "/sop/refund_request/v/1"):
        visitor = client.get(url)
        assert visitor.status_code == 302 and visitor.headers["Location"].startswith("/login?next=%2Fsop"), url
    assert sign_in(client, "clerk", next_url="/sop/refund_request").headers["Location"] == "/sop/refund_request"
    page = client.get("/sop/refund_request")
    assert page.status_code == 200 and "<h1>Refund request</h1>" in page.get_data(as_text=True)
