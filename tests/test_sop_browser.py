"""The SOP page in a real headless Chromium (Debian's, never a downloaded one): the diagram renders,
a click on a shape lands on its step, and the page prints to PDF."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sop_server(tmp_path_factory):
    """A live server (werkzeug, port 0, in a thread) on a SQLite database with the refund model deployed."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (bin/setup --test installs it)")
    from werkzeug.serving import make_server

    from bpmn_server import create_app
    from bpmn_server.services import Services
    from bpmn_server.settings import Settings

    folder = tmp_path_factory.mktemp("sop-browser")
    settings = Settings(data_dir=folder / "data", database_url=f"sqlite:///{folder / 'sop.db'}",
                        secret_key="test-secret", scheduler=False).resolved()
    services = Services(settings)
    services.create_schema()
    services.definitions.deploy((DIAGRAMS / "refund-request.bpmn").read_bytes(), "refund-request.bpmn", "admin")
    server = make_server("127.0.0.1", 0, create_app(services=services, testing=True), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
    services.database.dispose()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_clicking_a_shape_lands_on_its_step(sop_server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{sop_server}/sop/refund_request")
    assert page.title().startswith("Refund request")
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('svg [data-element-id]')]"
        ".filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; }).length"
    )
    assert drawn == 31  # the pool, 3 lanes, 14 flow nodes and 13 flows, each with a size
    page.click('svg [data-element-id="approve_refund"]')
    page.wait_for_function("() => location.hash === '#step-approve_refund'")
    step = page.locator("#step-approve_refund")
    box = step.bounding_box()
    assert box is not None and 0 <= box["y"] < 900  # scrolled into view
    assert "Escalates to group finance-leads" in step.inner_text()
    page.close()


def test_the_sop_prints_to_pdf(sop_server, browser, tmp_path):
    page = browser.new_page()
    page.goto(f"{sop_server}/sop/refund_request/v/1")
    pdf = page.pdf(path=str(tmp_path / "refund.pdf"), format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 3  # cover+diagram, then the steps
    page.close()
