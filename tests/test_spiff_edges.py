"""SpiffWorkflow sharp edges the spec builder fixes (parser/spec.py), each with the model that shows it.
The models run on the server's spec builder and sandboxed script engine with a manual clock.
"""

from __future__ import annotations

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from bpmn_server.clock import ManualClock
from bpmn_server.parser.document import BpmnDocument
from bpmn_server.parser.findings import errors_for_process
from bpmn_server.parser.spec import build_specs
from bpmn_server.parser.validation import validate
from bpmn_server.runtime.script_engine import make_script_engine
from bpmn_server.settings import Settings

from .models import definitions


def run(source: bytes, process_id: str, **data) -> tuple[BpmnWorkflow, list[str]]:
    """Build the process, start it with ``data`` and run it until it waits; the script tasks that ran."""
    document = BpmnDocument.load(source)
    assert not errors_for_process(validate(document), process_id)
    specs = build_specs(document, process_id)
    clock = ManualClock()
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs,
                            script_engine=make_script_engine(Settings(secret_key="t"), now=clock.now))
    workflow.clock = clock
    workflow.task_tree.data.update(data)
    ran: list[str] = []

    def completed(task):
        if type(task.task_spec).__name__.endswith("ScriptTask"):
            ran.append(task.task_spec.bpmn_id)

    workflow.do_engine_steps(did_complete_task=completed)
    return workflow, ran


def script(task_id: str, incoming: list[str], outgoing: list[str], extra: str = "") -> str:
    flows = "".join(f"<bpmn:incoming>{f}</bpmn:incoming>" for f in incoming)
    flows += "".join(f"<bpmn:outgoing>{f}</bpmn:outgoing>" for f in outgoing)
    return f'<bpmn:scriptTask id="{task_id}" {extra}>{flows}<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'


def conditional_split(*, default: bool) -> bytes:
    """check --[amount > 500]--> approve, --[JUEL ${amount <= 500}]--> book, (default ->) archive."""
    archive_flow = '<bpmn:sequenceFlow id="f_arch" sourceRef="check" targetRef="archive"/>'
    return definitions(f"""
  <bpmn:process id="split" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="check"/>
    {script("check", ["f0"], ["f_big", "f_small", "f_arch"], 'default="f_arch"' if default else "")}
    <bpmn:sequenceFlow id="f_big" sourceRef="check" targetRef="approve">
      <bpmn:conditionExpression>amount &gt; 500</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_small" sourceRef="check" targetRef="book">
      <bpmn:conditionExpression>${{amount &lt;= 500 &amp;&amp; !blocked}}</bpmn:conditionExpression></bpmn:sequenceFlow>
    {archive_flow}
    {script("approve", ["f_big"], ["e1"])}
    {script("book", ["f_small"], ["e2"])}
    {script("archive", ["f_arch"], ["e3"])}
    <bpmn:sequenceFlow id="e1" sourceRef="approve" targetRef="end1"/>
    <bpmn:sequenceFlow id="e2" sourceRef="book" targetRef="end2"/>
    <bpmn:sequenceFlow id="e3" sourceRef="archive" targetRef="end3"/>
    <bpmn:endEvent id="end1"><bpmn:incoming>e1</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end2"><bpmn:incoming>e2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end3"><bpmn:incoming>e3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")


@pytest.mark.parametrize(("amount", "blocked", "expected"), [
    (900, False, ["check", "approve", "archive"]),
    (100, False, ["check", "book", "archive"]),
    (100, True, ["check", "archive"]),
])
def test_conditional_flows_leaving_an_activity_each_take_a_token(amount, blocked, expected):
    workflow, ran = run(conditional_split(default=False), "split", amount=amount, blocked=blocked)
    assert sorted(ran) == sorted(expected)
    assert workflow.is_completed()


@pytest.mark.parametrize(("amount", "blocked", "expected"), [
    (900, False, ["check", "approve"]),
    (100, True, ["check", "archive"]),  # no condition holds: only then the default flow
])
def test_default_flow_of_an_activity_only_when_no_condition_holds(amount, blocked, expected):
    workflow, ran = run(conditional_split(default=True), "split", amount=amount, blocked=blocked)
    assert sorted(ran) == sorted(expected)
    assert workflow.is_completed()


def test_activity_with_conditional_flows_is_not_reported_as_unrunnable():
    findings = validate(BpmnDocument.load(conditional_split(default=True)))
    assert not [f for f in findings if f.rule == "not-executable-element"]


def test_event_definition_referenced_by_id_runs_like_an_inline_one():
    source = definitions("""
  <bpmn:signal id="sig" name="go"/>
  <bpmn:signalEventDefinition id="goDef" signalRef="sig"/>
  <bpmn:process id="refs" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:eventDefinitionRef>goDef</bpmn:eventDefinitionRef></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    workflow, _ = run(source, "refs")
    waiting = [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.WAITING)]
    assert waiting == ["wait"]  # a none event would have passed straight through
    assert type(workflow.get_tasks(state=TaskState.WAITING)[0].task_spec.event_definition).__name__ == \
        "SignalEventDefinition"


def subprocess_model(inner: str, outer: str = "") -> bytes:
    """start -> sub (start_in -> throw -> after -> end_in) -> done -> end; ``inner``/``outer`` add elements."""
    return definitions(f"""
  <bpmn:signal id="sig" name="stop"/>
  <bpmn:error id="err" errorCode="E1"/>
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f9</bpmn:outgoing>
      <bpmn:startEvent id="start_in"><bpmn:outgoing>g0</bpmn:outgoing></bpmn:startEvent>
      <bpmn:sequenceFlow id="g0" sourceRef="start_in" targetRef="first"/>
      {script("first", ["g0"], ["g1"])}
      <bpmn:sequenceFlow id="g1" sourceRef="first" targetRef="throw"/>
      <bpmn:intermediateThrowEvent id="throw"><bpmn:incoming>g1</bpmn:incoming><bpmn:outgoing>g2</bpmn:outgoing>
        <bpmn:signalEventDefinition signalRef="sig"/></bpmn:intermediateThrowEvent>
      <bpmn:sequenceFlow id="g2" sourceRef="throw" targetRef="after"/>
      {script("after", ["g2"], ["g3"])}
      <bpmn:sequenceFlow id="g3" sourceRef="after" targetRef="end_in"/>
      <bpmn:endEvent id="end_in"><bpmn:incoming>g3</bpmn:incoming></bpmn:endEvent>
      {inner}
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f9" sourceRef="sub" targetRef="done"/>
    {script("done", ["f9"], ["f10"])}
    <bpmn:sequenceFlow id="f10" sourceRef="done" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f10</bpmn:incoming></bpmn:endEvent>
    {outer}
  </bpmn:process>""")


def test_interrupting_boundary_event_stops_the_subprocess_that_threw_it():
    outer = f"""
    <bpmn:boundaryEvent id="on_stop" attachedToRef="sub" cancelActivity="true"><bpmn:outgoing>b1</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="sig"/></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="b1" sourceRef="on_stop" targetRef="handle"/>
    {script("handle", ["b1"], ["b2"])}
    <bpmn:sequenceFlow id="b2" sourceRef="handle" targetRef="end_b"/>
    <bpmn:endEvent id="end_b"><bpmn:incoming>b2</bpmn:incoming></bpmn:endEvent>"""
    workflow, ran = run(subprocess_model("", outer), "p")
    assert sorted(ran) == ["first", "handle"]  # "after" and "done" never run
    assert workflow.is_completed()


def event_subprocess(definition: str, interrupting: bool) -> str:
    return f"""
      <bpmn:subProcess id="on_event" triggeredByEvent="true">
        <bpmn:startEvent id="ev_start" isInterrupting="{'true' if interrupting else 'false'}">
          <bpmn:outgoing>h0</bpmn:outgoing>{definition}</bpmn:startEvent>
        <bpmn:sequenceFlow id="h0" sourceRef="ev_start" targetRef="handle"/>
        {script("handle", ["h0"], ["h1"])}
        <bpmn:sequenceFlow id="h1" sourceRef="handle" targetRef="ev_end"/>
        <bpmn:endEvent id="ev_end"><bpmn:incoming>h1</bpmn:incoming></bpmn:endEvent>
      </bpmn:subProcess>"""


@pytest.mark.parametrize(("interrupting", "expected"), [
    (True, ["done", "first", "handle"]),
    (False, ["after", "done", "first", "handle"]),
])
def test_event_subprocess_in_a_subprocess_starts_on_its_signal_and_interrupts_when_marked(interrupting, expected):
    inner = event_subprocess('<bpmn:signalEventDefinition signalRef="sig"/>', interrupting)
    workflow, ran = run(subprocess_model(inner), "p")
    assert sorted(ran) == expected
    assert workflow.is_completed()


def test_error_event_subprocess_waits_for_its_error():
    inner = event_subprocess('<bpmn:errorEventDefinition errorRef="err"/>', True)
    workflow, ran = run(subprocess_model(inner), "p")
    assert sorted(ran) == ["after", "done", "first"]  # no error thrown: the handler never runs
    assert workflow.is_completed()


def error_end_model(*, caught: bool) -> bytes:
    """start -> sub (work -> error end E1) -> after -> end; optionally an error boundary on sub."""
    boundary = f"""
    <bpmn:boundaryEvent id="on_error" attachedToRef="sub"><bpmn:outgoing>b1</bpmn:outgoing>
      <bpmn:errorEventDefinition errorRef="err"/></bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="b1" sourceRef="on_error" targetRef="handle"/>
    {script("handle", ["b1"], ["b2"])}
    <bpmn:sequenceFlow id="b2" sourceRef="handle" targetRef="end_b"/>
    <bpmn:endEvent id="end_b"><bpmn:incoming>b2</bpmn:incoming></bpmn:endEvent>""" if caught else ""
    return definitions(f"""
  <bpmn:error id="err" errorCode="E1" name="Broken"/>
  <bpmn:process id="errs" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="sub"/>
    <bpmn:subProcess id="sub"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:startEvent id="s_in"><bpmn:outgoing>g0</bpmn:outgoing></bpmn:startEvent>
      <bpmn:sequenceFlow id="g0" sourceRef="s_in" targetRef="boom"/>
      <bpmn:endEvent id="boom"><bpmn:incoming>g0</bpmn:incoming><bpmn:errorEventDefinition errorRef="err"/>
      </bpmn:endEvent>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f1" sourceRef="sub" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
    {boundary}
  </bpmn:process>""")


@pytest.mark.parametrize("caught", [True, False])
def test_uncaught_bpmn_error_fails_the_instance_with_a_bpmn_error_incident(services, caught):
    from bpmn_server.identity.principal import system_principal

    services.definitions.deploy(error_end_model(caught=caught), "errs.bpmn", "admin")
    started = services.instances.start("errs", principal=system_principal("tester"))
    info = services.instances.get(started.id)
    if caught:
        assert info.status == "completed" and not info.incidents
    else:
        assert info.status == "failed"
        assert [(i.kind, "'E1'" in i.message) for i in info.incidents] == [("bpmn-error", True)]


def test_link_events_continue_the_flow_at_the_matching_catch_event():
    source = definitions(f"""
  <bpmn:process id="links" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="go"/>
    <bpmn:intermediateThrowEvent id="go"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:linkEventDefinition id="l_out" name="page2"/></bpmn:intermediateThrowEvent>
    <bpmn:intermediateCatchEvent id="arrive"><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:linkEventDefinition id="l_in" name="page2"/></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="arrive" targetRef="work"/>
    {script("work", ["f1"], ["f2"])}
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    workflow, ran = run(source, "links")
    assert ran == ["work"]
    assert workflow.is_completed()


def test_signal_end_event_throws_its_signal():
    source = definitions(f"""
  <bpmn:signal id="sig" name="stop"/>
  <bpmn:process id="sigend" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="fork"/>
    <bpmn:parallelGateway id="fork"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>a0</bpmn:outgoing><bpmn:outgoing>b0</bpmn:outgoing></bpmn:parallelGateway>
    <bpmn:sequenceFlow id="a0" sourceRef="fork" targetRef="listen"/>
    <bpmn:intermediateCatchEvent id="listen"><bpmn:incoming>a0</bpmn:incoming><bpmn:outgoing>a1</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="sig"/></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="a1" sourceRef="listen" targetRef="heard"/>
    {script("heard", ["a1"], ["a2"])}
    <bpmn:sequenceFlow id="a2" sourceRef="heard" targetRef="end_a"/>
    <bpmn:endEvent id="end_a"><bpmn:incoming>a2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="b0" sourceRef="fork" targetRef="end_sig"/>
    <bpmn:endEvent id="end_sig"><bpmn:incoming>b0</bpmn:incoming><bpmn:signalEventDefinition signalRef="sig"/>
    </bpmn:endEvent>
  </bpmn:process>""")
    workflow, ran = run(source, "sigend")
    assert ran == ["heard"]
    assert workflow.is_completed()


def two_timer_gateway(first: str, second: str) -> bytes:
    """An event-based gateway racing two timers: ``first`` leads to t_a/task a, ``second`` to t_b/task b."""
    return definitions(f"""
  <bpmn:process id="race" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>
    <bpmn:eventBasedGateway id="gw"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>fa</bpmn:outgoing><bpmn:outgoing>fb</bpmn:outgoing></bpmn:eventBasedGateway>
    <bpmn:sequenceFlow id="fa" sourceRef="gw" targetRef="t_a"/>
    <bpmn:sequenceFlow id="fb" sourceRef="gw" targetRef="t_b"/>
    <bpmn:intermediateCatchEvent id="t_a" name="Wait"><bpmn:incoming>fa</bpmn:incoming><bpmn:outgoing>ga</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>{first}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="t_b" name="Wait"><bpmn:incoming>fb</bpmn:incoming><bpmn:outgoing>gb</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>{second}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="ga" sourceRef="t_a" targetRef="a"/>
    <bpmn:sequenceFlow id="gb" sourceRef="t_b" targetRef="b"/>
    {script("a", ["ga"], ["ea"])}
    {script("b", ["gb"], ["eb"])}
    <bpmn:sequenceFlow id="ea" sourceRef="a" targetRef="end_a"/>
    <bpmn:sequenceFlow id="eb" sourceRef="b" targetRef="end_b"/>
    <bpmn:endEvent id="end_a"><bpmn:incoming>ea</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_b"><bpmn:incoming>eb</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")


@pytest.mark.parametrize(("first", "second", "winner"), [("PT5M", "PT1H", "a"), ("PT1H", "PT5M", "b")])
def test_event_based_gateway_with_two_timers_takes_the_earlier_one(services, clock, first, second, winner):
    from datetime import timedelta

    from bpmn_server.identity.principal import system_principal

    services.definitions.deploy(two_timer_gateway(first, second), "race.bpmn", "admin")
    started = services.instances.start("race", principal=system_principal("tester"))
    assert services.timers.next_due_at() == clock.now() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=5))
    services.timers.fire_due()
    info = services.instances.get(started.id)
    ran = [e["element_id"] for e in services.instances.history(started.id)
           if e["event_type"] == "element-completed" and e["element_type"] == "scriptTask"]
    assert info.status == "completed" and ran == [winner]
    clock.advance(timedelta(hours=2))
    services.timers.fire_due()
    assert services.instances.get(started.id).status == "completed"


def test_call_activity_calls_a_global_script_task():
    source = definitions(f"""
  <bpmn:globalScriptTask id="shared" name="Shared step"><bpmn:script>shared_ran = True</bpmn:script>
  </bpmn:globalScriptTask>
  <bpmn:process id="caller" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="call"/>
    <bpmn:callActivity id="call" calledElement="shared"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>f1</bpmn:outgoing></bpmn:callActivity>
    <bpmn:sequenceFlow id="f1" sourceRef="call" targetRef="after"/>
    {script("after", ["f1"], ["f2"])}
    <bpmn:sequenceFlow id="f2" sourceRef="after" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    workflow, ran = run(source, "caller")
    assert ran == ["shared", "after"]
    assert workflow.is_completed() and workflow.data.get("shared_ran") is True


def test_receive_task_that_instantiates_starts_its_process_on_the_message(services):
    from bpmn_server.identity.principal import system_principal

    source = definitions(f"""
  <bpmn:message id="m" name="order"/>
  <bpmn:process id="receiver" isExecutable="true">
    <bpmn:receiveTask id="take" messageRef="m" instantiate="true"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:receiveTask>
    <bpmn:sequenceFlow id="f0" sourceRef="take" targetRef="work"/>
    {script("work", ["f0"], ["f1"])}
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    services.definitions.deploy(source, "receiver.bpmn", "admin")
    result = services.messages.correlate("order", principal=system_principal("tester"), variables={"n": 1})
    assert result.started and len(result.instance_ids) == 1
    assert services.instances.get(result.instance_ids[0]).status == "completed"


IO = "<bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>"
INNER = ('<bpmn:startEvent id="s2"><bpmn:outgoing>i0</bpmn:outgoing></bpmn:startEvent>'
         '<bpmn:sequenceFlow id="i0" sourceRef="s2" targetRef="e2"/>'
         '<bpmn:endEvent id="e2"><bpmn:incoming>i0</bpmn:incoming></bpmn:endEvent>')


@pytest.mark.parametrize(("fragment", "words"), [
    (f'<bpmn:subProcess id="t" startQuantity="2">{IO}{INNER}</bpmn:subProcess>', "startQuantity=2"),
    (f'<bpmn:subProcess id="t" completionQuantity="3">{IO}{INNER}</bpmn:subProcess>', "completionQuantity=3"),
    (f'<bpmn:scriptTask id="t">{IO}<bpmn:multiInstanceLoopCharacteristics behavior="One" oneBehaviorEventRef="sd">'
     '<bpmn:loopCardinality>3</bpmn:loopCardinality></bpmn:multiInstanceLoopCharacteristics>'
     '<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>', "multi-instance behavior 'One'"),
    (f'<bpmn:adHocSubProcess id="t">{IO}<bpmn:task id="inner"/></bpmn:adHocSubProcess>', "ad-hoc sub-processes"),
])
def test_constructs_the_engine_would_run_wrongly_are_refused_with_a_finding(fragment, words):
    source = definitions(f"""
  <bpmn:signal id="s" name="s"/><bpmn:signalEventDefinition id="sd" signalRef="s"/>
  <bpmn:process id="q" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
    {fragment}
    <bpmn:sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    findings = validate(BpmnDocument.load(source))
    assert any(words in f.message and f.severity == "error" and f.rule == "not-executable-element"
               for f in findings), findings


def complex_join(activation: str) -> bytes:
    """split -> fast (script) and slow (1 h timer, then script) -> complex join [activation] -> after."""
    return definitions(f"""
  <bpmn:process id="cx" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="split"/>
    <bpmn:complexGateway id="split"><bpmn:incoming>f0</bpmn:incoming>
      <bpmn:outgoing>a0</bpmn:outgoing><bpmn:outgoing>b0</bpmn:outgoing></bpmn:complexGateway>
    <bpmn:sequenceFlow id="a0" sourceRef="split" targetRef="fast"><bpmn:conditionExpression>true</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="b0" sourceRef="split" targetRef="wait"><bpmn:conditionExpression>${{go}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    {script("fast", ["a0"], ["a1"])}
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>b0</bpmn:incoming><bpmn:outgoing>b1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b1" sourceRef="wait" targetRef="slow"/>
    {script("slow", ["b1"], ["b2"])}
    <bpmn:sequenceFlow id="a1" sourceRef="fast" targetRef="join"/>
    <bpmn:sequenceFlow id="b2" sourceRef="slow" targetRef="join"/>
    <bpmn:complexGateway id="join"><bpmn:incoming>a1</bpmn:incoming><bpmn:incoming>b2</bpmn:incoming>
      <bpmn:outgoing>f9</bpmn:outgoing>
      <bpmn:activationCondition>{activation}</bpmn:activationCondition></bpmn:complexGateway>
    <bpmn:sequenceFlow id="f9" sourceRef="join" targetRef="after"/>
    {script("after", ["f9"], ["f10"])}
    <bpmn:sequenceFlow id="f10" sourceRef="after" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f10</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")


@pytest.mark.parametrize(("activation", "before_timer", "at_the_end"), [
    ("activationCount &gt;= 1", ["fast", "after"], ["fast", "after", "slow"]),  # fires at once, absorbs the late token
    ("activationCount &gt;= 2", ["fast"], ["fast", "slow", "after"]),           # waits for both tokens
])
def test_complex_gateway_fires_when_its_activation_condition_holds(services, clock, activation, before_timer,
                                                                   at_the_end):
    from datetime import timedelta

    from bpmn_server.identity.principal import system_principal

    def ran(instance_id):
        return [e["element_id"] for e in services.instances.history(instance_id)
                if e["event_type"] == "element-completed" and e["element_type"] == "scriptTask"]

    services.definitions.deploy(complex_join(activation), "cx.bpmn", "admin")
    started = services.instances.start("cx", principal=system_principal("tester"), variables={"go": True})
    assert ran(started.id) == before_timer
    clock.advance(timedelta(hours=1))
    services.timers.fire_due()
    assert ran(started.id) == at_the_end
    assert services.instances.get(started.id).status == "completed"


def test_complex_gateway_split_takes_the_flows_whose_condition_holds():
    workflow, ran = run(complex_join("activationCount &gt;= 1"), "cx", go=False)
    assert ran == ["fast", "after"] and workflow.is_completed()


def test_data_associations_connect_a_tasks_declared_output_and_input_through_a_data_object():
    source = definitions("""
  <bpmn:process id="data" isExecutable="true">
    <bpmn:dataObject id="Total" name="total"/>
    <bpmn:dataObjectReference id="TotalRef" dataObjectRef="Total"/>
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="produce"/>
    <bpmn:scriptTask id="produce"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:ioSpecification><bpmn:dataOutput id="amount"/><bpmn:inputSet/>
        <bpmn:outputSet><bpmn:dataOutputRefs>amount</bpmn:dataOutputRefs></bpmn:outputSet></bpmn:ioSpecification>
      <bpmn:dataOutputAssociation><bpmn:sourceRef>amount</bpmn:sourceRef><bpmn:targetRef>TotalRef</bpmn:targetRef>
      </bpmn:dataOutputAssociation>
      <bpmn:script>amount = 5</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f1" sourceRef="produce" targetRef="consume"/>
    <bpmn:scriptTask id="consume"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:ioSpecification><bpmn:dataInput id="given"/>
        <bpmn:inputSet><bpmn:dataInputRefs>given</bpmn:dataInputRefs></bpmn:inputSet><bpmn:outputSet/>
      </bpmn:ioSpecification>
      <bpmn:dataInputAssociation><bpmn:sourceRef>TotalRef</bpmn:sourceRef><bpmn:targetRef>given</bpmn:targetRef>
      </bpmn:dataInputAssociation>
      <bpmn:script>seen = given * factor</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="consume" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    workflow, ran = run(source, "data", factor=2)
    assert ran == ["produce", "consume"] and workflow.is_completed()
    assert workflow.data["seen"] == 10  # the output reached the input through the data object
    assert workflow.data["factor"] == 2  # and the process variables stayed visible to the task


def quantities(send: int, receive: int) -> bytes:
    """send (completionQuantity) -> forward -> receive (startQuantity) -> end."""
    return definitions(f"""
  <bpmn:process id="tokens" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="send"/>
    {script("send", ["f0"], ["f1"], f'completionQuantity="{send}"')}
    <bpmn:sequenceFlow id="f1" sourceRef="send" targetRef="forward"/>
    {script("forward", ["f1"], ["f2"])}
    <bpmn:sequenceFlow id="f2" sourceRef="forward" targetRef="receive"/>
    {script("receive", ["f2"], ["f3"], f'startQuantity="{receive}"')}
    <bpmn:sequenceFlow id="f3" sourceRef="receive" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")


@pytest.mark.parametrize(("send", "receive", "expected", "completed"), [
    (2, 1, ["send", "forward", "forward", "receive", "receive"], True),  # two tokens travel on
    (2, 2, ["send", "forward", "forward", "receive"], True),             # receive consumes both at once
    (3, 2, ["send", "forward", "forward", "forward", "receive"], False),  # the third token waits for a partner
    (1, 2, ["send", "forward"], False),                                   # one token never starts receive
])
def test_token_quantities_of_activities(send, receive, expected, completed):
    workflow, ran = run(quantities(send, receive), "tokens")
    assert sorted(ran) == sorted(expected)
    assert workflow.is_completed() is completed


def compensation_model(*, book_car: str) -> bytes:
    """book_hotel and (if ``book_car``) book_car, each with a compensation handler; then a compensation
    throw, then done."""
    return definitions(f"""
  <bpmn:process id="trip" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="book_hotel"/>
    {script("book_hotel", ["f0"], ["f1"])}
    <bpmn:sequenceFlow id="f1" sourceRef="book_hotel" targetRef="car"/>
    <bpmn:exclusiveGateway id="car" default="f_skip"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f_car</bpmn:outgoing><bpmn:outgoing>f_skip</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f_car" sourceRef="car" targetRef="book_car">
      <bpmn:conditionExpression>{book_car}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_skip" sourceRef="car" targetRef="joined"/>
    {script("book_car", ["f_car"], ["f2"])}
    <bpmn:sequenceFlow id="f2" sourceRef="book_car" targetRef="joined"/>
    <bpmn:exclusiveGateway id="joined"><bpmn:incoming>f2</bpmn:incoming><bpmn:incoming>f_skip</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f3" sourceRef="joined" targetRef="undo"/>
    <bpmn:intermediateThrowEvent id="undo"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:compensateEventDefinition waitForCompletion="true"/></bpmn:intermediateThrowEvent>
    <bpmn:sequenceFlow id="f4" sourceRef="undo" targetRef="done"/>
    {script("done", ["f4"], ["f5"])}
    <bpmn:sequenceFlow id="f5" sourceRef="done" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:boundaryEvent id="c_hotel" attachedToRef="book_hotel"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
    <bpmn:boundaryEvent id="c_car" attachedToRef="book_car"><bpmn:compensateEventDefinition/></bpmn:boundaryEvent>
    <bpmn:scriptTask id="cancel_hotel" isForCompensation="true"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="cancel_car" isForCompensation="true"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:association id="a1" sourceRef="c_hotel" targetRef="cancel_hotel"/>
    <bpmn:association id="a2" sourceRef="c_car" targetRef="cancel_car"/>
  </bpmn:process>""")


@pytest.mark.parametrize(("book_car", "expected"), [
    ("true", ["book_hotel", "book_car", "cancel_car", "cancel_hotel", "done"]),  # latest first, then go on
    ("false", ["book_hotel", "cancel_hotel", "done"]),  # only what completed is compensated
])
def test_compensation_throw_runs_the_handlers_of_completed_activities(book_car, expected):
    workflow, ran = run(compensation_model(book_car=book_car), "trip")
    assert ran == expected
    assert workflow.is_completed()


def test_compensation_event_subprocess_is_refused_with_a_finding():
    source = definitions(f"""
  <bpmn:process id="p" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="t"/>
    <bpmn:subProcess id="t">{IO}{INNER}
      <bpmn:subProcess id="undo" triggeredByEvent="true">
        <bpmn:startEvent id="cs"><bpmn:outgoing>u0</bpmn:outgoing><bpmn:compensateEventDefinition/></bpmn:startEvent>
        <bpmn:sequenceFlow id="u0" sourceRef="cs" targetRef="ue"/>
        <bpmn:endEvent id="ue"><bpmn:incoming>u0</bpmn:incoming></bpmn:endEvent>
      </bpmn:subProcess>
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f1" sourceRef="t" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    findings = validate(BpmnDocument.load(source))
    assert any("compensation event sub-processes are not supported" in f.message for f in findings), findings
