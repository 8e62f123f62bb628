"""From a BPMN document to the SOP's step model: chapters (one per process) of numbered steps in flow order.

Order: start events in document order, then depth-first along sequence flows with each node's outgoing
flows in document order; a node with several incoming flows (a join) comes once every path into it that
is not a loop-back has been listed; boundary events follow their activity's normal path. Flows that close a
loop (back edges of the depth-first walk) become "repeat from step n". Event sub-processes follow the
main flow, and nodes no start event leads to are appended at the end, so every flow node is a step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from ..errors import NotFound
from ..parser.document import FLOW_NODE_TAGS, BpmnDocument, xsd_true
from ..parser.namespaces import BPMN, CAMUNDA, ZEEBE, local_name, q
from .instructions import Instructions, documentation_of
from .wording import (
    UNSPECIFIED,
    event_definitions,
    event_kind,
    readable_condition,
    timer_text,
    times,
    trigger_text,
)

ACTIVITI = "http://activiti.org/bpmn"
FLOWABLE = "http://flowable.org/bpmn"
VENDOR_NAMESPACES = (CAMUNDA, ACTIVITI, FLOWABLE)
SUB_PROCESS_TAGS = frozenset({"subProcess", "transaction", "adHocSubProcess"})
HUMAN_TASK_TAGS = frozenset({"userTask", "manualTask", "task"})
GATEWAY_TAGS = frozenset(
    {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
)

TYPE_LABELS = {
    "task": "Task",
    "userTask": "User task",
    "manualTask": "Manual task",
    "serviceTask": "Service task (automatic)",
    "scriptTask": "Script task (automatic)",
    "businessRuleTask": "Business rule (automatic)",
    "sendTask": "Send task",
    "receiveTask": "Receive task",
    "callActivity": "Call activity",
    "subProcess": "Sub-process",
    "transaction": "Transaction",
    "adHocSubProcess": "Ad-hoc sub-process",
    "startEvent": "Start event",
    "endEvent": "End event",
    "intermediateCatchEvent": "Intermediate event (wait)",
    "intermediateThrowEvent": "Intermediate event",
    "boundaryEvent": "Boundary event",
    "exclusiveGateway": "Decision (exclusive gateway)",
    "inclusiveGateway": "Decision (inclusive gateway)",
    "parallelGateway": "Parallel gateway",
    "eventBasedGateway": "Event-based gateway",
    "complexGateway": "Complex gateway",
}


@dataclass
class FormField:
    """One field of a task's form (``camunda:formField`` / ``activiti:formProperty``)."""

    id: str
    label: str
    type: str
    required: bool = False
    options: list[str] = field(default_factory=list)
    default: str | None = None


@dataclass
class Next:
    """Where work goes after a step: one outgoing path, with its condition in words."""

    kind: str  # "next", "if", "otherwise", "parallel", "event", "link"
    target_id: str
    target_number: str = ""
    target_name: str = ""
    condition: str | None = None
    loop: bool = False
    follows: bool = False  # the target is simply the next step in the list

    @property
    def target_text(self) -> str:
        return f"repeat from step {self.target_number}" if self.loop else f"step {self.target_number}"

    @property
    def text(self) -> str:
        if self.kind == "if":
            return f"If {self.condition} → {self.target_text}"
        if self.kind == "otherwise":
            return f"Otherwise → {self.target_text}"
        if self.kind == "parallel":
            return f"At the same time → {self.target_text}"
        if self.kind == "event":
            return f"If {self.condition} happens first → {self.target_text}"
        if self.kind == "link":
            return f"Go to {self.target_text}"
        return f"Then {self.target_text}"


@dataclass
class Step:
    """One numbered step of an SOP: a flow node with what a person needs to know about it."""

    id: str
    name: str
    type: str
    process_id: str
    number: str = ""
    lane: str | None = None
    candidate_groups: list[str] = field(default_factory=list)
    candidate_users: list[str] = field(default_factory=list)
    assignee: str | None = None
    owners: list[str] = field(default_factory=list)
    instructions: Instructions = field(default_factory=lambda: Instructions("", "", "text/plain"))
    summary: str = ""
    form_fields: list[FormField] = field(default_factory=list)
    form_key: str | None = None
    deadlines: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    next: list[Next] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    substeps: list[Step] = field(default_factory=list)
    called_element: str | None = None
    reachable: bool = True

    @property
    def type_label(self) -> str:
        return TYPE_LABELS.get(self.type, self.type)

    @property
    def anchor(self) -> str:
        return f"step-{self.id}"

    @property
    def role(self) -> str:
        """Who does it, in one line: lane, candidate groups/users, assignee, potential owners."""
        parts: list[str] = []
        if self.lane:
            parts.append(self.lane)
        if self.candidate_groups:
            parts.append("group " + ", ".join(self.candidate_groups))
        if self.candidate_users:
            parts.append("users " + ", ".join(self.candidate_users))
        if self.assignee:
            parts.append("assignee " + self.assignee)
        parts.extend(owner for owner in self.owners if owner not in parts)
        return " · ".join(parts)

    @property
    def decision_text(self) -> str:
        """All outgoing paths in one sentence: ``If amount > 500 → step 7, otherwise → step 5``."""
        texts = [n.text for n in self.next if n.kind != "next" or not n.follows]
        joined = ", ".join(texts[:1] + [t[:1].lower() + t[1:] for t in texts[1:]])
        return joined

    @property
    def shown_next(self) -> list[Next]:
        """The outgoing paths worth printing (a plain 'then the next step' is left out)."""
        return [n for n in self.next if n.kind != "next" or not n.follows]

    def walk(self) -> Iterator[Step]:
        """This step and all its sub-steps, depth first."""
        yield self
        for sub in self.substeps:
            yield from sub.walk()


@dataclass
class Chapter:
    """One process of the document (a pool of a collaboration) with its steps."""

    process_id: str
    name: str
    participant: str | None
    executable: bool
    documentation: Instructions
    steps: list[Step]

    @property
    def anchor(self) -> str:
        return f"process-{self.process_id}"

    def walk(self) -> Iterator[Step]:
        for step in self.steps:
            yield from step.walk()


def all_steps(steps: Iterable[Step]) -> Iterator[Step]:
    """Every step and sub-step of a list, depth first."""
    for step in steps:
        yield from step.walk()


def build_chapters(document: BpmnDocument, process_id: str | None = None) -> list[Chapter]:
    """One chapter per process: just ``process_id``, or every process (executable ones first)."""
    return _Builder(document).chapters(process_id)


def build_steps(document: BpmnDocument, process_id: str | None = None) -> list[Step]:
    """The numbered top-level steps (with nested sub-steps) of one process, or of every process."""
    return [step for chapter in build_chapters(document, process_id) for step in chapter.steps]


# -- ordering -----------------------------------------------------------------------------------


def flow_order(nodes: list[str], edges: list[tuple[str, str]], roots: list[str]) -> tuple[list[str], set]:
    """Nodes reachable from ``roots`` in SOP order, and the edges that close loops.

    ``edges`` are (source, target) in priority order. A depth-first walk finds the loop-closing (back)
    edges; the rest form a DAG that is listed depth-first, a node with several incoming edges only once
    all of them are done.
    """
    node_set = set(nodes)
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for source, target in edges:
        if source in node_set and target in node_set:
            successors[source].append(target)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(successors[root]))]
        while stack:
            node, remaining = stack[-1]
            for target in remaining:
                if state.get(target) == 1:
                    back.add((node, target))
                elif target not in state:
                    state[target] = 1
                    stack.append((target, iter(successors[target])))
                    break
            else:
                state[node] = 2
                stack.pop()
    reached = set(state)
    indegree: Counter[str] = Counter()
    for source in reached:
        for target in successors[source]:
            if (source, target) not in back:
                indegree[target] += 1
    order: list[str] = []
    done: set[str] = set()
    pending = [r for r in reversed(roots) if indegree[r] == 0]
    while pending:
        node = pending.pop()
        if node in done:
            continue
        done.add(node)
        order.append(node)
        ready = []
        for target in successors[node]:
            if (node, target) in back:
                continue
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
        pending.extend(reversed(ready))
    order.extend(n for n in nodes if n in reached and n not in done)  # defensive: never lose a node
    return order, back


# -- building -----------------------------------------------------------------------------------


class _Builder:
    """Builds chapters and steps for one document (lookups shared across processes)."""

    def __init__(self, document: BpmnDocument) -> None:
        self.document = document
        self.by_id = document.elements_by_id
        self.names = {key: " ".join(el.get("name", "").split()) for key, el in self.by_id.items()
                      if el.get("name")}
        self.participants: dict[str, etree._Element] = {}
        self.message_flows: list[etree._Element] = []
        for participant in document.bpmn_elements("participant"):
            ref = participant.get("processRef")
            if ref and ref not in self.participants:
                self.participants[ref] = participant
        self.message_flows = document.bpmn_elements("messageFlow")
        self.associations = document.bpmn_elements("association")
        self.lane_of: dict[str, str] = {}
        for lane_set in document.root.iter(q("laneSet")):
            self._read_lanes(lane_set)

    def _read_lanes(self, lane_set: etree._Element) -> None:
        for lane in lane_set.findall(q("lane")):
            name = " ".join((lane.get("name") or "").split())
            for ref in lane.findall(q("flowNodeRef")):
                if name and ref.text:
                    self.lane_of[ref.text.strip()] = name
            child = lane.find(q("childLaneSet"))
            if child is not None:
                self._read_lanes(child)  # nested lanes come later, so the innermost name wins

    def chapters(self, process_id: str | None) -> list[Chapter]:
        processes = self.document.process_elements
        if process_id is not None:
            chosen = [p for p in processes if p.get("id") == process_id]
            if not chosen:
                raise NotFound(f"the model has no process '{process_id}'")
        else:
            executable = [p for p in processes if xsd_true(p.get("isExecutable"))]
            chosen = executable + [p for p in processes if p not in executable]
        chapters = []
        for process in chosen:
            pid = process.get("id") or ""
            participant = self.participants.get(pid)
            participant_name = self.names.get(participant.get("id", "")) if participant is not None else None
            steps = self.scope_steps(process, pid, prefix="", inherited_lane=None)
            documentation = documentation_of(process)
            if not steps and not documentation and process_id is None:
                continue
            chapters.append(
                Chapter(
                    process_id=pid,
                    name=self.names.get(pid) or participant_name or pid,
                    participant=participant_name,
                    executable=xsd_true(process.get("isExecutable")),
                    documentation=documentation,
                    steps=steps,
                )
            )
        return chapters

    # -- one scope (a process or a sub-process) ------------------------------------------------
    def scope_steps(
        self, container: etree._Element, process_id: str, prefix: str, inherited_lane: str | None
    ) -> list[Step]:
        nodes = [c for c in container if _is_flow_node(c) and c.get("id")]
        ids = [n.get("id") for n in nodes]
        by_id = dict(zip(ids, nodes, strict=True))
        flows = [c for c in container if c.tag == q("sequenceFlow")]
        edges: list[tuple[str, str]] = [(f.get("sourceRef", ""), f.get("targetRef", "")) for f in flows]
        boundaries: dict[str, list[etree._Element]] = {}
        for node in nodes:
            if local_name(node.tag) == "boundaryEvent" and node.get("attachedToRef") in by_id:
                boundaries.setdefault(node.get("attachedToRef"), []).append(node)
                edges.append((node.get("attachedToRef"), node.get("id")))
        edges.extend(self._link_edges(nodes))
        edges.extend(self._compensation_edges(nodes, by_id))
        event_subprocesses = [n.get("id") for n in nodes if _is_event_subprocess(n)]
        starts = [n.get("id") for n in nodes if local_name(n.tag) == "startEvent"]
        if not starts:
            targets = {t for _, t in edges}
            starts = [i for i in ids if i not in targets and i not in event_subprocesses
                      and not _is_compensation_handler(by_id[i])]
        order, back = flow_order(ids, edges, starts)
        unreachable: list[str] = []
        order.extend(i for i in event_subprocesses if i not in order)
        while len(order) < len(ids):
            placed = set(order)
            left = [i for i in ids if i not in placed]
            targets = {t for s, t in edges if s in left and s != t}
            roots = [i for i in left if i not in targets] or left[:1]
            more, more_back = flow_order(left, edges, roots)
            order.extend(more)
            back |= more_back
            unreachable.extend(i for i in more if not _is_compensation_handler(by_id[i]))
        steps: dict[str, Step] = {}
        for index, node_id in enumerate(order, start=1):
            node = by_id[node_id]
            step = self.make_step(node, process_id, f"{prefix}{index}", inherited_lane)
            step.reachable = node_id not in unreachable
            steps[node_id] = step
        outgoing: dict[str, list[etree._Element]] = {}
        incoming: dict[str, list[etree._Element]] = {}
        for flow in flows:
            outgoing.setdefault(flow.get("sourceRef", ""), []).append(flow)
            incoming.setdefault(flow.get("targetRef", ""), []).append(flow)
        for position, node_id in enumerate(order):
            following = order[position + 1] if position + 1 < len(order) else None
            self.link_step(steps[node_id], by_id[node_id], (outgoing, incoming), steps, back, following, boundaries)
        return [steps[i] for i in order]

    def _link_edges(self, nodes: list[etree._Element]) -> list[tuple[str, str]]:
        """Implicit edges from each link throw event to the catch event of the same link name."""
        catches: dict[str, str] = {}
        throws: list[tuple[str, str]] = []
        for node in nodes:
            for definition in node.findall(q("linkEventDefinition")):
                name = definition.get("name") or self.names.get(node.get("id"), "")
                if local_name(node.tag) == "intermediateCatchEvent":
                    catches.setdefault(name, node.get("id"))
                elif local_name(node.tag) == "intermediateThrowEvent":
                    throws.append((node.get("id"), name))
        return [(source, catches[name]) for source, name in throws if name in catches]

    def _compensation_edges(self, nodes: list[etree._Element], by_id: dict) -> list[tuple[str, str]]:
        """Compensation boundary events lead to their handler through an association."""
        edges = []
        compensating = {n.get("id") for n in nodes if local_name(n.tag) == "boundaryEvent"
                        and n.find(q("compensateEventDefinition")) is not None}
        for association in self.associations:
            source, target = association.get("sourceRef"), association.get("targetRef")
            if source in compensating and target in by_id:
                edges.append((source, target))
        return edges

    # -- one step ------------------------------------------------------------------------------
    def make_step(self, node: etree._Element, process_id: str, number: str, inherited_lane: str | None) -> Step:
        node_id = node.get("id")
        tag = local_name(node.tag)
        step = Step(
            id=node_id,
            name=self.names.get(node_id) or _default_name(node, tag, self.names),
            type=tag,
            process_id=process_id,
            number=number,
            lane=self.lane_of.get(node_id) or inherited_lane,
            instructions=documentation_of(node),
        )
        self._read_people(step, node)
        self._read_form(step, node)
        self._read_data(step, node)
        step.summary = self._summary(node, tag)
        step.notes.extend(self._notes(node, tag))
        if tag == "callActivity":
            step.called_element = node.get("calledElement") or _vendor_attr(node, "calledElement")
        if tag in SUB_PROCESS_TAGS:
            step.substeps = self.scope_steps(node, process_id, prefix=f"{number}.", inherited_lane=step.lane)
        return step

    def _read_people(self, step: Step, node: etree._Element) -> None:
        groups = _vendor_attr(node, "candidateGroups")
        users = _vendor_attr(node, "candidateUsers")
        assignee = _vendor_attr(node, "assignee")
        zeebe = node.find(f"{q('extensionElements')}/{{{ZEEBE}}}assignmentDefinition")
        if zeebe is not None:
            groups = groups or zeebe.get("candidateGroups")
            users = users or zeebe.get("candidateUsers")
            assignee = assignee or zeebe.get("assignee")
        step.candidate_groups = _split_list(groups)
        step.candidate_users = _split_list(users)
        step.assignee = readable_condition(assignee) if assignee else None
        for role_tag, label in (("potentialOwner", ""), ("humanPerformer", "performer "), ("performer", "performer ")):
            for role in node.findall(q(role_tag)):
                who = self._resource_text(role)
                if who:
                    step.owners.append(f"{label}{who}".strip())

    def _resource_text(self, role: etree._Element) -> str | None:
        ref = role.find(q("resourceRef"))
        if ref is not None and ref.text:
            return self.names.get(ref.text.strip()) or ref.text.strip()
        expression = role.find(q("resourceAssignmentExpression"))
        if expression is not None:
            text = " ".join("".join(expression.itertext()).split())
            if text:
                return readable_condition(text)
        return self.names.get(role.get("id", "")) or None

    def _read_form(self, step: Step, node: etree._Element) -> None:
        step.form_key = _vendor_attr(node, "formKey")
        extensions = node.find(q("extensionElements"))
        if extensions is None:
            return
        for ns in VENDOR_NAMESPACES:
            for form_field in extensions.iter(f"{{{ns}}}formField"):
                required = any(
                    c.get("name") == "required" and (c.get("config") or "true").lower() != "false"
                    for c in form_field.iter(f"{{{ns}}}constraint")
                )
                step.form_fields.append(
                    FormField(
                        id=form_field.get("id", ""),
                        label=form_field.get("label") or form_field.get("id", ""),
                        type=form_field.get("type") or "string",
                        required=required,
                        options=[v.get("name") or v.get("id", "") for v in form_field.iter(f"{{{ns}}}value")],
                        default=form_field.get("defaultValue"),
                    )
                )
            for prop in extensions.iter(f"{{{ns}}}formProperty"):
                step.form_fields.append(
                    FormField(
                        id=prop.get("id", ""),
                        label=prop.get("name") or prop.get("id", ""),
                        type=prop.get("type") or "string",
                        required=(prop.get("required") or "").lower() == "true",
                        options=[v.get("name") or v.get("id", "") for v in prop.iter(f"{{{ns}}}value")],
                        default=prop.get("default"),
                    )
                )

    def _read_data(self, step: Step, node: etree._Element) -> None:
        for association in node.findall(q("dataInputAssociation")):
            for ref in association.findall(q("sourceRef")):
                name = self._data_name(ref.text)
                if name and name not in step.inputs:
                    step.inputs.append(name)
        for association in node.findall(q("dataOutputAssociation")):
            ref = association.find(q("targetRef"))
            name = self._data_name(ref.text if ref is not None else None)
            if name and name not in step.outputs:
                step.outputs.append(name)

    def _data_name(self, ref: str | None) -> str | None:
        if not ref:
            return None
        element = self.by_id.get(ref.strip())
        if element is None:
            return None
        name = self.names.get(ref.strip())
        if not name:
            target = element.get("dataObjectRef") or element.get("dataStoreRef")
            name = self.names.get(target or "")
        if not name:
            return None
        state = element.find(q("dataState"))
        if state is not None and state.get("name"):
            name += f" [{state.get('name')}]"
        return name

    def _summary(self, node: etree._Element, tag: str) -> str:
        """What the step is, in one sentence (events and automatic tasks)."""
        definitions = event_definitions(node)
        trigger = (
            " or ".join(trigger_text(d, self.names) for d in definitions) if definitions else ""
        )
        kind = event_kind(node) if tag.endswith("Event") else ""
        if tag == "startEvent":
            if not definitions:
                return "The process starts here."
            when = {
                "message": f"when {trigger} is received",
                "timer": f"at {trigger}" if trigger.startswith("the date") else (
                    "on a timer" if trigger == "a timer" else f"on a timer: {trigger}"),
                "signal": f"when {trigger} is broadcast",
                "conditional": f"when {trigger}",
                "error": f"when {trigger} is raised",
                "escalation": f"when {trigger} is raised",
                "compensate": "when compensation is requested",
            }.get(kind, f"when one of these happens: {trigger}")
            return f"Starts {when}."
        if tag == "intermediateCatchEvent":
            return {
                "message": f"Wait until {trigger} arrives.",
                "timer": f"Wait until {trigger[4:]}." if trigger.startswith("the date") else (
                    "Wait for a timer." if trigger == "a timer" else f"Wait {trigger}."),
                "signal": f"Wait for {trigger}.",
                "conditional": f"Wait until {trigger}.",
                "link": f"Continue here from {trigger}.",
            }.get(kind, f"Wait for {trigger or 'an event'}.")
        if tag == "intermediateThrowEvent":
            return {
                "none": "Milestone: note that this point has been reached.",
                "message": f"Send {trigger}.",
                "signal": f"Broadcast {trigger}.",
                "escalation": f"Raise {trigger}.",
                "link": f"Go on at {trigger}.",
                "compensate": "Undo the work already completed (compensation).",
            }.get(kind, f"Throw {trigger}.")
        if tag == "endEvent":
            return {
                "none": "The process ends here.",
                "terminate": "All work in this process stops here immediately (terminate).",
                "error": f"Ends with {trigger}.",
                "message": f"Ends by sending {trigger}.",
                "signal": f"Ends by broadcasting {trigger}.",
                "escalation": f"Ends by raising {trigger}.",
                "cancel": "Cancels the transaction.",
                "compensate": "Ends by undoing the work already completed (compensation).",
            }.get(kind, f"Ends with {trigger}.")
        if tag == "boundaryEvent":
            return ""  # worded in link_step, where the host's number is known
        return {
            "serviceTask": "Done automatically by the system.",
            "scriptTask": "Done automatically by a script.",
            "businessRuleTask": "Decided automatically by business rules.",
            "sendTask": "Send a message" + self._message_of(node) + ".",
            "receiveTask": "Wait for a message" + self._message_of(node) + ".",
            "manualTask": "Done by hand, outside the system.",
            "eventBasedGateway": "Wait for whichever of the following events happens first.",
        }.get(tag, "")

    def _message_of(self, node: etree._Element) -> str:
        name = self.names.get(node.get("messageRef") or "")
        return f" “{name}”" if name else ""

    def _notes(self, node: etree._Element, tag: str) -> list[str]:
        notes: list[str] = []
        loop = node.find(q("standardLoopCharacteristics"))
        if loop is not None:
            condition = loop.find(q("loopCondition"))
            text = "".join(condition.itertext()).strip() if condition is not None else ""
            notes.append(f"Repeat this step while {readable_condition(text)}." if text else "Repeat this step as needed.")
        multi = node.find(q("multiInstanceLoopCharacteristics"))
        if multi is not None:
            sequential = (multi.get("isSequential") or "false").lower() == "true"
            collection = _vendor_attr(multi, "collection") or ""
            cardinality = multi.find(q("loopCardinality"))
            what = f" of {readable_condition(collection)}" if collection else ""
            if cardinality is not None and "".join(cardinality.itertext()).strip():
                what = f" ({readable_condition(''.join(cardinality.itertext()))} times)"
            manner = "one after another" if sequential else "all at the same time"
            notes.append(f"Done once for each item{what}, {manner}.")
        if (node.get("isForCompensation") or "").lower() == "true":
            notes.append("Runs only to undo work already completed (compensation handler).")
        if tag == "adHocSubProcess":
            notes.append("The steps inside may be done in any order, as needed.")
        if tag == "transaction":
            notes.append("Runs as a transaction: either all of its steps take effect, or none.")
        if _is_event_subprocess(node):
            start = next((c for c in node if c.tag == q("startEvent")), None)
            if start is not None:
                definitions = event_definitions(start)
                trigger = " or ".join(trigger_text(d, self.names) for d in definitions) or "its start event"
                interrupting = (start.get("isInterrupting") or "true").lower() != "false"
                effect = "and interrupts the enclosing work" if interrupting else "alongside the running work"
                notes.append(f"Event sub-process: runs whenever {trigger} occurs, {effect}.")
        if tag == "parallelGateway":
            pass  # joins are worded in link_step
        node_id = node.get("id")
        for flow in self.message_flows:
            if flow.get("targetRef") == node_id:
                notes.append(f"Receives a message from {self._party(flow.get('sourceRef'))}.")
            if flow.get("sourceRef") == node_id:
                notes.append(f"Sends a message to {self._party(flow.get('targetRef'))}.")
        for association in self.associations:
            other = None
            if association.get("sourceRef") == node_id:
                other = association.get("targetRef")
            elif association.get("targetRef") == node_id:
                other = association.get("sourceRef")
            annotation = self.by_id.get(other or "")
            if annotation is not None and annotation.tag == q("textAnnotation"):
                text = " ".join("".join(t.itertext()) for t in annotation.findall(q("text"))).strip()
                if text:
                    notes.append(f"Note: {text}")
        return notes

    def _party(self, ref: str | None) -> str:
        element = self.by_id.get(ref or "")
        if element is None:
            return "another party"
        name = self.names.get(ref or "")
        if element.tag == q("participant"):
            return f"“{name}”" if name else "another party"
        pool = self._pool_name(element)
        if name and pool:
            return f"“{name}” ({pool})"
        return f"“{name}”" if name else (pool or "another party")

    def _pool_name(self, element: etree._Element) -> str | None:
        for ancestor in element.iterancestors(q("process")):
            participant = self.participants.get(ancestor.get("id", ""))
            if participant is not None:
                return self.names.get(participant.get("id", "")) or None
        return None

    # -- links between steps (needs the numbers) ------------------------------------------------
    def link_step(
        self,
        step: Step,
        node: etree._Element,
        flows: tuple[dict[str, list[etree._Element]], dict[str, list[etree._Element]]],
        steps: dict[str, Step],
        back: set[tuple[str, str]],
        following: str | None,
        boundaries: dict[str, list[etree._Element]],
    ) -> None:
        tag = step.type
        outgoing = [f for f in flows[0].get(step.id, []) if f.get("targetRef") in steps]
        incoming = flows[1].get(step.id, [])
        default = node.get("default")

        def make(kind: str, target: str, condition: str | None = None) -> Next:
            target_step = steps[target]
            loop = (step.id, target) in back
            return Next(
                kind=kind, target_id=target, target_number=target_step.number, target_name=target_step.name,
                condition=condition, loop=loop, follows=(target == following and not loop),
            )

        if tag == "eventBasedGateway":
            for flow in outgoing:
                target = self.by_id.get(flow.get("targetRef"))
                definitions = event_definitions(target) if target is not None else []
                what = (flow.get("name") or " or ".join(trigger_text(d, self.names) for d in definitions)
                        or steps[flow.get("targetRef")].name)
                step.next.append(make("event", flow.get("targetRef"), what))
        elif tag == "parallelGateway" or (tag not in GATEWAY_TAGS and _all_unconditional(outgoing, default)):
            kind = "parallel" if len(outgoing) > 1 else "next"
            step.next.extend(make(kind, f.get("targetRef")) for f in outgoing)
        else:
            for flow in outgoing:
                condition = _flow_condition(flow)
                if flow.get("id") == default:
                    step.next.append(make("otherwise", flow.get("targetRef")))
                elif condition:
                    step.next.append(make("if", flow.get("targetRef"), condition))
                elif tag not in GATEWAY_TAGS and len(outgoing) > 1:
                    step.next.append(make("parallel", flow.get("targetRef")))
                else:
                    step.next.append(make("next", flow.get("targetRef")))
            if tag == "inclusiveGateway" and len(outgoing) > 1:
                step.notes.append("Every path whose condition holds is taken (one or more).")
        if tag == "intermediateThrowEvent" and event_kind(node) == "link":
            for definition in node.findall(q("linkEventDefinition")):
                name = definition.get("name") or step.name
                for other_id, other in steps.items():
                    if other.type == "intermediateCatchEvent" and other_id != step.id:
                        catch = self.by_id.get(other_id)
                        names = [d.get("name") or other.name for d in catch.findall(q("linkEventDefinition"))]
                        if name in names:
                            step.next.append(make("link", other_id))
                            break
        if tag in ("parallelGateway", "complexGateway", "inclusiveGateway") and len(incoming) > 1:
            sources = [steps[f.get("sourceRef")].number for f in incoming if f.get("sourceRef") in steps]
            step.notes.insert(0, "Continues once the incoming paths are done (from steps "
                              + ", ".join(sources) + ").")
        for boundary in boundaries.get(step.id, []):
            sentence = self._boundary_sentence(boundary, steps)
            (step.deadlines if event_kind(boundary) == "timer" else step.exceptions).append(sentence)
        if tag == "boundaryEvent":
            host = steps.get(node.get("attachedToRef") or "")
            sentence = self._boundary_sentence(node, steps)
            where = f"While step {host.number} “{host.name}” is in progress: " if host else ""
            step.summary = where + sentence[:1].lower() + sentence[1:] if where else sentence

    def _boundary_sentence(self, boundary: etree._Element, steps: dict[str, Step]) -> str:
        """``Reminder after 1 day (repeats 3 times) → step 8 “Remind”`` and the like."""
        interrupting = (boundary.get("cancelActivity") or "true").lower() != "false"
        kind = event_kind(boundary)
        definitions = event_definitions(boundary)
        target = self._first_target(boundary, steps)
        destination = ""
        if target is not None:
            destination = f"step {target.number} “{target.name}”"
        if kind == "timer":
            what, value, repetitions = timer_text(definitions[0])
            if value == UNSPECIFIED:
                what = "duration"
            when = f"on {value}" if what == "date" else f"after {value}"
            if interrupting:
                who = _who(target) if target is not None and target.type in HUMAN_TASK_TAGS else None
                if who:
                    return f"Escalates to {who} {when} → {destination}"
                limit = f"by {value}" if what == "date" else f"within {value}"
                return f"If not done {limit}, this step is stopped → {destination or 'the process goes on'}"
            if what == "cycle":
                repeat = f"repeated {times(repetitions)}" if repetitions else "repeated until done"
                text = f"Reminder after {value}, {repeat}"
            elif what == "date":
                text = f"Reminder on {value}"
            else:
                text = f"Reminder after {value}"
            return text + (f" → {destination}" if destination else "")
        trigger = " or ".join(trigger_text(d, self.names) for d in definitions)
        effect = "" if kind in ("error", "cancel", "compensate") else (
            " (this step is stopped)" if interrupting else " (this step goes on)"
        )
        head = {
            "error": f"If an error occurs ({trigger})" if trigger != "an error" else "If an error occurs",
            "escalation": f"If escalated ({trigger})" if trigger != "an escalation" else "If escalated",
            "message": f"If {trigger} arrives",
            "signal": f"If {trigger} is broadcast",
            "conditional": f"If {trigger}",
            "compensate": "To undo this step",
            "cancel": "If the transaction is cancelled",
        }.get(kind, f"If {trigger or 'an event occurs'}")
        return head + effect + (f" → {destination}" if destination else "")

    def _first_target(self, boundary: etree._Element, steps: dict[str, Step]) -> Step | None:
        boundary_id = boundary.get("id")
        parent = boundary.getparent()
        for flow in parent.findall(q("sequenceFlow")) if parent is not None else []:
            if flow.get("sourceRef") == boundary_id and flow.get("targetRef") in steps:
                return steps[flow.get("targetRef")]
        for association in self.associations:
            if association.get("sourceRef") == boundary_id and association.get("targetRef") in steps:
                return steps[association.get("targetRef")]
        return None


# -- small helpers ----------------------------------------------------------------------------


def _is_flow_node(element: etree._Element) -> bool:
    tag = element.tag
    return isinstance(tag, str) and tag.startswith(f"{{{BPMN}}}") and local_name(tag) in FLOW_NODE_TAGS


def _is_event_subprocess(element: etree._Element) -> bool:
    return local_name(element.tag) in SUB_PROCESS_TAGS and (element.get("triggeredByEvent") or "").lower() == "true"


def _is_compensation_handler(element: etree._Element) -> bool:
    return (element.get("isForCompensation") or "").lower() == "true"


def _vendor_attr(element: etree._Element, name: str) -> str | None:
    for ns in VENDOR_NAMESPACES:
        value = element.get(f"{{{ns}}}{name}")
        if value:
            return value.strip()
    return None


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [readable_condition(part) for part in value.split(",") if part.strip()]


def _flow_condition(flow: etree._Element) -> str | None:
    """The flow's name and its condition in words (``yes (amount > 500)``); None when it has neither."""
    name = " ".join((flow.get("name") or "").split())
    expression = flow.find(q("conditionExpression"))
    text = "".join(expression.itertext()).strip() if expression is not None else ""
    condition = readable_condition(text) if text else ""
    if name and condition and condition.lower() != name.lower():
        return f"{name} ({condition})"
    return name or condition or None


def _who(step: Step) -> str | None:
    """Whom a step goes to, for an escalation: ``group finance-leads (Finance)``, an assignee or a lane."""
    if step.candidate_groups:
        who = "group " + ", ".join(step.candidate_groups)
    elif step.assignee:
        who = step.assignee
    elif step.candidate_users:
        who = ", ".join(step.candidate_users)
    elif step.owners:
        who = step.owners[0]
    else:
        return step.lane
    return f"{who} ({step.lane})" if step.lane and step.lane not in who else who


def _all_unconditional(outgoing: list[etree._Element], default: str | None) -> bool:
    return not default and all(f.find(q("conditionExpression")) is None for f in outgoing)


def _default_name(node: etree._Element, tag: str, names: dict[str, str]) -> str:
    """A name for an unnamed node: ``Start``, ``End``, ``Wait for message “X”``, ``Decision``…"""
    definitions = event_definitions(node)
    trigger = " or ".join(trigger_text(d, names) for d in definitions)
    if tag == "startEvent":
        return f"Start ({trigger})" if trigger else "Start"
    if tag == "endEvent":
        return f"End ({trigger})" if trigger and trigger != "termination" else (
            "End (terminate)" if trigger else "End")
    if tag in GATEWAY_TAGS:
        return {"parallelGateway": "Split / join", "exclusiveGateway": "Decision",
                "inclusiveGateway": "Decision", "eventBasedGateway": "Wait for the first event",
                "complexGateway": "Complex decision"}[tag]
    if tag.endswith("Event"):
        return (trigger[:1].upper() + trigger[1:]) if trigger else TYPE_LABELS.get(tag, tag)
    return TYPE_LABELS.get(tag, tag).split(" (")[0] + " (unnamed)"
