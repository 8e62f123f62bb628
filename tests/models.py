"""Small BPMN models built in code for tests (so each test states the model it depends on)."""

from __future__ import annotations

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
    'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
    'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
    'id="Definitions_1" targetNamespace="http://bpmn.io/schema/bpmn">\n'
)


def definitions(body: str) -> bytes:
    """Wrap process XML in a bpmn:definitions element."""
    return (HEADER + body + "\n</bpmn:definitions>\n").encode("utf-8")


def linear_process(process_id: str = "simple", name: str = "Simple", *, task: str = "bpmn:task",
                   executable: bool = True, label: str = "Do it") -> bytes:
    """start -> one task -> end."""
    return definitions(f"""
  <bpmn:process id="{process_id}" name="{name}" isExecutable="{'true' if executable else 'false'}">
    <bpmn:documentation>Purpose of {name}.</bpmn:documentation>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <{task} id="work" name="{label}"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></{task}>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
  </bpmn:process>""")
