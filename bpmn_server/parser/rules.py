"""Semantic validation rules: what the XSD cannot see, each rule with a stable id.

A rule is a function taking a ``RuleContext`` and yielding ``Finding`` objects. Structural
problems are errors in executable processes and warnings (or info) in descriptive ones, so a
documentation-only model never gets an error it cannot act on. ``register_rule`` adds a rule from
another layer (the runtime adds ``not-executable-element``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

from lxml import etree

from .document import FLOW_NODE_TAGS, BpmnDocument, xsd_true
from .findings import Finding, Severity
from .namespaces import BPMN, BPMNDI, DC, DI, local_name, namespace_of, q
from .timer_text import TIMER_KINDS, TimerTextError, parse_timer

log = logging.getLogger(__name__)

Rule = Callable[["RuleContext"], Iterable[Finding]]
RULES: list[Rule] = []

SCOPE_TAGS = frozenset({"process", "subProcess", "transaction", "adHocSubProcess"})
ACTIVITY_TAGS = frozenset(
    {
        "task",
        "userTask",
        "manualTask",
        "serviceTask",
        "scriptTask",
        "businessRuleTask",
        "sendTask",
        "receiveTask",
        "callActivity",
        "subProcess",
        "transaction",
        "adHocSubProcess",
    }
)
GLOBAL_TASK_TAGS = frozenset(
    {"globalTask", "globalUserTask", "globalManualTask", "globalScriptTask", "globalBusinessRuleTask"}
)
CONDITIONAL_GATEWAYS = frozenset({"exclusiveGateway", "inclusiveGateway"})
OMG_NAMESPACES = frozenset({BPMN, BPMNDI, DC, DI})


def register_rule(rule: Rule) -> Rule:
    """Add a rule to every later validation (usable as a decorator); registering twice is a no-op."""
    if rule not in RULES:
        RULES.append(rule)
    return rule


def check_rules(document: BpmnDocument, rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Every finding of the semantic rules, in rule order; a failing rule is reported, not raised."""
    context = RuleContext(document)
    findings: list[Finding] = []
    for rule in list(RULES if rules is None else rules):
        try:
            findings.extend(rule(context))
        except Exception as err:  # a bug in one rule must not hide the others' findings
            log.exception("validation rule %s failed on %s", getattr(rule, "__name__", rule), document.name)
            findings.append(
                Finding(
                    rule="rule-failed",
                    severity="warning",
                    message=f"the check {getattr(rule, '__name__', rule)!s} could not run: {err}",
                    file=document.name,
                )
            )
    return findings


# -- the model as the rules see it -------------------------------------------------------------


def is_bpmn(element: etree._Element, *locals_: str) -> bool:
    """True for a BPMN-namespace element with one of these local names."""
    return namespace_of(element.tag) == BPMN and local_name(element.tag) in locals_


def ref_id(value: str | None) -> str | None:
    """The id a reference names: QName references (``tns:Process_1``) drop their prefix."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    return value.rsplit(":", 1)[-1]


@dataclass
class Scope:
    """A process or sub-process: the flow nodes and sequence flows directly inside it."""

    element: etree._Element
    nodes: dict[str, etree._Element] = field(default_factory=dict)
    flows: list[etree._Element] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return local_name(self.element.tag)

    @property
    def is_event_subprocess(self) -> bool:
        return self.kind != "process" and xsd_true(self.element.get("triggeredByEvent"))

    def starts(self) -> list[etree._Element]:
        return [node for node in self.nodes.values() if local_name(node.tag) == "startEvent"]

    def ends(self) -> list[etree._Element]:
        return [node for node in self.nodes.values() if local_name(node.tag) == "endEvent"]

    def valid_flows(self) -> Iterator[tuple[etree._Element, str, str]]:
        """(flow, source id, target id) for flows whose both ends are flow nodes of this scope."""
        for flow in self.flows:
            source, target = ref_id(flow.get("sourceRef")), ref_id(flow.get("targetRef"))
            if source in self.nodes and target in self.nodes:
                yield flow, source, target

    def outgoing(self, node_id: str) -> list[etree._Element]:
        return [flow for flow, source, _ in self.valid_flows() if source == node_id]


class RuleContext:
    """One document prepared for the rules: scopes, severities and a finding builder."""

    def __init__(self, document: BpmnDocument) -> None:
        self.document = document
        self.root = document.root

    @cached_property
    def scopes(self) -> list[Scope]:
        scopes = []
        for element in self.root.iter(*(q(tag) for tag in SCOPE_TAGS)):
            scope = Scope(element)
            for child in element:
                if namespace_of(child.tag) != BPMN:
                    continue
                tag = local_name(child.tag)
                if tag in FLOW_NODE_TAGS and child.get("id"):
                    scope.nodes.setdefault(child.get("id"), child)
                elif tag == "sequenceFlow":
                    scope.flows.append(child)
            scopes.append(scope)
        return scopes

    @cached_property
    def ids(self) -> dict[str, etree._Element]:
        return self.document.elements_by_id

    def process_of(self, element: etree._Element | None) -> etree._Element | None:
        """The top-level ``bpmn:process`` an element belongs to (None outside any process)."""
        while element is not None:
            if element.tag == q("process") and element.getparent() is self.root:
                return element
            element = element.getparent()
        return None

    def is_executable(self, element: etree._Element | None) -> bool:
        process = self.process_of(element)
        return process is not None and xsd_true(process.get("isExecutable"))

    def severity(
        self, element: etree._Element, executable: Severity = "error", descriptive: Severity = "warning"
    ) -> Severity:
        """The severity of a finding on this element: stricter inside executable processes."""
        return executable if self.is_executable(element) else descriptive

    def finding(
        self,
        rule: str,
        element: etree._Element,
        message: str,
        *,
        hint: str | None = None,
        severity: Severity | None = None,
    ) -> Finding:
        process = self.process_of(element)
        return Finding(
            rule=rule,
            severity=severity or self.severity(element),
            message=message,
            element_id=element.get("id") or _nearest_id(element),
            line=element.sourceline,
            process_id=process.get("id") if process is not None else None,
            hint=hint,
            file=self.document.name,
        )


def describe(element: etree._Element) -> str:
    """``userTask 'Approve refund' (Task_1)`` — how a modeler recognises an element."""
    name = " ".join((element.get("name") or "").split())
    label = f"{local_name(element.tag)} '{name}'" if name else local_name(element.tag)
    element_id = element.get("id")
    return f"{label} ({element_id})" if element_id else label


def _nearest_id(element: etree._Element | None) -> str | None:
    while element is not None:
        if element.get("id"):
            return element.get("id")
        element = element.getparent()
    return None


def _text(element: etree._Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


# -- rules -------------------------------------------------------------------------------------


@register_rule
def duplicate_ids(ctx: RuleContext) -> Iterator[Finding]:
    """``duplicate-id``: two elements share an id, so references to it are ambiguous."""
    for element_id, all_elements in ctx.document.duplicate_ids().items():
        # vendor extension elements may carry an "id" of their own that is no BPMN id
        elements = [element for element in all_elements if namespace_of(element.tag) in OMG_NAMESPACES]
        if len(elements) < 2:
            continue
        first = elements[0]
        for element in elements[1:]:
            yield ctx.finding(
                "duplicate-id",
                element,
                f"the id '{element_id}' of this {local_name(element.tag)} is already used by "
                f"{local_name(first.tag)} at line {first.sourceline}",
                hint="give every element its own id; references to a shared id reach the first one only",
                severity="error",
            )


_EVENT_REFS = (
    ("messageEventDefinition", "messageRef", "message"),
    ("signalEventDefinition", "signalRef", "signal"),
    ("errorEventDefinition", "errorRef", "error"),
    ("escalationEventDefinition", "escalationRef", "escalation"),
    ("sendTask", "messageRef", "message"),
    ("receiveTask", "messageRef", "message"),
)


@register_rule
def dangling_references(ctx: RuleContext) -> Iterator[Finding]:
    """``dangling-reference``: an attribute or element names an id that is missing or of the wrong kind."""
    rule = "dangling-reference"
    for scope in ctx.scopes:
        where = "process" if scope.kind == "process" else "sub-process"
        for flow in scope.flows:
            for attribute in ("sourceRef", "targetRef"):
                target = ref_id(flow.get(attribute))
                if target is None:
                    continue  # a missing attribute is an XSD error already
                if target in scope.nodes:
                    continue
                if target not in ctx.ids:
                    message = (
                        f"sequence flow {flow.get('id')} has {attribute}='{target}', which does not exist"
                    )
                    hint = "connect the flow to an existing element, or delete it"
                else:
                    message = (
                        f"sequence flow {flow.get('id')} has {attribute}='{target}', which is a "
                        f"{local_name(ctx.ids[target].tag)} outside this {where}"
                    )
                    hint = "sequence flows connect flow nodes of the same process or sub-process only"
                yield ctx.finding(rule, flow, message, hint=hint)
        for node in scope.nodes.values():
            default = ref_id(node.get("default"))
            if default is not None:
                flow = ctx.ids.get(default)
                if (
                    flow is None
                    or not is_bpmn(flow, "sequenceFlow")
                    or ref_id(flow.get("sourceRef")) != node.get("id")
                ):
                    yield ctx.finding(
                        rule,
                        node,
                        f"{describe(node)} names '{default}' as its default flow, but that is not one of its "
                        "outgoing sequence flows",
                        hint="choose one of the element's outgoing flows as default, or remove the default",
                    )
            if local_name(node.tag) == "boundaryEvent":
                host = ref_id(node.get("attachedToRef"))
                if host is not None and (
                    host not in scope.nodes or local_name(scope.nodes[host].tag) not in ACTIVITY_TAGS
                ):
                    yield ctx.finding(
                        rule,
                        node,
                        f"boundary event {node.get('id')} is attached to '{host}', which is not an activity of "
                        f"this {where}",
                        hint="attach the boundary event to a task or sub-process in the diagram",
                    )
    yield from _called_elements(ctx)
    yield from _event_references(ctx)
    yield from _lane_references(ctx)
    yield from _collaboration_references(ctx)


def _called_elements(ctx: RuleContext) -> Iterator[Finding]:
    for call in ctx.root.iter(q("callActivity")):
        called = ref_id(call.get("calledElement"))
        if called is None:
            continue
        target = ctx.ids.get(called)
        if target is None:
            yield ctx.finding(
                "dangling-reference",
                call,
                f"call activity {call.get('id')} calls '{called}', which is not a process of this file",
                hint="deploy the called process too (its process id must be the calledElement), "
                "or correct the calledElement",
                severity=ctx.severity(call, "warning", "info"),
            )
        elif not (is_bpmn(target, "process") or local_name(target.tag) in GLOBAL_TASK_TAGS):
            yield ctx.finding(
                "dangling-reference",
                call,
                f"call activity {call.get('id')} calls '{called}', which is a {local_name(target.tag)}, "
                "not a process or global task",
                hint="set calledElement to the id of a process",
            )


def _event_references(ctx: RuleContext) -> Iterator[Finding]:
    for owner_tag, attribute, expected in _EVENT_REFS:
        for element in ctx.root.iter(q(owner_tag)):
            referenced = ref_id(element.get(attribute))
            if referenced is None:
                continue
            target = ctx.ids.get(referenced)
            if target is not None and is_bpmn(target, expected):
                continue
            what = "does not exist" if target is None else f"is a {local_name(target.tag)}, not a {expected}"
            yield ctx.finding(
                "dangling-reference",
                element,
                f"{local_name(element.tag)} of {describe(_owner(element))} has {attribute}='{referenced}', "
                f"which {what}",
                hint=f"define a bpmn:{expected} at the top of the file and reference its id",
            )
    for reference in ctx.root.iter(q("eventDefinitionRef")):
        referenced = ref_id(_text(reference))
        target = ctx.ids.get(referenced or "")
        if target is None or not local_name(target.tag).endswith("EventDefinition"):
            yield ctx.finding(
                "dangling-reference",
                reference,
                f"{describe(_owner(reference))} refers to event definition '{referenced}', which "
                + ("does not exist" if target is None else f"is a {local_name(target.tag)}"),
                hint="reference an event definition declared at the top level of the file",
            )


def _owner(element: etree._Element) -> etree._Element:
    """The event or task an event definition belongs to."""
    parent = element.getparent()
    if local_name(element.tag).endswith("EventDefinition") or local_name(element.tag) == "eventDefinitionRef":
        return parent if parent is not None else element
    return element


def _lane_references(ctx: RuleContext) -> Iterator[Finding]:
    for lane in ctx.root.iter(q("lane")):
        for reference in lane.findall(q("flowNodeRef")):
            node_id = ref_id(_text(reference))
            node = ctx.ids.get(node_id or "")
            if node is not None and namespace_of(node.tag) == BPMN and local_name(node.tag) in FLOW_NODE_TAGS:
                continue
            yield ctx.finding(
                "dangling-reference",
                reference,
                f"lane {describe(lane)} lists flow node '{node_id}', which "
                + ("does not exist" if node is None else f"is a {local_name(node.tag)}, not a flow node"),
                hint="remove the entry from the lane, or move the element back into the lane in the diagram",
            )


def _collaboration_references(ctx: RuleContext) -> Iterator[Finding]:
    for participant in ctx.root.iter(q("participant")):
        process_id = ref_id(participant.get("processRef"))
        target = ctx.ids.get(process_id or "")
        if process_id is not None and (target is None or not is_bpmn(target, "process")):
            yield ctx.finding(
                "dangling-reference",
                participant,
                f"pool {describe(participant)} has processRef='{process_id}', which is not a process of this file",
                hint="point the pool at one of the file's processes, or make it a black-box pool",
                severity="warning",
            )
    for flow in ctx.root.iter(q("messageFlow")):
        for attribute in ("sourceRef", "targetRef"):
            target = ref_id(flow.get(attribute))
            if target is not None and target not in ctx.ids:
                yield ctx.finding(
                    "dangling-reference",
                    flow,
                    f"message flow {flow.get('id')} has {attribute}='{target}', which does not exist",
                    hint="connect the message flow to a pool or a flow node",
                    severity="warning",
                )


def _graph(ctx: RuleContext, scope: Scope) -> dict[str, list[str]]:
    """Successors of each node: sequence flows, activity -> its boundary events, link throw -> catch."""
    successors: dict[str, list[str]] = {node_id: [] for node_id in scope.nodes}
    for _, source, target in scope.valid_flows():
        successors[source].append(target)
    link_catches: dict[str, list[str]] = {}
    for node_id, node in scope.nodes.items():
        tag = local_name(node.tag)
        if tag == "boundaryEvent":
            host = ref_id(node.get("attachedToRef"))
            if host in successors:
                successors[host].append(node_id)
        elif tag == "intermediateCatchEvent":
            for link in node.findall(q("linkEventDefinition")):
                link_catches.setdefault((link.get("name") or "").strip(), []).append(node_id)
    for node_id, node in scope.nodes.items():
        if local_name(node.tag) == "intermediateThrowEvent":
            for link in node.findall(q("linkEventDefinition")):
                successors[node_id].extend(link_catches.get((link.get("name") or "").strip(), []))
                target = ref_id(_text(link.find(q("target"))))
                if target in successors and target not in successors[node_id]:
                    successors[node_id].append(target)
    return successors


def _reachable(starts: Iterable[str], successors: dict[str, list[str]]) -> set[str]:
    seen = set(starts)
    queue = deque(seen)
    while queue:
        for following in successors.get(queue.popleft(), ()):
            if following not in seen:
                seen.add(following)
                queue.append(following)
    return seen


def _instantiates(node: etree._Element) -> bool:
    """A receive task or event-based gateway that starts its process (``instantiate="true"``)."""
    return local_name(node.tag) in ("receiveTask", "eventBasedGateway") and xsd_true(node.get("instantiate"))


def _starts_by_design(node: etree._Element) -> bool:
    """Nodes that have no incoming sequence flow on purpose."""
    tag = local_name(node.tag)
    if tag == "boundaryEvent" or _instantiates(node):
        return True
    if tag in ("subProcess", "transaction", "adHocSubProcess") and xsd_true(node.get("triggeredByEvent")):
        return True
    return tag in ACTIVITY_TAGS and xsd_true(node.get("isForCompensation"))


def _ends_by_design(node: etree._Element) -> bool:
    """Nodes that have no outgoing sequence flow on purpose."""
    if _starts_by_design(node) and local_name(node.tag) != "boundaryEvent":
        return True
    if local_name(node.tag) == "boundaryEvent" and node.find(q("compensateEventDefinition")) is not None:
        return True
    return False


def _structural_scopes(ctx: RuleContext) -> list[tuple[Scope, dict[str, list[str]], set[str]]]:
    """Scopes whose flow must be connected (not ad-hoc), with their graph and reachable nodes.

    Computed once per document: the reachability and the path-to-end rules both walk them.
    """
    cached = ctx.__dict__.get("_structural_scopes")
    if cached is not None:
        return cached
    result = []
    for scope in ctx.scopes:
        if scope.kind == "adHocSubProcess" or not scope.nodes:
            continue
        successors = _graph(ctx, scope)
        targets = {target for following in successors.values() for target in following}
        starts = [node.get("id") for node in scope.starts()]
        starts += [node_id for node_id, node in scope.nodes.items() if _instantiates(node)]
        if not starts:  # implicit start: every node without incoming flow
            starts = [node_id for node_id in scope.nodes if node_id not in targets]
        reachable = _reachable(starts, successors)
        result.append((scope, successors, reachable))
    ctx.__dict__["_structural_scopes"] = result
    return result


@register_rule
def unreachable_nodes(ctx: RuleContext) -> Iterator[Finding]:
    """``unreachable-node``: a flow node no start event leads to, so it can never run."""
    for scope, _, reachable in _structural_scopes(ctx):
        for node_id, node in scope.nodes.items():
            if node_id in reachable or _starts_by_design(node):
                continue
            container = "process" if scope.kind == "process" else f"sub-process {scope.element.get('id')}"
            yield ctx.finding(
                "unreachable-node",
                node,
                f"{describe(node)} cannot be reached from any start event of its {container}",
                hint="connect it with an incoming sequence flow from the rest of the flow, or delete it",
                severity=ctx.severity(node, "error", "warning"),
            )


@register_rule
def no_path_to_end(ctx: RuleContext) -> Iterator[Finding]:
    """``no-path-to-end``: a flow node from which no end event can be reached (the flow gets stuck)."""
    for scope, successors, reachable in _structural_scopes(ctx):
        ends = [node.get("id") for node in scope.ends()]
        if not ends:  # implicit end: every node without outgoing flow
            ends = [node_id for node_id, following in successors.items() if not following]
        predecessors: dict[str, list[str]] = {node_id: [] for node_id in successors}
        for source, following in successors.items():
            for target in following:
                predecessors[target].append(source)
        finishing = _reachable(ends, predecessors)
        for node_id, node in scope.nodes.items():
            if node_id in finishing or node_id not in reachable or _ends_by_design(node):
                continue
            if local_name(node.tag) == "boundaryEvent" and ref_id(node.get("attachedToRef")) not in finishing:
                continue  # reported at its activity
            if not successors[node_id]:
                message = f"{describe(node)} has no outgoing sequence flow, so the flow stops there without an end event"
                hint = "connect it to the next step or to an end event"
            else:
                message = f"{describe(node)} cannot reach any end event; every path from it loops or stops"
                hint = "give the loop an exit (e.g. a gateway condition) that leads to an end event"
            yield ctx.finding(
                "no-path-to-end", node, message, hint=hint, severity=ctx.severity(node, "error", "warning")
            )


def _has_condition(flow: etree._Element) -> bool:
    return bool(_text(flow.find(q("conditionExpression"))))


@register_rule
def gateway_flows(ctx: RuleContext) -> Iterator[Finding]:
    """``unconditioned-gateway-flow``, ``conditioned-default-flow`` and ``gateway-without-default``."""
    for scope in ctx.scopes:
        flows_by_source: dict[str, list[etree._Element]] = {}
        for flow, source, _ in scope.valid_flows():
            flows_by_source.setdefault(source, []).append(flow)
        for node_id, node in scope.nodes.items():
            outgoing = flows_by_source.get(node_id, [])
            default = ref_id(node.get("default"))
            for flow in outgoing:
                if flow.get("id") == default and _has_condition(flow):
                    yield ctx.finding(
                        "conditioned-default-flow",
                        flow,
                        f"sequence flow {flow.get('id')} is the default flow of {describe(node)} "
                        "and also has a condition",
                        hint="a default flow is taken when no condition is true; remove its condition",
                    )
            if local_name(node.tag) not in CONDITIONAL_GATEWAYS or len(outgoing) < 2:
                continue
            unconditioned = [
                flow for flow in outgoing if flow.get("id") != default and not _has_condition(flow)
            ]
            for flow in unconditioned:
                yield ctx.finding(
                    "unconditioned-gateway-flow",
                    flow,
                    f"sequence flow {flow.get('id')} leaves {describe(node)} without a condition "
                    "and is not its default flow",
                    hint="add a condition (e.g. ${amount > 500}) or mark the flow as the gateway's default",
                    severity=ctx.severity(node, "warning", "info"),
                )
            if not unconditioned and default not in {flow.get("id") for flow in outgoing}:
                yield ctx.finding(
                    "gateway-without-default",
                    node,
                    f"{describe(node)} has no default flow: if none of its conditions is true, "
                    "the instance stops with an error",
                    hint="mark one outgoing flow as default if the conditions might not cover every case",
                    severity="info",
                )


@register_rule
def invalid_timers(ctx: RuleContext) -> Iterator[Finding]:
    """``invalid-timer``: a timer event whose time does not parse as ISO-8601, cron or an expression."""
    for definition in ctx.root.iter(q("timerEventDefinition")):
        owner = _owner(definition)
        times = [
            child
            for child in definition
            if namespace_of(child.tag) == BPMN and local_name(child.tag) in TIMER_KINDS
        ]
        if not times:
            yield ctx.finding(
                "invalid-timer",
                owner,
                f"timer of {describe(owner)} has no timeDate, timeDuration or timeCycle, so it never fires",
                hint="set a date (2026-12-01T09:00:00Z), a duration (PT5M) or a cycle (R3/PT1H)",
                severity=ctx.severity(owner, "error", "info"),
            )
            continue
        for time in times:
            kind = local_name(time.tag)
            try:
                parse_timer(_text(time), kind)  # type: ignore[arg-type]
            except TimerTextError as err:
                finding = ctx.finding(
                    "invalid-timer",
                    owner,
                    f"{kind} of {describe(owner)}: {err}",
                    hint="write an ISO-8601 text (PT5M, 2026-12-01T09:00:00Z, R3/PT1H), a cron cycle, "
                    "or an expression in ${...}",
                    severity=ctx.severity(owner, "error", "info" if not _text(time) else "warning"),
                )
                yield replace(finding, line=time.sourceline)


@register_rule
def process_shape(ctx: RuleContext) -> Iterator[Finding]:
    """``empty-process`` and ``no-start-event`` for the file's top-level processes."""
    for process in ctx.document.process_elements:
        has_nodes = any(
            namespace_of(child.tag) == BPMN and local_name(child.tag) in FLOW_NODE_TAGS for child in process
        )
        executable = ctx.is_executable(process)
        if not has_nodes:
            yield ctx.finding(
                "empty-process",
                process,
                f"{describe(process)} contains no flow nodes",
                hint="model its steps, or mark it non-executable if it only stands for a pool",
                severity="error" if executable else "info",
            )
        elif (
            executable
            and process.find(q("startEvent")) is None
            and not any(_instantiates(child) for child in process)
        ):
            yield ctx.finding(
                "no-start-event",
                process,
                f"executable {describe(process)} has no start event, so it cannot be started",
                hint="add a start event before the first step, or set isExecutable to false",
                severity="error",
            )


@register_rule
def invalid_quantities(ctx: RuleContext) -> Iterator[Finding]:
    """``invalid-quantity``: token quantities below 1 and negative loop limits (BPMN 2.0 §10.3)."""
    for tag in ACTIVITY_TAGS:
        for activity in ctx.root.iter(q(tag)):
            for attribute in ("startQuantity", "completionQuantity"):
                value = _integer(activity.get(attribute))
                if value is not None and value < 1:
                    yield ctx.finding(
                        "invalid-quantity",
                        activity,
                        f"{describe(activity)} has {attribute}={value}; it must be at least 1",
                        hint=f"remove {attribute} (the default is 1)",
                    )
    for loop in ctx.root.iter(q("standardLoopCharacteristics")):
        value = _integer(loop.get("loopMaximum"))
        if value is not None and value < 0:
            yield ctx.finding(
                "invalid-quantity",
                loop,
                f"loop of {describe(loop.getparent())} has loopMaximum={value}; it cannot be negative",
                hint="set loopMaximum to 0 or more, or remove it for no limit",
            )
    for cardinality in ctx.root.iter(q("loopCardinality")):
        value = _integer(_text(cardinality))
        if value is not None and value < 0:
            activity = cardinality.getparent()
            activity = (
                activity.getparent()
                if activity is not None and activity.getparent() is not None
                else cardinality
            )
            yield ctx.finding(
                "invalid-quantity",
                cardinality,
                f"multi-instance {describe(activity)} has loopCardinality {value}; it cannot be negative",
                hint="set the number of instances to 0 or more",
            )


def _integer(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None
