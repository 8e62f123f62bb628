"""Validation: every rule fires on the model that breaks it, with its rule id, element id, line and
severity; clean models give nothing; XSD errors carry lines; models with findings still deploy but
cannot start."""

from __future__ import annotations

import io

import pytest

from bpmn_server.errors import NotExecutable
from bpmn_server.identity import Principal
from bpmn_server.parser.document import BpmnDocument
from bpmn_server.parser.findings import Finding, errors_for_process, has_errors
from bpmn_server.parser.rules import RULES
from bpmn_server.parser.validation import validate

from .models import definitions, linear_process


def process(body: str, *, executable: bool = True, process_id: str = "p", extra: str = "") -> bytes:
    """A process with the given content (and top-level elements in ``extra``)."""
    flag = "true" if executable else "false"
    return definitions(f'{extra}\n  <bpmn:process id="{process_id}" isExecutable="{flag}">{body}\n  </bpmn:process>')


def line_of(source: bytes, marker: str) -> int:
    """The 1-based line of the first occurrence of ``marker`` in the source."""
    text = source.decode("utf-8")
    index = text.index(marker)
    return text.count("\n", 0, index) + 1


def findings_of(source: bytes) -> list[Finding]:
    return validate(BpmnDocument.load(source, "case.bpmn"))


START_END = """
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="{first}"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f_end" sourceRef="{last}" targetRef="end"/>"""


def around(body: str, first: str = "t1", last: str = "t1") -> str:
    """start -> first ... last -> end around ``body``."""
    return START_END.format(first=first, last=last) + body


GATEWAY = """
    <bpmn:task id="t1"/>
    <bpmn:sequenceFlow id="f1" sourceRef="t1" targetRef="gw"/>
    <bpmn:exclusiveGateway id="gw" {default}/>
    <bpmn:sequenceFlow id="yes" sourceRef="gw" targetRef="end">{yes}</bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="no" sourceRef="gw" targetRef="end">{no}</bpmn:sequenceFlow>"""
CONDITION = '<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" ' \
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${{amount &gt; 500}}</bpmn:conditionExpression>'


def gateway(default: str = "", yes: str = CONDITION, no: str = "") -> str:
    return START_END.format(first="t1", last="unused").replace(
        '<bpmn:sequenceFlow id="f_end" sourceRef="unused" targetRef="end"/>', "") + GATEWAY.format(
        default=default, yes=yes.replace("{{", "{").replace("}}", "}"), no=no.replace("{{", "{").replace("}}", "}"))


def timer(definition: str) -> str:
    return around(f"""
    <bpmn:task id="t1"/>
    <bpmn:boundaryEvent id="remind" attachedToRef="t1" cancelActivity="false">
      <bpmn:timerEventDefinition>{definition}</bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="f_remind" sourceRef="remind" targetRef="end_remind"/>
    <bpmn:endEvent id="end_remind"/>""")


# rule id, model, element id, marker whose line the finding must have, severity
CASES = [
    ("duplicate-id", process(around('\n    <bpmn:task id="t1"/>\n    <bpmn:task id="t1" name="again"/>')),
     "t1", 'name="again"', "error"),
    ("dangling-reference", process(around('\n    <bpmn:task id="t1"/>\n'
                                          '    <bpmn:sequenceFlow id="lost" sourceRef="t1" targetRef="ghost"/>')),
     "lost", 'id="lost"', "error"),
    ("dangling-reference", process(gateway(default='default="f_start"', no=CONDITION)),
     "gw", 'id="gw"', "error"),
    ("dangling-reference", process(around('\n    <bpmn:task id="t1"/>\n'
                                          '    <bpmn:boundaryEvent id="b" attachedToRef="end">'
                                          '<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration>'
                                          '</bpmn:timerEventDefinition></bpmn:boundaryEvent>')),
     "b", 'id="b"', "error"),
    ("dangling-reference", process(around('\n    <bpmn:callActivity id="t1" calledElement="elsewhere"/>')),
     "t1", 'id="t1"', "warning"),
    ("dangling-reference", process(around('\n    <bpmn:task id="t1"/>\n'
                                          '    <bpmn:intermediateCatchEvent id="wait">\n'
                                          '      <bpmn:messageEventDefinition messageRef="nomsg"/>\n'
                                          '    </bpmn:intermediateCatchEvent>\n'
                                          '    <bpmn:sequenceFlow id="f2" sourceRef="start" targetRef="wait"/>\n'
                                          '    <bpmn:sequenceFlow id="f3" sourceRef="wait" targetRef="end"/>')),
     "wait", 'messageRef="nomsg"', "error"),
    ("dangling-reference", process(around('\n    <bpmn:laneSet id="ls"><bpmn:lane id="clerks">\n'
                                          '      <bpmn:flowNodeRef>t1</bpmn:flowNodeRef>\n'
                                          '      <bpmn:flowNodeRef>gone</bpmn:flowNodeRef>\n'
                                          '    </bpmn:lane></bpmn:laneSet>\n    <bpmn:task id="t1"/>')),
     "clerks", "<bpmn:flowNodeRef>gone", "error"),
    ("unreachable-node", process(around('\n    <bpmn:task id="t1"/>\n    <bpmn:task id="orphan"/>\n'
                                        '    <bpmn:sequenceFlow id="f9" sourceRef="orphan" targetRef="end"/>')),
     "orphan", 'id="orphan"', "error"),
    ("no-path-to-end", process(around('\n    <bpmn:task id="t1"/>\n    <bpmn:parallelGateway id="split"/>\n'
                                      '    <bpmn:task id="stuck"/>\n'
                                      '    <bpmn:sequenceFlow id="f2" sourceRef="start" targetRef="split"/>\n'
                                      '    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="stuck"/>\n'
                                      '    <bpmn:sequenceFlow id="f4" sourceRef="split" targetRef="end"/>')),
     "stuck", 'id="stuck"', "error"),
    ("conditioned-default-flow", process(gateway(default='default="no"', no=CONDITION)),
     "no", 'id="no"', "error"),
    ("unconditioned-gateway-flow", process(gateway()), "no", 'id="no"', "warning"),
    ("gateway-without-default", process(gateway(no=CONDITION)), "gw", 'id="gw"', "info"),
    ("invalid-timer", process(timer("<bpmn:timeDuration>5 minutes</bpmn:timeDuration>")),
     "remind", "5 minutes", "error"),
    ("invalid-timer", process(timer("")), "remind", 'id="remind"', "error"),
    ("empty-process", process(""), "p", 'id="p"', "error"),
    ("no-start-event", process('\n    <bpmn:task id="t1"/>\n    <bpmn:endEvent id="end"/>\n'
                               '    <bpmn:sequenceFlow id="f1" sourceRef="t1" targetRef="end"/>'),
     "p", 'id="p"', "error"),
    ("invalid-quantity", process(around('\n    <bpmn:task id="t1" startQuantity="0"/>')),
     "t1", 'id="t1"', "error"),
    ("not-executable-element", process(around('\n    <bpmn:businessRuleTask id="t1"/>')),
     "t1", 'id="t1"', "error"),
    ("xsd", process(around('\n    <bpmn:task id="t1" bogus="1"/>')), "t1", 'bogus="1"', "error"),
]


@pytest.mark.parametrize(("rule", "source", "element_id", "marker", "severity"), CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_rule_reports_its_id_element_line_and_severity(rule, source, element_id, marker, severity):
    findings = findings_of(source)
    matching = [f for f in findings if f.rule == rule and f.element_id == element_id]
    assert matching, [(f.rule, f.element_id, f.message) for f in findings]
    finding = matching[0]
    assert finding.line == line_of(source, marker)
    assert finding.severity == severity
    assert finding.message and finding.file == "case.bpmn"
    if rule != "xsd":
        assert finding.hint, "every semantic finding tells the modeler how to fix it"
    assert not [f for f in findings if f.rule == "rule-failed"]


def test_every_registered_rule_has_a_triggering_case():
    """A new rule without a test case here fails this test."""
    covered = {case[0] for case in CASES}
    documented = {
        "duplicate_ids": {"duplicate-id"},
        "dangling_references": {"dangling-reference"},
        "unreachable_nodes": {"unreachable-node"},
        "no_path_to_end": {"no-path-to-end"},
        "gateway_flows": {"conditioned-default-flow", "unconditioned-gateway-flow", "gateway-without-default"},
        "invalid_timers": {"invalid-timer"},
        "process_shape": {"empty-process", "no-start-event"},
        "invalid_quantities": {"invalid-quantity"},
    }
    names = {rule.__name__ for rule in RULES}
    assert names <= set(documented), f"rules without cases: {names - set(documented)}"
    for name in names:
        assert documented[name] <= covered, name


@pytest.mark.parametrize("source", [
    linear_process(),
    linear_process(task="bpmn:userTask"),
    process(gateway(default='default="no"')),
    process(timer("<bpmn:timeCycle>R3/PT4H</bpmn:timeCycle>")),
    process(timer("<bpmn:timeDuration>${reminderDelay}</bpmn:timeDuration>")),
    process(timer("<bpmn:timeDate>2026-12-01T09:00:00Z</bpmn:timeDate>")),
], ids=["linear", "user-task", "gateway-with-default", "cycle-timer", "expression-timer", "date-timer"])
def test_a_clean_model_has_no_findings(source):
    assert findings_of(source) == []


def test_xsd_reports_every_error_with_its_line():
    source = process(around('\n    <bpmn:task id="t1" bogus="1"/>\n    <bpmn:task id="t2" other="2"/>\n'
                            '    <bpmn:sequenceFlow id="f2" sourceRef="t1" targetRef="t2"/>\n'
                            '    <bpmn:sequenceFlow id="f3" sourceRef="t2" targetRef="end"/>'))
    xsd = [f for f in findings_of(source) if f.rule == "xsd"]
    assert [(f.element_id, f.line) for f in xsd] == [("t1", line_of(source, 'bogus="1"')),
                                                    ("t2", line_of(source, 'other="2"'))]
    assert all("bpmn:task" in f.message and "{http" not in f.message for f in xsd), "readable prefixes"


def test_the_same_defect_is_an_error_when_executable_and_a_warning_when_descriptive():
    body = around('\n    <bpmn:task id="t1"/>\n    <bpmn:task id="orphan"/>\n'
                  '    <bpmn:sequenceFlow id="f9" sourceRef="orphan" targetRef="end"/>')
    executable = [f for f in findings_of(process(body)) if f.rule == "unreachable-node"]
    descriptive = [f for f in findings_of(process(body, executable=False)) if f.rule == "unreachable-node"]
    assert [f.severity for f in executable] == ["error"]
    assert [f.severity for f in descriptive] == ["warning"]
    assert not has_errors(findings_of(process(body, executable=False)))


def test_is_executable_is_read_as_an_xsd_boolean():
    body = around('\n    <bpmn:task id="t1"/>\n    <bpmn:task id="orphan"/>\n'
                  '    <bpmn:sequenceFlow id="f9" sourceRef="orphan" targetRef="end"/>')
    source = process(body).replace(b'isExecutable="true"', b'isExecutable="1"')
    assert [f.severity for f in findings_of(source) if f.rule == "unreachable-node"] == ["error"]
    assert BpmnDocument.load(source).processes()[0].is_executable


def test_findings_belong_to_their_process():
    fine = """
  <bpmn:process id="fine" isExecutable="true">
    <bpmn:startEvent id="fine_start"/>
    <bpmn:sequenceFlow id="fine_flow" sourceRef="fine_start" targetRef="fine_end"/>
    <bpmn:endEvent id="fine_end"/>
  </bpmn:process>"""
    source = process(around('\n    <bpmn:task id="t1" startQuantity="0"/>'), process_id="broken", extra=fine)
    findings = findings_of(source)
    assert errors_for_process(findings, "broken")
    assert errors_for_process(findings, "fine") == []


def test_findings_are_sorted_by_line_and_not_repeated():
    findings = findings_of(process(around('\n    <bpmn:task id="t1" startQuantity="0" bogus="1"/>\n'
                                          '    <bpmn:task id="orphan"/>')))
    lines = [f.line or 0 for f in findings]
    assert lines == sorted(lines)
    assert len(set(findings)) == len(findings)


# -- findings never block an import; they block a start ---------------------------------------------

BROKEN = process(around('\n    <bpmn:task id="t1"/>\n    <bpmn:task id="orphan"/>\n'
                        '    <bpmn:sequenceFlow id="f9" sourceRef="orphan" targetRef="end"/>'), process_id="broken")


def test_a_model_with_error_findings_deploys_with_them(services):
    result = services.definitions.deploy(BROKEN, "broken.bpmn", "owner")
    [definition] = result.definitions
    assert (definition.key, definition.version) == ("broken", 1)
    assert definition.error_count == 1
    [finding] = [f for f in definition.findings if f["severity"] == "error"]
    assert (finding["rule"], finding["element_id"], finding["line"]) == (
        "unreachable-node", "orphan", line_of(BROKEN, 'id="orphan"'))
    assert services.definitions.source_of(definition) == BROKEN


def test_a_model_with_xsd_errors_deploys(services):
    source = process(around('\n    <bpmn:task id="t1" bogus="1"/>'), process_id="odd")
    [definition] = services.definitions.deploy(source, "odd.bpmn", "owner").definitions
    assert [(f["rule"], f["element_id"]) for f in definition.findings] == [("xsd", "t1")]
    assert definition.error_count == 1


def test_a_model_the_engine_cannot_run_deploys_with_the_reason(services):
    source = process(around('\n    <bpmn:businessRuleTask id="t1"/>'), process_id="odd")
    [definition] = services.definitions.deploy(source, "odd.bpmn", "owner").definitions
    [finding] = definition.findings
    assert (finding["rule"], finding["element_id"]) == ("not-executable-element", "t1")
    assert "business rule tasks (DMN) are not supported" in finding["message"]
    assert definition.error_count == 1


def test_the_engine_check_waits_until_the_model_itself_is_correct():
    """A dangling flow confuses the engine's parser; only the model's own error is reported."""
    source = process(around('\n    <bpmn:task id="t1"/>\n'
                            '    <bpmn:sequenceFlow id="lost" sourceRef="t1" targetRef="ghost"/>'))
    assert [f.rule for f in findings_of(source)] == ["dangling-reference"]


def test_the_api_shows_findings_and_that_the_version_cannot_start(client, auth):
    response = client.post("/api/v1/deployments", headers=auth, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(BROKEN), "broken.bpmn")})
    assert response.status_code == 201
    [definition] = response.json["definitions"]
    assert definition["error_count"] == 1 and definition["startable"] is False
    assert definition["findings"][0]["rule"] == "unreachable-node"
    clean = client.post("/api/v1/deployments", headers=auth, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(linear_process()), "simple.bpmn")}).json["definitions"][0]
    assert clean["error_count"] == 0 and clean["startable"] is True


def test_a_process_with_error_findings_cannot_be_started(services):
    services.definitions.deploy(BROKEN, "broken.bpmn", "owner")
    instances = getattr(services, "instances", None)
    if instances is None:
        pytest.skip("the runtime is not part of the services facade yet; error_count is checked above")
    with pytest.raises(NotExecutable) as refused:
        instances.start("broken", principal=Principal("owner"))
    assert "error finding" in refused.value.detail


def test_every_rule_id_is_documented():
    from .conftest import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "validation-rules.md").read_text(encoding="utf-8")
    rule_ids = {case[0] for case in CASES} | {"not-well-formed", "not-bpmn", "hostile-xml", "too-large",
                                              "unreadable", "rule-failed"}
    assert [rule for rule in sorted(rule_ids) if f"`{rule}`" not in text] == []
