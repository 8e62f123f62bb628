"""The example diagrams: clean, documented on every step, with lanes, a decision and a timer, and a
complete BPMNDI so that bpmn.io (and the SOP's SVG) draw them as modelled."""

from __future__ import annotations

import shutil

import pytest
from lxml import etree

from bpmn_server.parser.document import FLOW_NODE_TAGS, BpmnDocument, documentation_text
from bpmn_server.parser.expressions import to_python
from bpmn_server.parser.namespaces import BPMN, BPMNDI, CAMUNDA, DC, DI, local_name, q
from bpmn_server.parser.validation import validate

from .conftest import DIAGRAMS_DIR, PROJECT_ROOT

DIAGRAMS = sorted(path.name for path in DIAGRAMS_DIR.glob("*.bpmn"))
NS = {"bpmn": BPMN, "bpmndi": BPMNDI, "dc": DC, "di": DI, "camunda": CAMUNDA}
TOLERANCE = 1.0


def load(name: str) -> BpmnDocument:
    return BpmnDocument.load((DIAGRAMS_DIR / name).read_bytes(), name)


def flow_nodes(document: BpmnDocument) -> list[etree._Element]:
    return [element for process in document.process_elements for element in process.iter()
            if isinstance(element.tag, str) and element.tag.startswith(f"{{{BPMN}}}")
            and local_name(element.tag) in FLOW_NODE_TAGS]


def bounds(document: BpmnDocument) -> dict[str, tuple[float, float, float, float]]:
    """x, y, width, height of every shape by the id of the element it draws."""
    shapes = {}
    for shape in document.root.iter(f"{{{BPMNDI}}}BPMNShape"):
        box = shape.find(f"{{{DC}}}Bounds")
        shapes[shape.get("bpmnElement")] = tuple(float(box.get(a)) for a in ("x", "y", "width", "height"))
    return shapes


def on_border(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y, width, height = box
    px, py = point
    inside_x = x - TOLERANCE <= px <= x + width + TOLERANCE
    inside_y = y - TOLERANCE <= py <= y + height + TOLERANCE
    on_vertical = abs(px - x) <= TOLERANCE or abs(px - (x + width)) <= TOLERANCE
    on_horizontal = abs(py - y) <= TOLERANCE or abs(py - (y + height)) <= TOLERANCE
    return inside_x and inside_y and (on_vertical or on_horizontal)


def contains(outer: tuple[float, float, float, float], inner: tuple[float, float, float, float]) -> bool:
    ox, oy, ow, oh = outer
    ix, iy, iw, ih = inner
    return ox <= ix and oy <= iy and ix + iw <= ox + ow and iy + ih <= oy + oh


def test_there_are_at_least_three_examples():
    assert {"refund-request.bpmn", "employee-onboarding.bpmn", "support-ticket.bpmn"} <= set(DIAGRAMS)


@pytest.mark.parametrize("name", DIAGRAMS)
def test_diagram_validates_without_any_finding(name):
    findings = validate(load(name))
    assert findings == [], [(f.rule, f.element_id, f.message) for f in findings]


@pytest.mark.parametrize("name", DIAGRAMS)
def test_the_process_and_every_step_are_documented(name):
    document = load(name)
    for process in document.process_elements:
        assert len(documentation_text(process) or "") > 200, "the process states purpose, scope, owner, roles"
    for node in flow_nodes(document):
        text = documentation_text(node) or ""
        assert len(text) > 60, f"{node.get('id')} needs instructions, not just a label"


@pytest.mark.parametrize("name", DIAGRAMS)
def test_lanes_hold_every_step_once(name):
    document = load(name)
    lanes = document.bpmn_elements("lane")
    assert len(lanes) >= 2
    placed = [ref.text.strip() for lane in lanes for ref in lane.findall(q("flowNodeRef"))]
    assert sorted(placed) == sorted(node.get("id") for node in flow_nodes(document))


@pytest.mark.parametrize("name", DIAGRAMS)
def test_a_decision_with_juel_conditions_and_a_default(name):
    document = load(name)
    decisions = [g for g in document.bpmn_elements("exclusiveGateway")
                 if g.get("default") and len([f for f in document.bpmn_elements("sequenceFlow")
                                              if f.get("sourceRef") == g.get("id")]) >= 2]
    assert decisions, "a gateway that chooses a route, with a default flow"
    conditions = [c.text for c in document.bpmn_elements("conditionExpression")]
    assert conditions and all(c.strip().startswith("${") for c in conditions)
    for condition in conditions:
        assert to_python(condition), condition  # the JUEL parses


@pytest.mark.parametrize("name", DIAGRAMS)
def test_a_timer(name):
    assert load(name).bpmn_elements("timerEventDefinition")


@pytest.mark.parametrize("name", DIAGRAMS)
def test_user_tasks_say_who_works_on_them_and_what_they_fill_in(name):
    document = load(name)
    tasks = document.bpmn_elements("userTask")
    assert tasks
    for task in tasks:
        assert task.get(f"{{{CAMUNDA}}}candidateGroups") or task.get(f"{{{CAMUNDA}}}assignee"), task.get("id")
        assert task.find("bpmn:extensionElements/camunda:formData/camunda:formField", NS) is not None, task.get("id")


@pytest.mark.parametrize("name", DIAGRAMS)
def test_bpmndi_draws_every_element_where_it_belongs(name):
    document = load(name)
    shapes = bounds(document)
    nodes = {node.get("id"): node for node in flow_nodes(document)}
    for element_id in [*nodes, *(lane.get("id") for lane in document.bpmn_elements("lane")),
                       *(p.get("id") for p in document.bpmn_elements("participant"))]:
        assert element_id in shapes, f"{element_id} has no shape"
    for lane in document.bpmn_elements("lane"):
        for ref in lane.findall(q("flowNodeRef")):
            node = nodes[ref.text.strip()]
            if local_name(node.tag) == "boundaryEvent":
                x, y, width, height = shapes[node.get("id")]
                assert on_border((x + width / 2, y + height / 2), shapes[node.get("attachedToRef")]), node.get("id")
            else:
                assert contains(shapes[lane.get("id")], shapes[node.get("id")]), f"{node.get('id')} outside its lane"
    edges = {edge.get("bpmnElement"): edge for edge in document.root.iter(f"{{{BPMNDI}}}BPMNEdge")}
    for flow in document.bpmn_elements("sequenceFlow"):
        edge = edges.get(flow.get("id"))
        assert edge is not None, f"{flow.get('id')} has no edge"
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall(f"{{{DI}}}waypoint")]
        assert len(points) >= 2
        assert on_border(points[0], shapes[flow.get("sourceRef")]), f"{flow.get('id')} does not leave its source"
        assert on_border(points[-1], shapes[flow.get("targetRef")]), f"{flow.get('id')} does not reach its target"
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            assert x1 == x2 or y1 == y2, f"{flow.get('id')} has a diagonal segment"


def test_support_ticket_reminds_and_escalates_to_the_team_lead():
    document = load("support-ticket.bpmn")
    lanes = {lane.get("name"): {ref.text for ref in lane.findall(q("flowNodeRef"))}
             for lane in document.bpmn_elements("lane")}
    assert set(lanes) == {"Customer support agent", "Second-level support", "Team lead"}
    timers = {}
    for boundary in document.bpmn_elements("boundaryEvent"):
        definition = boundary.find("bpmn:timerEventDefinition/*", NS)
        timers[boundary.get("id")] = (boundary.get("cancelActivity", "true"), local_name(definition.tag),
                                      definition.text, boundary.get("attachedToRef"))
    assert timers["reminder_every_4_hours"] == ("false", "timeCycle", "R3/PT4H", "investigate_ticket")
    assert timers["overdue_after_1_day"] == ("true", "timeDuration", "P1D", "investigate_ticket")
    escalation = next(f for f in document.bpmn_elements("sequenceFlow") if f.get("sourceRef") == "overdue_after_1_day")
    assert escalation.get("targetRef") in lanes["Team lead"]
    groups = {task.get(f"{{{CAMUNDA}}}candidateGroups") for task in document.bpmn_elements("userTask")}
    assert groups == {"support-agents", "second-level", "team-leads"}


def test_examples_doc_describes_every_diagram():
    text = (PROJECT_ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in DIAGRAMS:
        assert f"diagrams/{name}" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VENDOR = PROJECT_ROOT / "bpmn_server" / "web" / "static" / "vendor" / "bpmn-js"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None or not (VENDOR / "bpmn-viewer.production.min.js").exists(),
                    reason="needs Debian's chromium and the bpmn-js assets (bin/setup --test)")
def test_bpmn_js_imports_every_diagram_without_warnings():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_content('<div id="canvas" style="width:1200px;height:800px"></div>')
            page.add_script_tag(path=str(VENDOR / "bpmn-viewer.production.min.js"))
            for name in DIAGRAMS:
                result = page.evaluate(
                    """async (xml) => {
                        document.querySelector('#canvas').innerHTML = '';
                        const viewer = new BpmnJS({container: '#canvas'});
                        try {
                            const {warnings} = await viewer.importXML(xml);
                            return {warnings: warnings.map(w => w.message),
                                    drawn: viewer.get('elementRegistry').getAll().map(e => e.id)};
                        } catch (error) { return {error: String(error)}; }
                    }""",
                    (DIAGRAMS_DIR / name).read_text(encoding="utf-8"),
                )
                assert "error" not in result, (name, result)
                assert result["warnings"] == [], (name, result["warnings"])
                document = load(name)
                assert {node.get("id") for node in flow_nodes(document)} <= set(result["drawn"]), name
        finally:
            browser.close()


# -- the support ticket runs as documented (both databases) ---------------------------------------


def _open_tasks(services, instance_id: str):
    from sqlalchemy import select

    from bpmn_server.store.models import HumanTask

    with services.database.read() as session:
        return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                       HumanTask.status.in_(("open", "claimed")))).all()


@pytest.fixture
def support(services):
    """The support ticket deployed, with one person per lane."""
    if not hasattr(services, "instances"):
        pytest.skip("the runtime is not part of the services facade")
    from bpmn_server.identity.principal import Principal

    services.definitions.deploy((DIAGRAMS_DIR / "support-ticket.bpmn").read_bytes(), "support-ticket.bpmn", "admin")
    people = {}
    for name, group in (("ann", "support-agents"), ("sam", "second-level"), ("tom", "team-leads")):
        services.identity.create_user(name, groups=[group])  # no password: argon2 is slow on purpose
        people[group] = Principal(name, frozenset({group}), False)
    return services, people


def _complete_only_task(services, instance_id, element_id, group, people, data):
    [task] = _open_tasks(services, instance_id)
    assert (task.element_id, task.candidate_groups) == (element_id, [group])
    services.tasks.complete(task.id, data, people[group])


TRIAGE = {"customer_email": "kim@example.com", "subject": "Invoice PDF empty", "category": "bug",
          "priority": "normal"}


def test_support_ticket_first_level_route(support):
    from bpmn_server.identity.principal import Principal

    services, people = support
    instance = services.instances.start("support_ticket", principal=Principal("ann", frozenset({"support-agents"})))
    _complete_only_task(services, instance.id, "triage_ticket", "support-agents", people,
                        {**TRIAGE, "category": "question", "solvable_first_level": True})
    _complete_only_task(services, instance.id, "solve_ticket", "support-agents", people,
                        {"resolution": "Resent the invoice"})
    _complete_only_task(services, instance.id, "close_ticket", "support-agents", people, {"answer_sent": True})
    assert services.instances.get(instance.id).status == "completed"


def test_support_ticket_reminds_three_times_then_escalates_to_the_team_lead(support, clock):
    from datetime import timedelta

    from bpmn_server.identity.principal import Principal

    services, people = support
    instance = services.instances.start("support_ticket", principal=Principal("ann", frozenset({"support-agents"})))
    _complete_only_task(services, instance.id, "triage_ticket", "support-agents", people,
                        {**TRIAGE, "priority": "critical", "solvable_first_level": True})  # critical: 2nd level
    [investigation] = _open_tasks(services, instance.id)
    assert investigation.element_id == "investigate_ticket"

    def reminders() -> int:
        notes = services.outbox.notifications(people["second-level"])[0]
        return len([n for n in notes if n.kind == "task.reminder"])

    for hours, expected in ((4, 1), (8, 2), (12, 3), (20, 3)):
        clock.advance(timedelta(hours=4 if hours != 20 else 8))
        services.timers.fire_due()
        assert reminders() == expected, hours
        assert [t.element_id for t in _open_tasks(services, instance.id)] == ["investigate_ticket"]
    clock.advance(timedelta(hours=4))  # 24 hours: the escalation
    services.timers.fire_due()
    _complete_only_task(services, instance.id, "handle_overdue_ticket", "team-leads", people,
                        {"resolution": "Workaround agreed by phone", "overdue_reason": "complex_problem"})
    _complete_only_task(services, instance.id, "close_ticket", "support-agents", people, {"answer_sent": True})
    assert services.instances.get(instance.id).status == "completed"
