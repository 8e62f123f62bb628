"""Validate a BPMN document: XSD errors and semantic findings in one list, sorted by line."""

from __future__ import annotations

import logging
from dataclasses import replace

from ..errors import DocumentTooLarge, HostileDocument, InvalidDocument
from .document import BpmnDocument
from .findings import Finding
from .rules import check_rules
from .spec import spec_findings
from .xsd import validate_xsd

log = logging.getLogger(__name__)

_LOAD_RULES = {
    "not-well-formed": "the file must be well-formed XML; fix the syntax at the given line and column",
    "not-bpmn": "export the model as BPMN 2.0 XML (root element bpmn:definitions in namespace "
    "http://www.omg.org/spec/BPMN/20100524/MODEL)",
    "hostile-xml": "remove the DOCTYPE/ENTITY declarations; BPMN files never need them",
    "too-large": "split the model or raise the server's size limits",
}


def validate(document: BpmnDocument, *, engine: bool = True) -> list[Finding]:
    """All XSD errors, semantic findings and engine findings of a loaded document, sorted by line.

    Engine findings (``not-executable-element``) say which element of an executable process the
    runtime cannot run, and why; a model with them still imports (see docs/validation-rules.md).
    ``engine=False`` checks BPMN validity only (XSD and semantic rules), as for interchange.
    """
    findings = validate_xsd(document) + check_rules(document)
    if engine:
        # The engine check runs on processes that are otherwise free of errors: on a broken model the
        # engine's message only repeats the problem in its own terms (or names the wrong element).
        broken = {f.process_id for f in findings if f.severity == "error"}
        if None not in broken:
            findings += [f for f in _engine_findings(document) if f.process_id not in broken]
    unique = list(dict.fromkeys(findings))  # a rule registered twice must not report twice
    return sorted(unique, key=_order)


_ENGINE_HINT = (
    "model the step with an element the engine runs (see docs/validation-rules.md), or set "
    'isExecutable="false" on the process if it only documents the work'
)


def _engine_findings(document: BpmnDocument) -> list[Finding]:
    try:
        return [
            replace(f, file=f.file or document.name, hint=f.hint or _ENGINE_HINT) for f in spec_findings(document)
        ]
    except Exception as err:  # noqa: BLE001 - validation reports, it never crashes on a model
        log.exception("engine check failed on %s", document.name)
        return [Finding(rule="rule-failed", severity="warning", file=document.name,
                        message=f"the engine check could not run: {err}")]


def validate_source(source: bytes, name: str, *, engine: bool = True, **limits: int) -> list[Finding]:
    """Load and validate bytes; a file that cannot be loaded gives one error finding saying why.

    ``limits`` are passed to ``BpmnDocument.load`` (``max_bytes``, ``max_depth``, ``max_elements``).
    """
    try:
        document = BpmnDocument.load(source, name, **limits)
    except InvalidDocument as err:
        return [load_error_finding(err, name)]
    return validate(document, engine=engine)


def load_error_finding(err: InvalidDocument, name: str) -> Finding:
    """The finding for a file that was refused at load time."""
    rule = load_error_rule(err)
    return Finding(
        rule=rule,
        severity="error",
        message=err.detail,
        line=err.line,
        column=err.column,
        hint=_LOAD_RULES[rule],
        file=name,
    )


def load_error_rule(err: InvalidDocument) -> str:
    """The rule id of a load error: too-large, hostile-xml, not-bpmn or not-well-formed."""
    if isinstance(err, DocumentTooLarge):
        return "too-large"
    if isinstance(err, HostileDocument):
        return "hostile-xml"
    return "not-bpmn" if err.extra.get("reason") == "not-bpmn" else "not-well-formed"


def _order(finding: Finding) -> tuple[int, int, str, str]:
    return (finding.line or 0, finding.column or 0, finding.rule, finding.element_id or "")
