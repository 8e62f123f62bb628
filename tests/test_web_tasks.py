"""The task performer's and the operator's pages, on the refund example: lists with counts and
filters, the generated form with inline 422 errors, claim/unclaim/comment/complete (Post/Redirect/Get),
the instance page with its marked diagram, history, audit export and verify."""

from __future__ import annotations

import json
import re

import pytest

from bpmn_server.identity.principal import Principal
from tests.conftest import DIAGRAMS_DIR
from tests.models import definitions
from tests.web_support import csrf_from, fast_password_hashing, page_token, sign_in

pytestmark = pytest.mark.usefixtures("refund")

VALID_REVIEW = {"customer_name": "Ann Lee", "order_id": "A-100", "amount": "750", "reason": "damaged",
                "receipt_checked": "true"}


@pytest.fixture
def backend() -> str:
    """Pages, not storage, are under test here: SQLite only (the services have their own backend tests)."""
    return "sqlite"


@pytest.fixture
def refund(services, monkeypatch):
    """The refund example deployed, a clerk and a manager, and one request started by the clerk."""
    fast_password_hashing(monkeypatch)
    services.identity.create_user("clerk", password="clerk-demo", groups=["clerks"])
    services.identity.create_user("manager", password="manager-demo", groups=["managers"])
    services.definitions.deploy((DIAGRAMS_DIR / "refund-request.bpmn").read_bytes(), "refund-request.bpmn", "admin")
    clerk = services.identity.principal_for("clerk")
    return services.instances.start("refund_request", principal=clerk, business_key="A-100")


def _review_task(services):
    clerk = services.identity.principal_for("clerk")
    return services.tasks.list(clerk, process_key="refund_request").items[0]


def _tab_count(html: str, tab: str) -> int:
    match = re.search(rf'id="tab-{tab}">[^<]*<span class="count" aria-label="(\d+) tasks">', html)
    assert match, f"no count on the {tab} tab"
    return int(match.group(1))


def test_group_tasks_are_claimed_into_my_tasks(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    html = client.get("/tasks?tab=group").get_data(as_text=True)
    assert _tab_count(html, "group") == 1 and _tab_count(html, "mine") == 0
    assert "Review refund request" in html and "A-100" in html
    task = _review_task(services)

    response = client.post(f"/tasks/{task.id}/claim", data={"csrf_token": page_token(client, "/tasks")})
    assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{task.id}"
    html = client.get("/tasks").get_data(as_text=True)
    assert _tab_count(html, "mine") == 1 and _tab_count(html, "group") == 0
    assert f'data-task-id="{task.id}"' in html

    client.post(f"/tasks/{task.id}/unclaim", data={"csrf_token": page_token(client, "/tasks")})
    assert services.tasks.get(task.id, services.identity.principal_for("clerk")).assignee is None


def test_the_assignee_delegates_a_task_from_its_page(client, services):
    services.identity.create_user("colleague", password="colleague-pw", groups=["clerks"])
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    token = page_token(client, "/tasks")
    assert 'action="/tasks/' + task.id + '/assign"' not in client.get(f"/tasks/{task.id}").get_data(as_text=True)
    client.post(f"/tasks/{task.id}/claim", data={"csrf_token": token})
    assert 'Delegate' in client.get(f"/tasks/{task.id}").get_data(as_text=True)

    response = client.post(f"/tasks/{task.id}/assign", data={"csrf_token": token, "assignee": "colleague"})
    assert response.status_code == 303
    assert services.tasks.get(task.id, services.identity.principal_for("colleague")).assignee == "colleague"
    again = client.post(f"/tasks/{task.id}/assign", data={"csrf_token": token, "assignee": "clerk"},
                        follow_redirects=True)
    assert "only the task&#39;s assignee or an administrator may assign it" in again.get_data(as_text=True)


def test_task_list_filters_by_process_and_priority(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    assert "Review refund request" in client.get("/tasks?tab=group&process=refund_request").get_data(as_text=True)
    other = client.get("/tasks?tab=group&process=employee_onboarding").get_data(as_text=True)
    assert 'id="no-tasks"' in other and "with these filters" in other
    assert 'id="no-tasks"' in client.get("/tasks?tab=group&priority=51").get_data(as_text=True)
    assert 'id="no-tasks"' not in client.get("/tasks?tab=group&priority=50").get_data(as_text=True)
    assert 'id="no-tasks"' in client.get("/tasks?tab=group&overdue=1").get_data(as_text=True)


def test_task_page_shows_the_generated_form_data_diagram_and_sop_step(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    html = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert '<label for="field-customer_name">Customer name<span class="required-marker"' in html
    assert re.search(r'id="field-amount" name="amount"\s+type="number" step="1"', html)
    assert re.search(r'type="number" step="1" inputmode="numeric"\s+min="1"', html)
    assert '<select id="field-reason" name="reason"' in html and 'value="wrong_item"' in html
    assert 'type="checkbox" id="field-receipt_checked"' in html
    assert 'href="/sop/refund_request/v/1#step-review_refund_request"' in html
    markers = re.search(r"data-markers='([^']*)'", html).group(1)
    assert json.loads(markers) == {"review_refund_request": "active"}


def test_a_bad_form_comes_back_with_inline_errors_and_changes_nothing(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    data = dict(VALID_REVIEW, amount="0", order_id="", csrf_token=page_token(client, f"/tasks/{task.id}"))
    response = client.post(f"/tasks/{task.id}/complete", data=data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'role="alert" id="form-errors"' in html
    assert '<p class="field-error" id="field-amount-error">Amount to refund (EUR) must be at least 1</p>' in html
    assert '<p class="field-error" id="field-order_id-error">Order number is required</p>' in html
    assert 'aria-invalid="true" aria-describedby="field-amount-error"' in html
    assert 'value="Ann Lee"' in html  # what the performer typed stays
    assert services.tasks.get(task.id, services.identity.principal_for("clerk")).status == "open"


def test_completing_moves_the_case_on_to_the_manager(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    data = dict(VALID_REVIEW, csrf_token=page_token(client, f"/tasks/{task.id}"))
    response = client.post(f"/tasks/{task.id}/complete", data=data)
    assert response.status_code == 303 and response.headers["Location"] == "/tasks"
    html = client.get("/tasks?tab=group").get_data(as_text=True)
    assert "Completed “Review refund request”" in html
    assert _tab_count(html, "group") == 0

    client.post("/logout", data={"csrf_token": page_token(client, "/tasks")})
    sign_in(client, "manager", next_url="/tasks")
    html = client.get("/tasks?tab=group").get_data(as_text=True)
    assert "Approve refund" in html and _tab_count(html, "group") == 1


def test_others_cannot_open_a_task_that_is_not_theirs(client, services):
    sign_in(client, "manager", next_url="/tasks")
    task = _review_task(services)
    response = client.get(f"/tasks/{task.id}")
    assert response.status_code == 403
    assert response.mimetype == "text/html"


def test_comments_appear_on_the_task(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    response = client.post(f"/tasks/{task.id}/comments",
                           data={"text": "Customer called again", "csrf_token": page_token(client, "/tasks")},
                           follow_redirects=True)
    assert "<strong>clerk</strong>: Customer called again" in response.get_data(as_text=True)


def test_instance_page_marks_the_diagram_and_shows_history_tasks_and_variables(client, services, refund):
    sign_in(client, "clerk", next_url="/instances")
    listing = client.get("/instances?status=running").get_data(as_text=True)
    assert f'data-instance-id="{refund.id}"' in listing
    assert f'data-instance-id="{refund.id}"' not in client.get("/instances?status=completed").get_data(as_text=True)

    task = _review_task(services)
    client.post(f"/tasks/{task.id}/complete",
                data=dict(VALID_REVIEW, csrf_token=page_token(client, f"/tasks/{task.id}")))
    html = client.get(f"/instances/{refund.id}").get_data(as_text=True)
    markers = json.loads(re.search(r"data-markers='([^']*)'", html).group(1))
    assert markers["refund_requested"] == "completed"
    assert markers["review_refund_request"] == "completed"
    assert markers["approve_refund"] == "active"
    assert "task completed" in html and "Ann Lee" in html  # history and variables
    assert "Approve refund" in html  # the open task
    assert "The timer list is for administrators" in html


def test_an_instance_page_is_for_the_people_of_the_case(client, services, refund):
    """The manager has no part in the request until the review sends it to approval: neither the list
    nor the instance page shows it to them before, both do after."""
    sign_in(client, "manager", next_url="/instances")
    assert f'data-instance-id="{refund.id}"' not in client.get("/instances").get_data(as_text=True)
    refused = client.get(f"/instances/{refund.id}")
    assert refused.status_code == 403 and "may not see process instance" in refused.get_data(as_text=True)
    denied = services.audit.list_events(Principal("root", is_admin=True), event_type="permission-denied").items
    assert [(e.actor, e.data["action"], e.instance_id) for e in denied] == [
        ("manager", f"GET /instances/{refund.id}", refund.id)]  # the page's refusal is audited, once
    assert _instance_count(client) == 0  # the version page counts what the instance list would show

    clerk = services.identity.principal_for("clerk")
    services.tasks.complete(_review_task(services).id, {**VALID_REVIEW, "amount": 750, "receipt_checked": True},
                            clerk)
    assert f'data-instance-id="{refund.id}"' in client.get("/instances").get_data(as_text=True)
    assert client.get(f"/instances/{refund.id}").status_code == 200
    assert _instance_count(client) == 1


def _instance_count(client) -> int:
    html = client.get("/processes/refund_request/v/1").get_data(as_text=True)
    return int(re.search(r"<dt>Instances</dt><dd><a [^>]*>(\d+)</a>", html).group(1))


def test_auditors_export_the_instance_as_xes_and_verify_the_chain(client, services, refund):
    sign_in(client, "clerk", next_url="/instances")
    assert "Export XES" not in client.get(f"/instances/{refund.id}").get_data(as_text=True)
    assert client.get(f"/instances/{refund.id}/audit.xes").status_code == 403
    assert client.get("/audit/verify").status_code == 403

    client.post("/logout", data={"csrf_token": page_token(client, "/instances")})
    services.identity.create_user("auditor", password="auditor-demo", groups=["auditor"])
    sign_in(client, "auditor", "auditor-demo", next_url="/instances")
    assert "Export XES" in client.get(f"/instances/{refund.id}").get_data(as_text=True)
    xes = client.get(f"/instances/{refund.id}/audit.xes")
    assert xes.status_code == 200 and xes.mimetype == "application/xml"
    assert b"<log" in xes.data and refund.id.encode() in xes.data
    assert client.get(f"/instances/{refund.id}/audit.pdf").status_code == 404
    verify = client.get("/audit/verify").get_data(as_text=True)
    assert "intact" in verify


def test_start_an_instance_from_the_version_page(client, services):
    sign_in(client, "clerk", next_url="/processes")
    page = client.get("/processes/refund_request/v/1").get_data(as_text=True)
    assert "Start an instance" in page
    response = client.post("/processes/refund_request/v/1/start",
                           data={"business_key": "B-7", "csrf_token": page_token(client)})
    assert response.status_code == 303
    instance_id = response.headers["Location"].rsplit("/", 1)[1]
    assert services.instances.get(instance_id).business_key == "B-7"


def test_a_start_form_sent_twice_starts_one_instance(client, services):
    """A double click (or the form sent again) shows the instance the first submission started; the
    same form sent with another business key starts another."""
    sign_in(client, "clerk", next_url="/processes")
    page = client.get("/processes/refund_request/v/1").get_data(as_text=True)
    form = {"business_key": "B-8", "csrf_token": csrf_from(page),
            "start_request": re.search(r'name="start_request" value="([0-9a-f]{32})"', page).group(1)}
    first, again = (client.post("/processes/refund_request/v/1/start", data=form) for _ in range(2))
    assert first.status_code == again.status_code == 303 and first.headers["Location"] == again.headers["Location"]
    other = client.post("/processes/refund_request/v/1/start", data={**form, "business_key": "B-9"})
    assert other.headers["Location"] != first.headers["Location"]
    assert [services.instances.list(business_key=key).total for key in ("B-8", "B-9")] == [1, 1]
    fresh = client.get("/processes/refund_request/v/1").get_data(as_text=True)
    assert form["start_request"] not in fresh  # every drawing of the page is a new start


FAILING = definitions("""
  <bpmn:process id="failing" name="Failing" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="compute" name="Compute" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>total = price * 2</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="compute"/>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="end"/>
  </bpmn:process>""")


def test_a_failed_instance_shows_its_incident_and_the_starter_retries_it(client, services):
    services.definitions.deploy(FAILING, "failing.bpmn", "clerk")
    failed = services.instances.start("failing", principal=services.identity.principal_for("clerk"))
    assert failed.status == "failed"
    sign_in(client, "clerk", next_url="/instances")
    html = client.get(f"/instances/{failed.id}").get_data(as_text=True)
    assert "Retry the failed step" in html and "<code>compute</code>" in html
    assert json.loads(re.search(r"data-markers='([^']*)'", html).group(1))["compute"] == "failed"
    services.instances.update_variables(failed.id, principal=services.identity.principal_for("clerk"),
                                        set={"price": 21})
    response = client.post(f"/instances/{failed.id}/retry", data={"csrf_token": page_token(client, "/instances")},
                           follow_redirects=True)
    assert "Retried" in response.get_data(as_text=True)
    assert services.instances.get(failed.id).status == "completed"


def test_notifications_list_new_tasks_and_are_marked_read(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    task = _review_task(services)
    html = client.get("/notifications").get_data(as_text=True)
    assert "task created" in html and "“Review refund request”" in html
    assert f'href="/tasks/{task.id}"' in html and "Mark all 1 read" in html
    response = client.post("/notifications/read", data={"csrf_token": page_token(client, "/notifications")},
                           follow_redirects=True)
    assert "1 notification marked read." in response.get_data(as_text=True)
    assert "Mark all" not in client.get("/notifications").get_data(as_text=True)


HOSTILE_DOCS = definitions("""
  <bpmn:process id="hostile" name="Hostile" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="work" name="Work" camunda:candidateGroups="clerks">
      <bpmn:documentation textFormat="text/html"><![CDATA[<b>Do it</b><script>alert(1)</script><img src="x" onerror="alert(2)">]]></bpmn:documentation>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
  </bpmn:process>""")


def test_step_instructions_are_rendered_and_sanitized(client, services):
    sign_in(client, "clerk", next_url="/tasks")
    html = client.get(f"/tasks/{_review_task(services).id}").get_data(as_text=True)
    assert "Enter the <strong>amount to refund</strong> in whole euros" in html  # Markdown rendered

    services.definitions.deploy(HOSTILE_DOCS, "hostile.bpmn", "clerk")
    services.instances.start("hostile", principal=services.identity.principal_for("clerk"))
    task = services.tasks.list(services.identity.principal_for("clerk"), process_key="hostile").items[0]
    html = client.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "<b>Do it</b>" in html
    assert "alert(1)" not in html and "onerror" not in html
