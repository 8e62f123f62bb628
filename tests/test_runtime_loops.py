"""Long loops: Spiff's task lookups stop 1,000 levels down its task tree, so without compaction a loop
of a few hundred iterations silently ends early. Loops must run to the right count, and the stored
state must stay bounded however long an instance loops."""

from __future__ import annotations

import json

from sqlalchemy import select

from bpmn_server.store.models import ProcessInstance

from .models import definitions
from .runtime_helpers import CLERK


def script_loop(times: int) -> bytes:
    return definitions(f"""
  <bpmn:process id="counter" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="count" scriptFormat="python"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>again</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:script>i = i + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="more" default="done"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>again</bpmn:outgoing><bpmn:outgoing>done</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e"><bpmn:incoming>done</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="count"/>
    <bpmn:sequenceFlow id="f2" sourceRef="count" targetRef="more"/>
    <bpmn:sequenceFlow id="again" sourceRef="more" targetRef="count">
      <bpmn:conditionExpression>${{i &lt; {times}}}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="done" sourceRef="more" targetRef="e"/>
  </bpmn:process>""")


REWORK = definitions("""
  <bpmn:process id="rework" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="draft" name="Draft"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>redo</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:parallelGateway id="split"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>p1</bpmn:outgoing>
      <bpmn:outgoing>p2</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:scriptTask id="left" scriptFormat="python"><bpmn:incoming>p1</bpmn:incoming><bpmn:outgoing>p3</bpmn:outgoing>
      <bpmn:script>lefts = lefts + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="right" scriptFormat="python"><bpmn:incoming>p2</bpmn:incoming><bpmn:outgoing>p4</bpmn:outgoing>
      <bpmn:script>rights = rights + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>p3</bpmn:incoming><bpmn:incoming>p4</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:exclusiveGateway id="ok" default="redo"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>redo</bpmn:outgoing><bpmn:outgoing>accepted</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e"><bpmn:incoming>accepted</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="draft"/>
    <bpmn:sequenceFlow id="f2" sourceRef="draft" targetRef="split"/>
    <bpmn:sequenceFlow id="p1" sourceRef="split" targetRef="left"/>
    <bpmn:sequenceFlow id="p2" sourceRef="split" targetRef="right"/>
    <bpmn:sequenceFlow id="p3" sourceRef="left" targetRef="join"/>
    <bpmn:sequenceFlow id="p4" sourceRef="right" targetRef="join"/>
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="ok"/>
    <bpmn:sequenceFlow id="redo" sourceRef="ok" targetRef="draft"/>
    <bpmn:sequenceFlow id="accepted" sourceRef="ok" targetRef="e">
      <bpmn:conditionExpression>${good}</bpmn:conditionExpression></bpmn:sequenceFlow>
  </bpmn:process>""")


def stored_state_size(services, instance_id: str) -> int:
    with services.database.read() as session:
        return len(json.dumps(session.scalar(select(ProcessInstance.state).where(ProcessInstance.id == instance_id))))


def test_a_loop_past_spiffs_lookup_depth_runs_to_the_right_count(services):
    services.definitions.deploy(script_loop(700), "counter.bpmn", "admin")
    instance = services.instances.start("counter", principal=CLERK, variables={"i": 0})
    done = services.instances.get(instance.id)
    assert done.status == "completed" and done.variables["i"] == 700
    assert stored_state_size(services, instance.id) < 20_000
    completions = [e for e in services.instances.history(instance.id) if e["element_id"] == "count"]
    assert len(completions) == 700  # the audit log keeps the whole history the state no longer has


def rework(parallel: bool) -> bytes:
    """draft (user task) -> [left and right scripts in parallel | one script] -> accepted? else redo."""
    if parallel:
        middle = """
    <bpmn:parallelGateway id="split"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>p1</bpmn:outgoing>
      <bpmn:outgoing>p2</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:scriptTask id="left" scriptFormat="python"><bpmn:incoming>p1</bpmn:incoming><bpmn:outgoing>p3</bpmn:outgoing>
      <bpmn:script>lefts = lefts + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="right" scriptFormat="python"><bpmn:incoming>p2</bpmn:incoming><bpmn:outgoing>p4</bpmn:outgoing>
      <bpmn:script>rights = rights + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>p3</bpmn:incoming><bpmn:incoming>p4</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:sequenceFlow id="f2" sourceRef="draft" targetRef="split"/>
    <bpmn:sequenceFlow id="p1" sourceRef="split" targetRef="left"/>
    <bpmn:sequenceFlow id="p2" sourceRef="split" targetRef="right"/>
    <bpmn:sequenceFlow id="p3" sourceRef="left" targetRef="join"/>
    <bpmn:sequenceFlow id="p4" sourceRef="right" targetRef="join"/>
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="ok"/>"""
    else:
        middle = """
    <bpmn:scriptTask id="left" scriptFormat="python"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>lefts = lefts + 1
rights = rights + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="draft" targetRef="left"/>
    <bpmn:sequenceFlow id="f3" sourceRef="left" targetRef="ok"/>"""
    return definitions(f"""
  <bpmn:process id="rework" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="draft" name="Draft"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>redo</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>{middle}
    <bpmn:exclusiveGateway id="ok" default="redo"><bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>redo</bpmn:outgoing><bpmn:outgoing>accepted</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e"><bpmn:incoming>accepted</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="draft"/>
    <bpmn:sequenceFlow id="redo" sourceRef="ok" targetRef="draft"/>
    <bpmn:sequenceFlow id="accepted" sourceRef="ok" targetRef="e">
      <bpmn:conditionExpression>${{good}}</bpmn:conditionExpression></bpmn:sequenceFlow>
  </bpmn:process>""")


def run_rework(services, rounds: int) -> tuple[str, list[int]]:
    instance = services.instances.start("rework", principal=CLERK, variables={"lefts": 0, "rights": 0,
                                                                              "good": False})
    sizes = []
    for round_ in range(1, rounds + 1):
        if round_ == rounds:
            services.instances.update_variables(instance.id, principal=CLERK, set={"good": True})
        task = services.tasks.list(CLERK, instance_id=instance.id).items[0]
        services.tasks.complete(task.id, {}, CLERK)
        sizes.append(stored_state_size(services, instance.id))
    return instance.id, sizes


def test_a_rework_loop_through_a_human_task_keeps_its_state_bounded(services):
    services.definitions.deploy(rework(parallel=False), "rework.bpmn", "admin")
    instance_id, sizes = run_rework(services, 100)
    done = services.instances.get(instance_id)
    assert done.status == "completed"
    assert done.variables["lefts"] == done.variables["rights"] == 100
    assert max(sizes[:-1]) < 30_000  # without compaction it grows ~1.5 KB per round (> 200 KB here)


def test_a_rework_loop_with_a_parallel_split_runs_every_round_with_bounded_state(services):
    services.definitions.deploy(rework(parallel=True), "rework.bpmn", "admin")
    instance_id, sizes = run_rework(services, 60)
    assert services.instances.get(instance_id).status == "completed"
    history = services.instances.history(instance_id)
    for element in ("split", "left", "right", "join"):
        assert sum(1 for e in history if e["element_id"] == element and e["event_type"] == "element-completed") \
            == 60, element
    assert sum(1 for e in history if e["event_type"] == "task-completed") == 60
    assert max(sizes) < 60_000  # without compaction: about 2.8 KB more per round (> 170 KB here)


def test_a_split_join_loop_in_one_engine_run_completes_every_round(services):
    services.definitions.deploy(definitions("""
  <bpmn:process id="ploop" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="inc" scriptFormat="python"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>back</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:script>i = i + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="split"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>p1</bpmn:outgoing>
      <bpmn:outgoing>p2</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:scriptTask id="a" scriptFormat="python"><bpmn:incoming>p1</bpmn:incoming><bpmn:outgoing>p3</bpmn:outgoing>
      <bpmn:script>x = i</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="b" scriptFormat="python"><bpmn:incoming>p2</bpmn:incoming><bpmn:outgoing>p4</bpmn:outgoing>
      <bpmn:script>y = i</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="join"><bpmn:incoming>p3</bpmn:incoming><bpmn:incoming>p4</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:exclusiveGateway id="more" default="out"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>back</bpmn:outgoing>
      <bpmn:outgoing>out</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="e"><bpmn:incoming>out</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="inc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="inc" targetRef="split"/>
    <bpmn:sequenceFlow id="p1" sourceRef="split" targetRef="a"/>
    <bpmn:sequenceFlow id="p2" sourceRef="split" targetRef="b"/>
    <bpmn:sequenceFlow id="p3" sourceRef="a" targetRef="join"/>
    <bpmn:sequenceFlow id="p4" sourceRef="b" targetRef="join"/>
    <bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="more"/>
    <bpmn:sequenceFlow id="back" sourceRef="more" targetRef="inc">
      <bpmn:conditionExpression>i &lt; 250</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="out" sourceRef="more" targetRef="e"/>
  </bpmn:process>"""), "ploop.bpmn", "admin")
    instance = services.instances.start("ploop", principal=CLERK, variables={"i": 0})
    done = services.instances.get(instance.id)
    assert done.status == "completed", done.incidents  # without compaction: a RecursionError near round 200
    assert done.variables["i"] == 250
    history = services.instances.history(instance.id)
    for element in ("a", "b", "join"):
        assert sum(1 for e in history if e["element_id"] == element) == 250, element
