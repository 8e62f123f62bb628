"""Helpers for the web page tests: signing in through the real form, reading CSRF tokens, models."""

from __future__ import annotations

import re

from tests.models import definitions

PASSWORDS = {"clerk": "clerk-demo", "manager": "manager-demo", "owner": "owner-demo"}

BROKEN_MODEL = definitions("""
  <bpmn:process id="broken" name="Broken process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="work" name="Work"><bpmn:incoming>f1</bpmn:incoming></bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="nowhere"/>
  </bpmn:process>""")

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token of a page's first form (or its meta tag)."""
    match = _CSRF.search(html) or _META_CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def fast_password_hashing(monkeypatch) -> None:
    """Cheap Argon2 parameters for tests (a real sign-in verifies with the parameters in the hash)."""
    from argon2 import PasswordHasher

    monkeypatch.setattr("bpmn_server.identity.service._passwords",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def create_people(services) -> None:
    """A clerk, a manager and a process owner with demo passwords."""
    services.identity.create_user("clerk", password=PASSWORDS["clerk"], groups=["clerks"])
    services.identity.create_user("manager", password=PASSWORDS["manager"], groups=["managers"])
    services.identity.create_user("owner", password=PASSWORDS["owner"], groups=["owners"])


def sign_in(client, username: str, password: str | None = None, *, next_url: str = "/processes"):
    """Sign in through the form, as a browser does; returns the response of the POST."""
    page = client.get(f"/login?next={next_url}")
    return client.post("/login", data={
        "username": username,
        "password": PASSWORDS.get(username, "") if password is None else password,
        "next": next_url,
        "csrf_token": csrf_from(page.get_data(as_text=True)),
    })


def page_token(client, url: str = "/processes") -> str:
    """The CSRF token the pages of this session carry."""
    return csrf_from(client.get(url).get_data(as_text=True))


def drawn_process(process_id: str = "drawn", name: str = "Drawn process", *, label: str = "Check the receipt",
                  broken_timer: bool = False) -> bytes:
    """start -> user task -> end, with diagram shapes so bpmn-js can draw it. With ``broken_timer`` the
    end is a timer event whose duration is not ISO-8601: an error finding on a drawn element."""
    end = (
        '<bpmn:intermediateCatchEvent id="end" name="Wait"><bpmn:incoming>f2</bpmn:incoming>'
        '<bpmn:timerEventDefinition id="end_timer"><bpmn:timeDuration>in a while</bpmn:timeDuration>'
        '</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>'
    ) if broken_timer else '<bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>'
    return definitions(f"""
  <bpmn:process id="{process_id}" name="{name}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="work" name="{label}" camunda:candidateGroups="clerks">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    {end}
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram"><bpmndi:BPMNPlane id="plane" bpmnElement="{process_id}">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="152" y="82" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="work_di" bpmnElement="work"><dc:Bounds x="270" y="60" width="100" height="80"/></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="432" y="82" width="36" height="36"/></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="188" y="100"/><di:waypoint x="270" y="100"/></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="370" y="100"/><di:waypoint x="432" y="100"/></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>""")
