"""Messages and signals: correlation to a waiting instance (business key, correlation keys), message
start events, ambiguity and unknown names, signal broadcast, messages thrown between instances."""

from __future__ import annotations

import pytest

from bpmn_server.errors import Conflict, NotFound

from .models import definitions
from .runtime_helpers import ADMIN, CLERK, message_processes


@pytest.fixture
def deployed(services):
    services.definitions.deploy(message_processes(), "messages.bpmn", "admin")
    return services


def test_message_reaches_the_instance_with_that_business_key(deployed):
    services = deployed
    first = services.instances.start("order", principal=CLERK, business_key="O-1")
    second = services.instances.start("order", principal=CLERK, business_key="O-2")
    assert services.instances.get(first.id).status == "waiting"
    result = services.messages.correlate("Payment received", principal=ADMIN, business_key="O-2",
                                         variables={"paid": 120})
    assert result.instance_ids == [second.id] and result.started is False
    reached = services.instances.get(second.id)
    assert reached.status == "running" and reached.variables["paid"] == 120
    assert [a.element_id for a in reached.activities] == ["ship"]
    assert services.instances.get(first.id).status == "waiting"
    history = services.instances.history(second.id)
    assert ("message-received", "wait_payment") in [(e["event_type"], e["element_id"]) for e in history]
    # the second message finds nobody waiting with that key any more
    with pytest.raises(NotFound):
        services.messages.correlate("Payment received", principal=ADMIN, business_key="O-2")


def test_ambiguous_and_unknown_messages(deployed):
    services = deployed
    a = services.instances.start("order", principal=CLERK, business_key="O-1")
    b = services.instances.start("order", principal=CLERK, business_key="O-2")
    with pytest.raises(Conflict) as ambiguous:
        services.messages.correlate("Payment received", principal=ADMIN)
    assert ambiguous.value.extra["matches"] == 2
    with pytest.raises(NotFound) as unknown:
        services.messages.correlate("Refund approved", principal=ADMIN)
    assert "Refund approved" in unknown.value.detail
    everyone = services.messages.correlate("Payment received", principal=ADMIN, all=True)
    assert sorted(everyone.instance_ids) == sorted([a.id, b.id])


def test_correlation_keys_match_process_variables(deployed):
    services = deployed
    services.instances.start("order", principal=CLERK, variables={"order_no": 7})
    wanted = services.instances.start("order", principal=CLERK, variables={"order_no": 8})
    result = services.messages.correlate("Payment received", principal=ADMIN, correlation_keys={"order_no": 8})
    assert result.instance_ids == [wanted.id]
    with pytest.raises(NotFound):
        services.messages.correlate("Payment received", principal=ADMIN, correlation_keys={"order_no": 9})


def test_message_start_event_starts_an_instance(deployed):
    services = deployed
    result = services.messages.correlate("Customer inquiry", principal=ADMIN, business_key="C-5",
                                         variables={"question": "Where is my parcel?"})
    assert result.started is True and len(result.instance_ids) == 1
    started = services.instances.get(result.instance_ids[0])
    assert started.definition_key == "inquiry" and started.business_key == "C-5"
    assert started.variables["question"] == "Where is my parcel?"
    assert [a.element_id for a in started.activities] == ["answer"]


def test_signal_reaches_every_waiting_instance(deployed):
    services = deployed
    waiting = [services.instances.start("alarm", principal=CLERK) for _ in range(3)]
    result = services.messages.signal("Storm warning", principal=ADMIN, variables={"level": 3})
    assert sorted(result.instance_ids) == sorted(i.id for i in waiting)
    for instance in waiting:
        done = services.instances.get(instance.id)
        assert done.status == "completed" and done.variables["level"] == 3
    assert services.messages.signal("Storm warning", principal=ADMIN).instance_ids == []


def test_message_thrown_by_one_instance_reaches_another(services):
    services.definitions.deploy(message_processes(), "messages.bpmn", "admin")
    services.definitions.deploy(definitions("""
  <bpmn:message id="m_paid" name="Payment received"/>
  <bpmn:process id="payer" isExecutable="true">
    <bpmn:startEvent id="p_start"><bpmn:outgoing>p1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateThrowEvent id="pay"><bpmn:incoming>p1</bpmn:incoming><bpmn:outgoing>p2</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m_paid"/></bpmn:intermediateThrowEvent>
    <bpmn:endEvent id="p_end"><bpmn:incoming>p2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="p1" sourceRef="p_start" targetRef="pay"/>
    <bpmn:sequenceFlow id="p2" sourceRef="pay" targetRef="p_end"/>
  </bpmn:process>"""), "payer.bpmn", "admin")
    other = services.instances.start("order", principal=CLERK, business_key="O-1")
    order = services.instances.start("order", principal=CLERK, business_key="O-7")
    payer = services.instances.start("payer", principal=CLERK, business_key="O-7", variables={"paid": 99})
    assert services.instances.get(payer.id).status == "completed"
    reached = services.instances.get(order.id)
    assert reached.status == "running" and reached.variables["paid"] == 99
    assert services.instances.get(other.id).status == "waiting"


EVENT_GATEWAY = definitions("""
  <bpmn:message id="m_go" name="Go ahead"/>
  <bpmn:process id="race" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="which_first"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="go"><bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m_go"/></bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="too_late"><bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="went"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="timed_out"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="which_first"/>
    <bpmn:sequenceFlow id="f2" sourceRef="which_first" targetRef="go"/>
    <bpmn:sequenceFlow id="f3" sourceRef="which_first" targetRef="too_late"/>
    <bpmn:sequenceFlow id="f4" sourceRef="go" targetRef="went"/>
    <bpmn:sequenceFlow id="f5" sourceRef="too_late" targetRef="timed_out"/>
  </bpmn:process>""")


def test_message_on_an_event_based_gateway_wins_over_its_timer(services, clock):
    from datetime import timedelta

    from sqlalchemy import select

    from bpmn_server.store.models import MessageWait, Timer

    services.definitions.deploy(EVENT_GATEWAY, "race.bpmn", "admin")
    messaged = services.instances.start("race", principal=CLERK, business_key="R-1")
    timed = services.instances.start("race", principal=CLERK, business_key="R-2")
    with services.database.read() as session:
        assert {w.message_name for w in session.scalars(select(MessageWait))} == {"Go ahead"}
        assert len(session.scalars(select(Timer).where(Timer.status == "waiting")).all()) == 2
    services.messages.correlate("Go ahead", principal=ADMIN, business_key="R-1")
    services.instances.apply(timed.id, lambda workflow: None, actor="system:timer",
                             now=clock.now() + timedelta(hours=1))
    went = [(e["event_type"], e["element_id"]) for e in services.instances.history(messaged.id)]
    late = [(e["event_type"], e["element_id"]) for e in services.instances.history(timed.id)]
    assert ("element-completed", "went") in went and ("element-completed", "timed_out") not in went
    assert ("element-completed", "timed_out") in late and ("element-completed", "went") not in late
    assert services.instances.get(messaged.id).status == services.instances.get(timed.id).status == "completed"
    with services.database.read() as session:
        assert session.scalars(select(MessageWait)).all() == []
        assert {t.status for t in session.scalars(select(Timer))} == {"cancelled", "fired"}
