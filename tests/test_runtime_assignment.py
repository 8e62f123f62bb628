"""Task assignment as other tools write it: camunda: attributes (with expressions), potentialOwner /
humanPerformer, lanes; due dates, priorities and forms land on the task row."""

from __future__ import annotations

from datetime import timedelta

from .models import definitions
from .runtime_helpers import ADMIN, CLERK

ASSIGNMENTS = definitions("""
  <bpmn:resource id="r_auditors" name="auditors"/>
  <bpmn:collaboration id="c"><bpmn:participant id="p" processRef="assigned"/></bpmn:collaboration>
  <bpmn:process id="assigned" isExecutable="true">
    <bpmn:laneSet><bpmn:lane id="lane_ops" name="operations"><bpmn:flowNodeRef>by_lane</bpmn:flowNodeRef></bpmn:lane>
      <bpmn:lane id="lane_other" name="Other"><bpmn:flowNodeRef>s</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>camunda_task</bpmn:flowNodeRef><bpmn:flowNodeRef>owners</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>performer</bpmn:flowNodeRef><bpmn:flowNodeRef>e</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="fork"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f4</bpmn:outgoing><bpmn:outgoing>f5</bpmn:outgoing>
    </bpmn:parallelGateway>
    <bpmn:userTask id="camunda_task" name="Camunda task" camunda:assignee="${requester}"
        camunda:candidateGroups="${team}, reviewers" camunda:candidateUsers="bob" camunda:dueDate="P2D"
        camunda:followUpDate="2026-01-06T12:00:00" camunda:priority="${urgency * 10}" camunda:formKey="embedded:x">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="reviewed_on" label="Reviewed on" type="date" defaultValue="2026-01-01"/>
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>g2</bpmn:outgoing></bpmn:userTask>
    <bpmn:userTask id="owners" name="Owners"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>g3</bpmn:outgoing>
      <bpmn:potentialOwner><bpmn:resourceAssignmentExpression>
        <bpmn:formalExpression>group(accounting), user(carol)</bpmn:formalExpression>
      </bpmn:resourceAssignmentExpression></bpmn:potentialOwner>
      <bpmn:potentialOwner><bpmn:resourceRef>r_auditors</bpmn:resourceRef></bpmn:potentialOwner>
    </bpmn:userTask>
    <bpmn:manualTask id="performer" name="Performer"><bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>g4</bpmn:outgoing>
      <bpmn:humanPerformer><bpmn:resourceAssignmentExpression>
        <bpmn:formalExpression>dave</bpmn:formalExpression>
      </bpmn:resourceAssignmentExpression></bpmn:humanPerformer>
    </bpmn:manualTask>
    <bpmn:userTask id="by_lane" name="By lane"><bpmn:incoming>f5</bpmn:incoming><bpmn:outgoing>g5</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>g2</bpmn:incoming><bpmn:incoming>g3</bpmn:incoming>
      <bpmn:incoming>g4</bpmn:incoming><bpmn:incoming>g5</bpmn:incoming><bpmn:outgoing>f6</bpmn:outgoing>
    </bpmn:parallelGateway>
    <bpmn:endEvent id="e"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="camunda_task"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="owners"/>
    <bpmn:sequenceFlow id="f4" sourceRef="fork" targetRef="performer"/>
    <bpmn:sequenceFlow id="f5" sourceRef="fork" targetRef="by_lane"/>
    <bpmn:sequenceFlow id="g2" sourceRef="camunda_task" targetRef="join"/>
    <bpmn:sequenceFlow id="g3" sourceRef="owners" targetRef="join"/>
    <bpmn:sequenceFlow id="g4" sourceRef="performer" targetRef="join"/>
    <bpmn:sequenceFlow id="g5" sourceRef="by_lane" targetRef="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="e"/>
  </bpmn:process>""")


def test_assignment_from_camunda_attributes_resources_and_lanes(services, clock):
    services.definitions.deploy(ASSIGNMENTS, "assigned.bpmn", "admin")
    instance = services.instances.start("assigned", principal=CLERK,
                                        variables={"requester": "alice", "team": "legal", "urgency": 7})
    tasks = {t.element_id: t for t in services.tasks.list(ADMIN, scope="all").items}
    camunda = tasks["camunda_task"]
    assert camunda.assignee == "alice"
    assert camunda.candidate_groups == ["legal", "reviewers"] and camunda.candidate_users == ["bob"]
    assert camunda.priority == 70
    assert camunda.due_at == clock.now() + timedelta(days=2)
    assert camunda.follow_up_at.isoformat() == "2026-01-06T12:00:00+00:00"
    assert camunda.form["key"] == "embedded:x" and camunda.form["fields"][0]["type"] == "date"
    assert set(tasks["owners"].candidate_groups) == {"accounting", "auditors"}
    assert tasks["owners"].candidate_users == ["carol"]
    assert tasks["performer"].assignee == "dave"
    assert tasks["by_lane"].candidate_groups == ["operations"] and tasks["by_lane"].lane == "operations"

    alice = CLERK.__class__("alice", frozenset())
    assert [t.element_id for t in services.tasks.list(alice).items] == ["camunda_task"]
    carol = CLERK.__class__("carol", frozenset())
    assert [t.element_id for t in services.tasks.list(carol, scope="claimable").items] == ["owners"]
    ops = CLERK.__class__("olga", frozenset({"operations"}))
    assert [t.element_id for t in services.tasks.list(ops).items] == ["by_lane"]
    overdue = services.tasks.list(ADMIN, scope="all", overdue=True)
    assert overdue.total == 0
    clock.advance(timedelta(days=3))
    assert [t.element_id for t in services.tasks.list(ADMIN, scope="all", overdue=True).items] == ["camunda_task"]
    ordered = [t.element_id for t in services.tasks.list(ADMIN, scope="all", sort="-priority").items]
    assert ordered[0] == "camunda_task"

    completed = services.tasks.complete(camunda.id, {}, alice)
    assert completed.status == "completed"
    assert services.instances.variables(instance.id)[0]["reviewed_on"] == "2026-01-01"


def test_task_list_filters_take_wildcards_literally(services):
    services.definitions.deploy(ASSIGNMENTS, "assigned.bpmn", "admin")
    services.instances.start("assigned", principal=CLERK, variables={"requester": "alice", "team": "legal", "urgency": 7})

    def listed(principal=ADMIN, **filters) -> list[str]:
        return sorted(t.element_id for t in services.tasks.list(principal, **filters).items)

    assert listed(scope="all", name="TASK") == ["camunda_task"]
    assert listed(scope="all", name="_") == [] and listed(scope="all", name="%") == []
    assert listed(scope="all", candidate_group="accounting") == ["owners"]
    assert listed(scope="all", process_key="assigned", assignee="dave") == ["performer"]
    carol = CLERK.__class__("carol", frozenset())
    assert listed(carol, scope="claimable") == ["owners"]
    for lookalike in ("c_rol", "c%", "carol%"):  # a LIKE wildcard in a username must not match carol
        assert "owners" not in listed(CLERK.__class__(lookalike, frozenset()), scope="claimable"), lookalike
