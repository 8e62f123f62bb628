"""Instance state is stored without the spec and restored against the cached spec: sub-processes,
call activities, parallel branches, data and waiting timers survive the round trip through the
database between commands."""

from __future__ import annotations

import json

from sqlalchemy import select

from bpmn_server.store.models import ProcessInstance, Timer

from .models import definitions
from .runtime_helpers import ADMIN, CLERK

NESTED = definitions("""
  <bpmn:process id="outer" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:parallelGateway id="fork"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:subProcess id="embedded" name="Embedded"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:startEvent id="es"><bpmn:outgoing>e1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:userTask id="inner_task" name="Inner task"><bpmn:incoming>e1</bpmn:incoming>
        <bpmn:outgoing>e2</bpmn:outgoing></bpmn:userTask>
      <bpmn:boundaryEvent id="inner_reminder" attachedToRef="inner_task" cancelActivity="false">
        <bpmn:outgoing>e3</bpmn:outgoing><bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration>
        </bpmn:timerEventDefinition></bpmn:boundaryEvent>
      <bpmn:endEvent id="ee"><bpmn:incoming>e2</bpmn:incoming></bpmn:endEvent>
      <bpmn:endEvent id="ee2"><bpmn:incoming>e3</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="e1" sourceRef="es" targetRef="inner_task"/>
      <bpmn:sequenceFlow id="e2" sourceRef="inner_task" targetRef="ee"/>
      <bpmn:sequenceFlow id="e3" sourceRef="inner_reminder" targetRef="ee2"/>
    </bpmn:subProcess>
    <bpmn:callActivity id="call" name="Call" calledElement="called"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f5</bpmn:outgoing></bpmn:callActivity>
    <bpmn:parallelGateway id="join"><bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming>
      <bpmn:outgoing>f6</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:scriptTask id="sum" scriptFormat="python"><bpmn:incoming>f6</bpmn:incoming><bpmn:outgoing>f7</bpmn:outgoing>
      <bpmn:script>total = a + b</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f7</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="fork"/>
    <bpmn:sequenceFlow id="f2" sourceRef="fork" targetRef="embedded"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="call"/>
    <bpmn:sequenceFlow id="f4" sourceRef="embedded" targetRef="join"/>
    <bpmn:sequenceFlow id="f5" sourceRef="call" targetRef="join"/>
    <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="sum"/>
    <bpmn:sequenceFlow id="f7" sourceRef="sum" targetRef="e"/>
  </bpmn:process>
  <bpmn:process id="called" isExecutable="false">
    <bpmn:startEvent id="cs"><bpmn:outgoing>c1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="called_task" name="Called task"><bpmn:incoming>c1</bpmn:incoming>
      <bpmn:outgoing>c2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="ce"><bpmn:incoming>c2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="c1" sourceRef="cs" targetRef="called_task"/>
    <bpmn:sequenceFlow id="c2" sourceRef="called_task" targetRef="ce"/>
  </bpmn:process>""")


def test_subprocess_call_activity_and_timer_survive_storage(services, clock):
    services.definitions.deploy(NESTED, "nested.bpmn", "admin")
    instance = services.instances.start("outer", principal=CLERK)
    with services.database.read() as session:
        state = session.get(ProcessInstance, instance.id).state
        timer = session.scalars(select(Timer)).one()
    text = json.dumps(state)
    assert "task_specs" not in text and "outer" in text  # no spec in the stored state, only its name
    assert timer.element_id == "inner_reminder" and timer.kind == "boundary-non-interrupting"
    tasks = {t.element_id: t for t in services.tasks.list(CLERK).items}
    assert set(tasks) == {"inner_task", "called_task"}

    services.tasks.complete(tasks["called_task"].id, {"b": 2}, CLERK)
    # the reminder inside the embedded sub-process fires from the stored state
    services.instances.apply(instance.id, lambda workflow: None, actor="system:timer", now=timer.due_at)
    with services.database.read() as session:
        assert session.scalars(select(Timer)).one().status == "fired"
    services.tasks.complete(tasks["inner_task"].id, {"a": 40}, CLERK)
    done = services.instances.get(instance.id)
    assert done.status == "completed" and done.variables["total"] == 42
    kinds = [(e["event_type"], e["element_id"]) for e in services.instances.history(instance.id)]
    assert ("timer-fired", "inner_reminder") in kinds and ("element-completed", "sum") in kinds
    assert services.instances.get(instance.id).activities == []
    assert services.tasks.list(ADMIN, scope="all", status="completed").total == 2


def test_scripts_read_the_command_clock(services, clock):
    from .runtime_helpers import script_process

    services.definitions.deploy(script_process("stamp = now().isoformat()"), "stamp.bpmn", "admin")
    clock.advance(3600)
    instance = services.instances.start("scripted", principal=CLERK)
    assert services.instances.variables(instance.id)[0]["stamp"] == clock.now().isoformat()
