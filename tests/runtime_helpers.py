"""Models and helpers shared by the runtime, task and instance tests."""

from __future__ import annotations

import io
import threading

from bpmn_server.identity.principal import Principal

from .conftest import DIAGRAMS_DIR
from .models import definitions

REFUND = DIAGRAMS_DIR / "refund-request.bpmn"

CLERK = Principal("clerk", frozenset({"clerks"}))
MANAGER = Principal("manager", frozenset({"managers"}))
ACCOUNTANT = Principal("accountant", frozenset({"accounting"}))
OUTSIDER = Principal("outsider", frozenset({"sales"}))
ADMIN = Principal("admin", frozenset({"admins"}), is_admin=True)

PEOPLE = {"clerk": ["clerks"], "manager": ["managers"], "accountant": ["accounting"], "outsider": ["sales"],
          "lead": ["finance-leads"]}

REVIEW = {"customer_name": "Ann Smith", "order_id": "A-1001", "amount": 700, "reason": "damaged"}


def deploy_refund(services) -> None:
    services.definitions.deploy(REFUND.read_bytes(), "refund-request.bpmn", "admin")


def create_people(services) -> dict[str, dict[str, str]]:
    """The refund example's people as users with tokens: name -> bearer header."""
    headers = {}
    for name, groups in PEOPLE.items():
        services.identity.create_user(name, groups=groups)
        token = services.identity.create_token(name).token
        headers[name] = {"Authorization": f"Bearer {token}"}
    return headers


def upload(client, auth, source: bytes, name: str = "model.bpmn"):
    return client.post("/api/v1/deployments", headers=auth, data={"file": (io.BytesIO(source), name)},
                       content_type="multipart/form-data")


def approval_process(process_id: str = "approval") -> bytes:
    """start -> review (clerks, amount form) -> ${amount > 500}? approve (managers) : done."""
    return definitions(f"""
  <bpmn:process id="{process_id}" name="Approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="Review" camunda:candidateGroups="clerks">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="amount" label="Amount" type="long">
          <camunda:validation><camunda:constraint name="required"/></camunda:validation>
        </camunda:formField>
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="big" default="small"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>large</bpmn:outgoing><bpmn:outgoing>small</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:userTask id="approve" name="Approve" camunda:candidateGroups="managers">
      <bpmn:incoming>large</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="approved_end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="small_end"><bpmn:incoming>small</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="big"/>
    <bpmn:sequenceFlow id="large" sourceRef="big" targetRef="approve">
      <bpmn:conditionExpression>${{amount &gt; 500 &amp;&amp; !(amount == 999)}}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="small" sourceRef="big" targetRef="small_end"/>
    <bpmn:sequenceFlow id="f3" sourceRef="approve" targetRef="approved_end"/>
  </bpmn:process>""")


def script_process(script: str = "total = price * quantity", process_id: str = "scripted") -> bytes:
    """start -> script -> task 'check' (anyone) -> end."""
    return definitions(f"""
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="compute" name="Compute total" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="check" name="Check total"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="compute"/>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="end"/>
  </bpmn:process>""")


def message_processes() -> bytes:
    """'order' waits for message 'Payment received'; 'inquiry' starts with message 'Customer inquiry';
    'alarm' waits for signal 'Storm warning'."""
    return definitions("""
  <bpmn:message id="m_paid" name="Payment received"/>
  <bpmn:message id="m_inquiry" name="Customer inquiry"/>
  <bpmn:signal id="s_storm" name="Storm warning"/>
  <bpmn:process id="order" isExecutable="true">
    <bpmn:startEvent id="o_start"><bpmn:outgoing>o1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_payment" name="Payment received">
      <bpmn:incoming>o1</bpmn:incoming><bpmn:outgoing>o2</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m_paid"/></bpmn:intermediateCatchEvent>
    <bpmn:userTask id="ship" name="Ship order"><bpmn:incoming>o2</bpmn:incoming>
      <bpmn:outgoing>o3</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="o_end"><bpmn:incoming>o3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="o1" sourceRef="o_start" targetRef="wait_payment"/>
    <bpmn:sequenceFlow id="o2" sourceRef="wait_payment" targetRef="ship"/>
    <bpmn:sequenceFlow id="o3" sourceRef="ship" targetRef="o_end"/>
  </bpmn:process>
  <bpmn:process id="inquiry" isExecutable="true">
    <bpmn:startEvent id="i_start" name="Inquiry received"><bpmn:outgoing>i1</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m_inquiry"/></bpmn:startEvent>
    <bpmn:userTask id="answer" name="Answer inquiry"><bpmn:incoming>i1</bpmn:incoming>
      <bpmn:outgoing>i2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="i_end"><bpmn:incoming>i2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="i1" sourceRef="i_start" targetRef="answer"/>
    <bpmn:sequenceFlow id="i2" sourceRef="answer" targetRef="i_end"/>
  </bpmn:process>
  <bpmn:process id="alarm" isExecutable="true">
    <bpmn:startEvent id="a_start"><bpmn:outgoing>a1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="storm" name="Storm warning">
      <bpmn:incoming>a1</bpmn:incoming><bpmn:outgoing>a2</bpmn:outgoing>
      <bpmn:signalEventDefinition signalRef="s_storm"/></bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="a_end"><bpmn:incoming>a2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="a1" sourceRef="a_start" targetRef="storm"/>
    <bpmn:sequenceFlow id="a2" sourceRef="storm" targetRef="a_end"/>
  </bpmn:process>""")


def race(calls) -> list:
    """Run the calls at the same moment in threads; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test inspects what each caller got
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results
