"""The process owner's pages: catalogue, version page with findings, upload, retire, XML, modeler save,
and the HTML error pages."""

from __future__ import annotations

import io

import pytest

from tests.models import linear_process
from tests.web_support import BROKEN_MODEL, create_people, fast_password_hashing, page_token, sign_in


@pytest.fixture
def backend() -> str:
    """Pages, not storage, are under test here: SQLite only (the services have their own backend tests)."""
    return "sqlite"


@pytest.fixture
def signed_in(client, services, monkeypatch):
    """A client signed in as the process owner."""
    fast_password_hashing(monkeypatch)
    create_people(services)
    sign_in(client, "owner")
    return client


def _upload(client, data: bytes, name: str, token: str | None = None):
    return client.post("/processes/upload", content_type="multipart/form-data", data={
        "file": (io.BytesIO(data), name),
        "csrf_token": token if token is not None else page_token(client, "/processes/upload"),
    })


def test_catalogue_lists_processes_with_versions_owner_and_findings(signed_in, services):
    services.definitions.deploy(linear_process("simple", "Simple approval"), "simple.bpmn", "owner")
    services.definitions.deploy(linear_process("simple", "Simple approval", label="Changed"), "simple.bpmn", "clerk")
    services.definitions.deploy(BROKEN_MODEL, "broken.bpmn", "owner")
    html = signed_in.get("/processes").get_data(as_text=True)
    simple = html.split('data-process-key="simple"')[1].split("</tr>")[0]
    assert "Simple approval" in simple and "v2" in simple and "2 versions" in simple
    assert ">clerk<" in simple  # the owner of the newest version
    assert "no findings" in simple
    broken = html.split('data-process-key="broken"')[1].split("</tr>")[0]
    assert "1 error" in broken


def test_retired_processes_leave_the_catalogue_until_asked_for(signed_in, services):
    services.definitions.deploy(linear_process("old"), "old.bpmn", "owner")
    services.definitions.retire("old", 1, services.identity.principal_for("owner"))
    assert 'data-process-key="old"' not in signed_in.get("/processes").get_data(as_text=True)
    shown = signed_in.get("/processes?retired=1").get_data(as_text=True)
    assert 'data-process-key="old"' in shown and "retired" in shown


def test_version_page_lists_findings_with_line_and_element(signed_in, services):
    services.definitions.deploy(BROKEN_MODEL, "broken.bpmn", "owner")
    response = signed_in.get("/processes/broken/v/1")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "sequence flow f2 has targetRef=&#39;nowhere&#39;" in html
    assert "line 8" in html and "<code>f2</code>" in html and "dangling-reference" in html
    assert 'href="/sop/broken/v/1"' in html
    assert 'href="/modeler?key=broken&amp;version=1"' in html
    assert 'data-xml-url="/processes/broken/v/1/xml"' in html


def test_xml_download_is_the_deployed_file_byte_for_byte(signed_in, services):
    source = linear_process("simple")
    services.definitions.deploy(source, "simple.bpmn", "owner")
    response = signed_in.get("/processes/simple/v/1/xml?download=1")
    assert response.data == source
    assert response.headers["Content-Disposition"] == 'attachment; filename="simple-v1.bpmn"'


def test_upload_deploys_and_shows_the_findings(signed_in, services):
    response = _upload(signed_in, BROKEN_MODEL, "broken.bpmn")
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert "Broken process v1" in html and "1 error" in html
    assert "targetRef=&#39;nowhere&#39;" in html and "line 8" in html
    assert services.definitions.get("broken", 1).owner == "owner"

    again = _upload(signed_in, BROKEN_MODEL, "broken.bpmn")
    assert again.status_code == 200 and "Already deployed" in again.get_data(as_text=True)


def test_upload_of_a_file_that_is_not_bpmn_says_why(signed_in, services):
    response = _upload(signed_in, b"<not-closed>", "broken.xml")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and "line 1" in html
    assert services.definitions.list_definitions().total == 0


def test_upload_without_csrf_token_changes_nothing(signed_in, services):
    assert _upload(signed_in, linear_process("simple"), "simple.bpmn", token="").status_code == 400
    assert services.definitions.list_definitions().total == 0


def test_owner_retires_a_version_and_others_may_not(client, services, monkeypatch):
    fast_password_hashing(monkeypatch)
    create_people(services)
    services.definitions.deploy(linear_process("simple"), "simple.bpmn", "owner")

    sign_in(client, "clerk")
    page = client.get("/processes/simple/v/1").get_data(as_text=True)
    assert "Retire this version" not in page
    response = client.post("/processes/simple/v/1/retire", data={"csrf_token": page_token(client)},
                           follow_redirects=True)
    assert "only the owner (owner) or an administrator may retire" in response.get_data(as_text=True)
    assert services.definitions.get("simple", 1).retired_at is None

    client.post("/logout", data={"csrf_token": page_token(client)})
    sign_in(client, "owner")
    response = client.post("/processes/simple/v/1/retire", data={"csrf_token": page_token(client)})
    assert response.status_code == 303 or response.status_code == 302
    assert response.headers["Location"] == "/processes/simple/v/1"  # Post/Redirect/Get
    assert "is retired" in client.get("/processes/simple/v/1").get_data(as_text=True)
    assert services.definitions.get("simple", 1).retired_by == "owner"


def test_modeler_opens_a_version_and_saves_a_new_one_with_findings(signed_in, services):
    services.definitions.deploy(linear_process("simple"), "simple.bpmn", "owner")
    page = signed_in.get("/modeler?key=simple&version=1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'data-xml-url="/processes/simple/v/1/xml"' in html
    assert "/static/vendor/bpmn-js/bpmn-modeler.production.min.js" in html
    token = page_token(signed_in, "/modeler?key=simple&version=1")

    edited = linear_process("simple", label="Do it now").decode()
    response = signed_in.post("/modeler/save", json={"xml": edited, "name": "simple.bpmn"},
                              headers={"X-CSRF-Token": token})
    assert response.status_code == 201
    body = response.get_json()
    assert body["definitions"][0]["version"] == 2
    assert body["definitions"][0]["url"] == "/processes/simple/v/2"
    assert services.definitions.get("simple", 2).deployment.source == edited.encode()

    broken = BROKEN_MODEL.decode().replace('id="broken"', 'id="simple"')
    body = signed_in.post("/modeler/save", json={"xml": broken, "name": "simple.bpmn"},
                          headers={"X-CSRF-Token": token}).get_json()
    assert body["definitions"][0]["version"] == 3
    assert [(f["element_id"], f["severity"]) for f in body["findings"]] == [("f2", "error")]


def test_modeler_save_refuses_without_csrf_and_explains_bad_xml(signed_in, services):
    xml = linear_process("simple").decode()
    assert signed_in.post("/modeler/save", json={"xml": xml}).status_code == 400
    assert services.definitions.list_definitions().total == 0
    token = page_token(signed_in, "/modeler")
    response = signed_in.post("/modeler/save", json={"xml": "<bpmn:definitions"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 422
    assert response.get_json()["line"] == 1


def test_unknown_pages_and_versions_get_an_html_404(signed_in):
    for url in ("/no/such/page", "/processes/missing/v/1", "/modeler?key=missing"):
        response = signed_in.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "text/html"
        assert "Back to the start page" in response.get_data(as_text=True)


def test_api_errors_stay_problem_json(client):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_page_layout_is_accessible(signed_in):
    html = signed_in.get("/processes").get_data(as_text=True)
    assert '<a class="skip-link" href="#main">' in html
    assert '<main id="main"' in html and '<nav class="site-nav" aria-label="Main">' in html
    assert 'aria-current="page">Processes' in html
    login = signed_in.get("/processes/upload").get_data(as_text=True)
    assert '<label for="file">' in login and 'id="file"' in login


def test_an_upload_over_the_size_limit_gets_a_page_saying_so(signed_in, app, services):
    token = page_token(signed_in, "/processes/upload")
    app.config["MAX_CONTENT_LENGTH"] = 2_000
    response = _upload(signed_in, linear_process("big") + b" " * 5_000, "big.bpmn", token=token)
    assert response.status_code == 413
    assert response.mimetype == "text/html" and "Request Entity Too Large" in response.get_data(as_text=True)
    assert services.definitions.list_definitions().total == 0
