"""End-to-end in Debian's headless Chromium (Playwright, never a downloaded browser) against a live
server: sign in, the catalogue, the bpmn-js modeler (draw, edit, save a new version), findings on an
uploaded broken model. Every wait is for a selector or a URL; nothing sleeps."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from bpmn_server import create_app
from tests.web_support import create_people, drawn_process, fast_password_hashing

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
VENDOR = Path(__file__).resolve().parent.parent / "bpmn_server" / "web" / "static" / "vendor" / "bpmn-js"


def _require_browser_setup() -> None:
    missing = [str(p) for p in (CHROMIUM, VENDOR / "bpmn-modeler.production.min.js") if not p.exists()]
    if missing:
        if os.environ.get("CI"):
            raise RuntimeError(f"browser tests need {', '.join(missing)} (bin/setup --test installs them)")
        pytest.skip(f"browser tests need {', '.join(missing)} (run bin/setup --test)")


@pytest.fixture
def backend() -> str:
    """Pages, not storage, are under test here: SQLite only."""
    return "sqlite"


@pytest.fixture(scope="module")
def browser():
    _require_browser_setup()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def live_server(services, monkeypatch):
    """The app served over real HTTP in a thread, on a free port."""
    fast_password_hashing(monkeypatch)
    create_people(services)
    server = make_server("127.0.0.1", 0, create_app(services=services, testing=True), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors or CSP violations on the page: {errors}"


def sign_in(page, username: str, password: str, next_path: str) -> None:
    page.goto(next_path)
    page.wait_for_url("**/login?next=*")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


def test_owner_edits_a_task_name_in_the_modeler_and_saves_version_2(page, services):
    services.definitions.deploy(drawn_process("drawn"), "drawn.bpmn", "owner")
    sign_in(page, "owner", "owner-demo", "/processes")
    row = page.locator('tr[data-process-key="drawn"]')
    assert "v1" in row.inner_text()

    row.get_by_role("link", name="Edit in modeler").click()
    page.wait_for_selector('#modeler-canvas[data-rendered="true"]')
    task = page.locator('.djs-shape[data-element-id="work"]')
    assert page.locator("#modeler-canvas .djs-shape").count() >= 3  # bpmn-js drew start, task, end
    assert "Check the receipt" in task.text_content()

    task.dblclick()
    editor = page.locator(".djs-direct-editing-parent")
    editor.wait_for()
    page.keyboard.press("Control+A")
    page.keyboard.type("Check receipt and order")
    page.locator('#modeler-canvas .djs-shape[data-element-id="start"]').click()  # leave the label editor
    page.wait_for_selector("#save-state.dirty")

    # leaving with unsaved changes asks first; staying keeps the edit
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.get_by_role("link", name="Version page").click()
    assert dialogs == ["beforeunload"]
    assert page.url.endswith("/modeler?key=drawn&version=1")

    page.get_by_role("button", name="Save as new version").click()
    page.wait_for_selector("#save-state:has-text('Saved as drawn v2')")
    saved = services.definitions.get("drawn", 2)
    assert b'name="Check receipt and order"' in services.definitions.source_of(saved)
    assert saved.owner == "owner"

    page.goto("/processes")
    assert "v2" in page.locator('tr[data-process-key="drawn"]').inner_text()


def test_uploaded_broken_model_shows_its_finding_in_the_list_and_on_the_diagram(page, services, tmp_path):
    broken = tmp_path / "waiting.bpmn"
    broken.write_bytes(drawn_process("waiting", "Waiting process", broken_timer=True))
    sign_in(page, "owner", "owner-demo", "/processes/upload")
    page.get_by_label("BPMN 2.0 file").set_input_files(str(broken))
    page.get_by_role("button", name="Validate and deploy").click()
    page.wait_for_selector("h1:has-text('Deployed: waiting.bpmn')")
    finding = page.locator(".findings li.severity-error")
    assert "'in a while' is not an ISO-8601 duration" in finding.inner_text()
    assert "invalid-timer" in finding.inner_text()

    page.get_by_role("link", name="Waiting process v1").click()
    page.wait_for_selector('[data-bpmn-viewer][data-rendered="true"]')
    badge = page.locator('.finding-overlay[data-finding-element="end"]')
    badge.wait_for()
    assert badge.inner_text() == "1"
    assert page.locator('.djs-shape.marker-finding-error[data-element-id="end"]').count() == 1


def test_a_new_process_drawn_from_scratch_is_deployed(page, services):
    sign_in(page, "owner", "owner-demo", "/modeler")
    page.wait_for_selector('#modeler-canvas[data-rendered="true"]')
    assert page.locator('#modeler-canvas .djs-shape[data-element-id="StartEvent_1"]').count() == 1
    page.get_by_label("File name").fill("my-first.bpmn")
    page.get_by_role("button", name="Save as new version").click()
    page.wait_for_selector("#save-state:has-text('Saved as Process_')")
    definitions = services.definitions.list_definitions().items
    assert [d.name for d in definitions] == ["New process"]
    assert definitions[0].deployment.name == "my-first.bpmn"


def test_refund_request_worked_by_clerk_and_manager_through_the_pages(page, services):
    from tests.conftest import DIAGRAMS_DIR

    services.definitions.deploy((DIAGRAMS_DIR / "refund-request.bpmn").read_bytes(), "refund-request.bpmn", "admin")

    # the clerk starts a request and sees the instance's diagram with its active step marked
    sign_in(page, "clerk", "clerk-demo", "/processes/refund_request/v/1")
    page.get_by_label("Business key (optional)").fill("ORDER-77")
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url("**/instances/*")
    page.wait_for_selector('[data-bpmn-viewer][data-rendered="true"]')
    assert page.locator('.djs-shape.marker-active[data-element-id="review_refund_request"]').count() == 1
    assert page.locator('.djs-shape.marker-completed[data-element-id="refund_requested"]').count() == 1

    # claims the review from the group list and opens it
    page.goto("/tasks?tab=group")
    row = page.locator("tr", has_text="ORDER-77")
    row.get_by_role("button", name="Claim Review refund request").click()
    page.wait_for_selector("h1:has-text('Review refund request')")
    page.wait_for_selector('.djs-shape.marker-active[data-element-id="review_refund_request"]')
    assert page.get_by_role("link", name="How to do this step (SOP)").get_attribute("href") == \
        "/sop/refund_request/v/1#step-review_refund_request"

    # a wrong amount comes back inline (422), with focus on the error summary
    page.get_by_label("Customer name").fill("Ann Lee")
    page.get_by_label("Order number").fill("ORDER-77")
    page.get_by_label("Amount to refund (EUR)").fill("0")
    page.get_by_label("Reason").select_option("damaged")
    page.get_by_role("button", name="Complete").click()
    page.wait_for_selector("#field-amount-error")
    assert page.locator("#field-amount-error").inner_text() == "Amount to refund (EUR) must be at least 1"
    assert page.evaluate("document.activeElement.id") == "form-errors"
    assert page.get_by_label("Customer name").input_value() == "Ann Lee"

    page.get_by_label("Amount to refund (EUR)").fill("750")
    page.get_by_label("Receipt checked").check()
    page.get_by_role("button", name="Complete").click()
    page.wait_for_url("**/tasks")
    page.wait_for_selector("text=Completed “Review refund request”")
    assert page.locator("tr", has_text="ORDER-77").count() == 0

    # over 500 EUR: the manager approves it
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "manager", "manager-demo", "/tasks?tab=group")
    page.locator("tr", has_text="ORDER-77").get_by_role("link", name="Approve refund").click()
    page.wait_for_selector("h1:has-text('Approve refund')")
    assert "Ann Lee" in page.locator("section", has_text="Case data").inner_text()
    page.get_by_label("Approve this refund").check()
    page.get_by_role("button", name="Complete").click()
    page.wait_for_url("**/tasks")
    page.goto("/tasks?tab=group")
    assert page.locator("tr", has_text="ORDER-77").count() == 0
    instance = services.instances.list(business_key="ORDER-77").items[0]
    assert [a.element_id for a in services.instances.get(instance.id).activities] == ["pay_refund"]
