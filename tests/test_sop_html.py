"""The SOP handbook page: every MIWG model publishes, the diagrams are complete and linked, the
example diagrams read right, and hostile documentation is sanitized."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from lxml import etree

from bpmn_server.parser.document import FLOW_NODE_TAGS, BpmnDocument
from bpmn_server.parser.namespaces import BPMNDI, local_name, q
from bpmn_server.sop.html import render_sop_html
from bpmn_server.sop.instructions import render_text

from .models import definitions

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """A strict reading of the page: tags must nest and close; collects ids, links and shapes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.element_ids: set[str] = set()
        self.di_ids: set[str] = set()
        self.tags: set[str] = set()
        self.svg_count = 0
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if "id" in values:
            self.ids.append(values["id"] or "")
        if values.get("href"):
            self.hrefs.append(values["href"])
        if "data-element-id" in values:
            self.element_ids.add(values["data-element-id"] or "")
        if "data-di-id" in values:
            self.di_ids.add(values["data-di-id"] or "")
        if tag == "svg":
            self.svg_count += 1

    def handle_starttag(self, tag, attrs):
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._attrs(tag, attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} at {self.getpos()}")
            return
        self.stack.pop()


def check_page(text: str) -> Page:
    page = Page(text)
    assert page.errors == []
    assert "<script" not in text.lower()
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    anchors = set(page.ids)
    broken = [h for h in page.hrefs if h.startswith("#") and h[1:] not in anchors]
    assert broken == []
    for svg in re.findall(r"<svg\b.*?</svg>", text, flags=re.S):
        etree.fromstring(svg)  # every diagram is well-formed SVG
    return page


def load(path: Path) -> BpmnDocument:
    return BpmnDocument.load(path.read_bytes(), path.name)


def test_every_miwg_model_publishes_a_complete_sop(miwg_dir):
    models = sorted(miwg_dir.glob("*.bpmn"))
    assert len(models) == 21
    for path in models:
        document = load(path)
        text = render_sop_html(document)
        page = check_page(text)
        anchors = set(page.ids)
        for process in document.process_elements:
            nodes = [el.get("id") for el in process.iter() if local_name(el.tag) in FLOW_NODE_TAGS]
            if process.find(q("documentation")) is not None or nodes:
                assert f"process-{process.get('id')}" in anchors, f"{path.name}: {process.get('id')}"
            missing_steps = [n for n in nodes if f"step-{n}" not in anchors]
            assert missing_steps == [], path.name
        di = [el.get("id") for el in document.root.iter(q("BPMNShape", BPMNDI), q("BPMNEdge", BPMNDI))]
        assert set(di) <= page.di_ids, f"{path.name}: shapes not drawn: {set(di) - page.di_ids}"
        diagrams = len(document.root.findall(f".//{q('BPMNDiagram', BPMNDI)}"))
        assert page.svg_count >= diagrams
        # every drawn flow node links to its step
        for element_id in page.element_ids:
            element = document.element(element_id)
            if element is not None and local_name(element.tag) in FLOW_NODE_TAGS:
                assert f'href="#step-{element_id}"' in text, f"{path.name}: {element_id} not linked"


def test_several_diagrams_give_one_svg_each(miwg_dir):
    text = render_sop_html(load(miwg_dir / "C.4.0.bpmn"))
    page = check_page(text)
    assert page.svg_count == 4
    for name in ("Onboarding employee", "IT", "Payroll", "Facilities"):
        assert f"<figcaption>{name} (" in text


def test_refund_handbook_reads_like_the_process():
    text = render_sop_html(load(DIAGRAMS / "refund-request.bpmn"), "refund_request", version=3,
                           state="published", published_at="2026-11-30")
    check_page(text)
    assert "<h1>Refund request</h1>" in text
    assert "<dd>Head of Customer Service</dd>" in text
    assert "<dd>3</dd>" in text and "2026-11-30" in text and ">Published<" in text
    assert "Give customers their money back quickly" in text  # purpose: the process documentation
    assert re.search(r'If yes \(amount &gt; 500\) → <a href="#step-approve_refund">step 4</a>, '
                     r'otherwise → <a href="#step-pay_refund">step 11</a>', text)
    assert "Reminder after 1 day, repeated 3 times → step 6 “Reminder sent”" in text
    assert "Escalates to group finance-leads (Finance) after 5 days → step 8 “Escalated refund approval”" in text
    assert "<td>Amount to refund (EUR)</td><td>long</td><td>yes</td>" in text
    steps = re.findall(r'<article class="step[^"]*" id="step-([^"]+)"', text)
    assert steps[:4] == ["refund_requested", "review_refund_request", "amount_over_500", "approve_refund"]
    assert len(steps) == 14
    # the diagram: user tasks have their marker, the non-interrupting reminder is dashed
    assert re.search(r'data-element-id="daily_reminder".*?non-interrupting', text, flags=re.S)
    assert 'href="#step-review_refund_request"' in text
    assert "@media print" in text


def test_onboarding_handbook_shows_parallel_work():
    text = render_sop_html(load(DIAGRAMS / "employee-onboarding.bpmn"))
    check_page(text)
    assert 'At the same time → <a href="#step-prepare_laptop_and_accounts">step 3</a>' in text
    assert "Continues once the incoming paths are done (from steps 3, 4, 5)." in text
    assert "<dd>HR Operations lead</dd>" in text


HOSTILE = definitions("""
  <bpmn:process id="hostile" name="Hostile &lt;script&gt;alert(1)&lt;/script&gt;" isExecutable="true">
    <bpmn:documentation textFormat="text/markdown">**Bold** and [safe](https://example.com/x)
and [evil](javascript:alert(1)) and &lt;img src="x" onerror="alert(1)"&gt; and &lt;script&gt;alert(2)&lt;/script&gt;</bpmn:documentation>
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="t1" name="&lt;img src=x onerror=alert(3)&gt;">
      <bpmn:documentation textFormat="text/html">&lt;p onclick="alert(4)"&gt;Read &lt;a href="JaVaScRiPt:alert(5)"&gt;this&lt;/a&gt;&lt;/p&gt;&lt;iframe src="https://evil.example"&gt;&lt;/iframe&gt;&lt;svg onload="alert(6)"&gt;&lt;/svg&gt;&lt;style&gt;body{display:none}&lt;/style&gt;&lt;b style="color:red"&gt;kept&lt;/b&gt;</bpmn:documentation>
    </bpmn:userTask>
    <bpmn:task id="t2" name="Plain">
      <bpmn:documentation>First paragraph
still the first.

Second paragraph:
- one &lt;script&gt;
- two
1. first
2. second</bpmn:documentation>
    </bpmn:task>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="t1"/>
    <bpmn:sequenceFlow id="f2" sourceRef="t1" targetRef="t2"/>
  </bpmn:process>""")


def test_hostile_documentation_and_names_are_neutralised():
    text = render_sop_html(BpmnDocument.load(HOSTILE))
    check_page(text)
    lowered = text.lower()
    for bad in ("<script", "<iframe", "<style>body{display", 'style="color:red"', "<svg onload"):
        assert bad not in lowered, bad
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", lowered)  # no event handler attribute on any tag
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*javascript:", lowered)
    assert "alert(5)" not in text and "evil.example" not in text
    assert "<strong>Bold</strong>" in text
    assert '<a href="https://example.com/x" rel="noopener noreferrer nofollow">safe</a>' in text
    assert "<b>kept</b>" in text
    assert "&lt;img src=x onerror=alert(3)&gt;" in text  # a hostile name is shown as text
    assert "<p>First paragraph<br>still the first.</p>" in text
    assert "<ul><li>one &lt;script&gt;</li><li>two</li></ul>\n<ol><li>first</li><li>second</li></ol>" in text


def test_text_formats_render_as_declared():
    assert render_text("*a*", "text/markdown") == "<p><em>a</em></p>"
    assert render_text("*a*", "text/plain") == "<p>*a*</p>"
    assert render_text("<em>a</em>", "text/html") == "<em>a</em>"
    assert render_text("<em>a</em>", None) == "<p>&lt;em&gt;a&lt;/em&gt;</p>"


NO_LAYOUT = definitions("""
  <bpmn:process id="bare" name="Bare" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:exclusiveGateway id="g" default="f3"/>
    <bpmn:serviceTask id="a" name="Do A"/>
    <bpmn:boundaryEvent id="late" attachedToRef="a" cancelActivity="false">
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sendTask id="b" name="Do B"/>
    <bpmn:endEvent id="e"><bpmn:terminateEventDefinition/></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
    <bpmn:sequenceFlow id="f2" sourceRef="g" targetRef="a"><bpmn:conditionExpression>${x}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="g" targetRef="b"/>
    <bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="e"/>
    <bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="e"/>
  </bpmn:process>""")


def test_a_model_without_layout_is_laid_out_automatically_and_says_so():
    text = render_sop_html(BpmnDocument.load(NO_LAYOUT))
    page = check_page(text)
    assert "laid out automatically" in text
    assert {"s", "g", "a", "late", "b", "e", "f1", "f2", "f3", "f4", "f5"} <= page.element_ids
    assert re.search(r'data-element-id="b".*?class="activity sendTask"', text, flags=re.S)
    assert re.search(r'data-element-id="e".*?event-terminate', text, flags=re.S)
    assert re.search(r'data-element-id="late".*?non-interrupting', text, flags=re.S)


def test_miwg_notation_details_are_drawn(miwg_dir):
    text = "".join(render_sop_html(load(path)) for path in sorted(miwg_dir.glob("*.bpmn")))
    for marker in ("activity userTask", "activity serviceTask", "activity sendTask", "activity callActivity",
                   "gateway parallelGateway", "gateway eventBasedGateway", "gateway inclusiveGateway",
                   "event-timer", "event-error", "event-escalation", "event-signal", "event-message",
                   "event-conditional", "event-compensate", "event-link", "edge messageFlow",
                   "edge dataInputAssociation", "data dataStoreReference", "data dataObjectReference",
                   'class="participant"', 'class="lane"', "textAnnotation", 'class="group"'):
        assert marker in text, marker
    assert 'stroke-width="4"' in text  # call activities and end events
    assert 'rotate(-90)' in text  # pool and lane names


def test_changes_between_two_versions_are_listed_word_by_word():
    from bpmn_server.sop.diff import diff_sops, render_sop_diff_html

    old = (DIAGRAMS / "refund-request.bpmn").read_text(encoding="utf-8")
    new = (old.replace('name="Pay refund"', 'name="Transfer the money"')
           .replace("Decide whether the company pays", "Decide today whether the company pays")
           .replace('<bpmn:endEvent id="refund_paid" name="Refund paid">',
                    '<bpmn:endEvent id="refund_paid" name="Refund paid"><bpmn:documentation>Done.'
                    '</bpmn:documentation>')
           .replace('<bpmn:flowNodeRef>record_rejection</bpmn:flowNodeRef>', ""))
    new = new.replace('<bpmn:scriptTask id="record_rejection"', '<bpmn:scriptTask id="log_rejection"')
    new = new.replace('targetRef="record_rejection"', 'targetRef="log_rejection"')
    new = new.replace('sourceRef="record_rejection"', 'sourceRef="log_rejection"')
    diff = diff_sops(BpmnDocument.load(old), BpmnDocument.load(new), "refund_request", old_version=1, new_version=2)
    kinds = {(change.kind, change.step_id) for change in diff.steps}
    assert ("added", "log_rejection") in kinds and ("removed", "record_rejection") in kinds
    changed = {change.step_id: change for change in diff.steps if change.kind == "changed"}
    assert [c.label for c in changed["pay_refund"].changes] == ["Name"]
    assert [c.label for c in changed["approve_refund"].changes] == ["Instructions"]
    assert "amount_over_500" not in changed  # only a target's name changed, not the decision
    assert str(changed["approve_refund"].changes[0].words).startswith("Decide <ins>today</ins> whether")
    text = render_sop_diff_html(diff)
    check_page(text)
    assert "1 added, 1 removed" in " ".join(text.split())
