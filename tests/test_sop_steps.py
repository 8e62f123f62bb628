"""The SOP step model: flow order, roles, decisions, loops, parallel branches, deadlines, sub-processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpmn_server.errors import NotFound
from bpmn_server.parser.document import FLOW_NODE_TAGS, BpmnDocument
from bpmn_server.parser.namespaces import local_name
from bpmn_server.sop.steps import build_chapters, flow_order

from .models import definitions

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def load(path: Path) -> BpmnDocument:
    return BpmnDocument.load(path.read_bytes(), path.name)


def steps_by_id(document: BpmnDocument, process_id: str | None = None):
    return {step.id: step for chapter in build_chapters(document, process_id) for step in chapter.walk()}


def test_refund_steps_follow_the_flow_with_roles_decisions_and_deadlines():
    chapter = build_chapters(load(DIAGRAMS / "refund-request.bpmn"), "refund_request")[0]
    order = [step.id for step in chapter.steps]
    assert order == [
        "refund_requested", "review_refund_request", "amount_over_500", "approve_refund", "daily_reminder",
        "reminder_sent", "approval_overdue", "escalated_refund_approval", "approval_decided", "refund_approved",
        "pay_refund", "refund_paid", "record_rejection", "refund_rejected",
    ]
    steps = {step.id: step for step in chapter.steps}
    assert [steps[i].number for i in order] == [str(n) for n in range(1, 15)]
    assert steps["review_refund_request"].role == "Customer service · group clerks"
    assert steps["approve_refund"].role == "Finance · group managers"
    assert steps["pay_refund"].role == "Accounting · group accounting"
    assert steps["amount_over_500"].decision_text == "If yes (amount > 500) → step 4, otherwise → step 11"
    assert steps["refund_approved"].decision_text == "If yes (approved) → step 11, otherwise → step 13"
    assert steps["approve_refund"].deadlines == [
        "Reminder after 1 day, repeated 3 times → step 6 “Reminder sent”",
        "Escalates to group finance-leads (Finance) after 5 days → step 8 “Escalated refund approval”",
    ]
    assert [f.label for f in steps["review_refund_request"].form_fields] == [
        "Customer name", "Order number", "Amount to refund (EUR)", "Reason", "Receipt checked"]
    reason = steps["review_refund_request"].form_fields[3]
    assert reason.required and reason.options == [
        "Item arrived damaged", "Delivered late", "Wrong item delivered", "Other"]
    assert "<strong>amount to refund</strong>" in steps["review_refund_request"].instructions.html


def test_onboarding_parallel_branches_and_join():
    steps = steps_by_id(load(DIAGRAMS / "employee-onboarding.bpmn"), "employee_onboarding")
    split = steps["prepare_in_parallel"]
    assert [n.kind for n in split.next] == ["parallel", "parallel", "parallel"]
    assert split.decision_text.startswith("At the same time → step 3, at the same time → step 4")
    join = steps["all_prepared"]
    assert join.number == "6"
    assert join.notes[0] == "Continues once the incoming paths are done (from steps 3, 4, 5)."
    assert steps["plan_first_week"].role == "Hiring manager · assignee manager"
    assert steps["wait_until_end_of_probation"].summary == "Wait 90 days."


LOOP = definitions("""
  <bpmn:process id="loop" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="draft" name="Draft letter" camunda:candidateGroups="writers, editors"/>
    <bpmn:userTask id="check" name="Check letter"/>
    <bpmn:exclusiveGateway id="ok" name="Good enough?" default="again"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="draft"/>
    <bpmn:sequenceFlow id="f2" sourceRef="draft" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="ok"/>
    <bpmn:sequenceFlow id="done" sourceRef="ok" targetRef="end">
      <bpmn:conditionExpression>${approved &amp;&amp; !late}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="again" sourceRef="ok" targetRef="draft"/>
  </bpmn:process>""")


def test_a_flow_back_is_worded_as_repeat_from_step():
    steps = steps_by_id(BpmnDocument.load(LOOP))
    assert [steps[i].number for i in ("start", "draft", "check", "ok", "end")] == ["1", "2", "3", "4", "5"]
    assert steps["ok"].decision_text == "If approved and not late → step 5, otherwise → repeat from step 2"
    assert steps["draft"].candidate_groups == ["writers", "editors"]


SUBPROCESS = definitions("""
  <bpmn:process id="outer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:subProcess id="sub" name="Handle claim">
      <bpmn:startEvent id="sub_start"/>
      <bpmn:task id="inner" name="Assess damage"/>
      <bpmn:endEvent id="sub_end"/>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="inner"/>
      <bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="sub_end"/>
    </bpmn:subProcess>
    <bpmn:boundaryEvent id="failed" attachedToRef="sub">
      <bpmn:errorEventDefinition errorRef="claim_error"/>
    </bpmn:boundaryEvent>
    <bpmn:callActivity id="pay" name="Pay claim" calledElement="payment"/>
    <bpmn:task id="apologise" name="Apologise"/>
    <bpmn:endEvent id="end"/>
    <bpmn:endEvent id="end2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub"/>
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="pay"/>
    <bpmn:sequenceFlow id="f3" sourceRef="pay" targetRef="end"/>
    <bpmn:sequenceFlow id="f4" sourceRef="failed" targetRef="apologise"/>
    <bpmn:sequenceFlow id="f5" sourceRef="apologise" targetRef="end2"/>
  </bpmn:process>
  <bpmn:error id="claim_error" name="Claim invalid"/>""")


def test_sub_process_steps_are_nested_and_errors_worded():
    steps = steps_by_id(BpmnDocument.load(SUBPROCESS))
    assert [s.number for s in steps["sub"].substeps] == ["2.1", "2.2", "2.3"]
    assert steps["inner"].number == "2.2"
    # the boundary path comes after the activity's normal path
    assert [steps[i].number for i in ("pay", "end", "failed", "apologise", "end2")] == ["3", "4", "5", "6", "7"]
    assert steps["sub"].exceptions == ["If an error occurs (an error “Claim invalid”) → step 6 “Apologise”"]
    assert steps["pay"].called_element == "payment"
    assert steps["failed"].summary.startswith("While step 2 “Handle claim” is in progress: if an error occurs")


def test_unknown_process_is_not_found():
    with pytest.raises(NotFound):
        build_chapters(BpmnDocument.load(LOOP), "nope")


def test_flow_order_lists_a_join_after_all_its_branches():
    order, back = flow_order(
        ["a", "b", "c", "j", "z"], [("a", "b"), ("a", "c"), ("b", "j"), ("c", "j"), ("j", "z"), ("z", "a")], ["a"])
    assert order == ["a", "b", "c", "j", "z"]
    assert back == {("z", "a")}


def test_every_flow_node_of_every_miwg_model_is_one_step(miwg_dir):
    for path in sorted(miwg_dir.glob("*.bpmn")):
        document = load(path)
        for process in document.process_elements:
            expected = sorted(
                el.get("id") for el in process.iter()
                if local_name(el.tag) in FLOW_NODE_TAGS and el.get("id")
            )
            if not expected:
                continue
            chapter = build_chapters(document, process.get("id"))[0]
            ids = [step.id for step in chapter.walk()]
            assert sorted(ids) == expected, f"{path.name} {process.get('id')}"
            numbers = [step.number for step in chapter.walk()]
            assert len(set(numbers)) == len(numbers), path.name


def test_timers_without_a_time_are_worded_plainly(miwg_dir):
    steps = steps_by_id(load(miwg_dir / "B.2.0.bpmn"))
    texts = [s.summary for s in steps.values()] + [d for s in steps.values() for d in s.deadlines]
    assert not [t for t in texts if "unspecified" in t or "the date a" in t]
    starts = [s.summary for s in steps.values() if s.type == "startEvent" and "timer" in s.summary]
    assert starts == ["Starts on a timer."]
