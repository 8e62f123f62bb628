"""Rewrites of the executable copy of a BPMN document, before Spiff's parser sees it: standard BPMN
that Spiff cannot read as written becomes the equivalent BPMN it can (the stored document is never
changed). Each rewrite says which part of BPMN 2.0 it implements.
"""

from __future__ import annotations

import copy

from lxml import etree

from .namespaces import local_name, q

COMPENSATES = "{urn:bpmn-server:internal}compensates"  # marks a gateway that runs a compensation handler


def rewrite_for_engine(root: etree._Element) -> None:
    """Every rewrite, in order, on the executable copy ``root``."""
    inline_event_definition_refs(root)
    link_events_to_flows(root)
    global_tasks_to_processes(root)
    instantiating_receive_tasks_to_start_events(root)
    for scope in [*root.findall(q("process")), *root.iter(q("subProcess")), *root.iter(q("transaction"))]:
        compensation_to_flows(scope)


def compensation_pairs(scope: etree._Element) -> list[tuple[str, etree._Element, etree._Element]]:
    """``(activity id, compensation boundary event, handler)`` of a (sub-)process, in document order."""
    handlers = {e.get("id"): e for e in scope if isinstance(e.tag, str) and e.get("isForCompensation") == "true"}
    targets = {a.get("sourceRef"): a.get("targetRef") for a in scope.findall(q("association"))}
    pairs = []
    for boundary in scope.findall(q("boundaryEvent")):
        if boundary.find(q("compensateEventDefinition")) is None:
            continue
        handler = handlers.get(targets.get(boundary.get("id")))
        if handler is not None:
            pairs.append((boundary.get("attachedToRef") or "", boundary, handler))
    return pairs


def compensation_throws(scope: etree._Element) -> list[etree._Element]:
    """The events of a scope that compensate it: compensation throw and end events, and in a transaction
    its cancel end events (cancelling a transaction compensates what it completed, BPMN 2.0 §10.2.2)."""
    throws = [e for e in scope if isinstance(e.tag, str) and local_name(e.tag) in ("intermediateThrowEvent", "endEvent")
              and e.find(q("compensateEventDefinition")) is not None]
    if local_name(scope.tag) == "transaction":
        throws += [e for e in scope.findall(q("endEvent")) if e.find(q("cancelEventDefinition")) is not None]
    return throws


def compensation_to_flows(scope: etree._Element) -> None:
    """Compensation (BPMN 2.0 §10.6), which Spiff lacks, as the flow it stands for: before each compensation
    throw of a (sub-)process, one gateway per compensable activity (latest in the model first) runs that
    activity's handler if the activity completed, then the flow goes on. The throw itself becomes a none
    event. What this cannot express (compensation event sub-processes, handlers no throw of their scope
    reaches) is refused by a finding (``_static_findings``)."""
    pairs = compensation_pairs(scope)
    throws = compensation_throws(scope)
    if not pairs or not throws:
        return
    used: set[str] = set()
    for throw in throws:
        definition = throw.find(q("compensateEventDefinition"))
        activity = definition.get("activityRef") if definition is not None else None
        chosen = [p for p in pairs if activity in (None, "", p[0])]
        if definition is not None:
            throw.remove(definition)
        incoming = [f for f in scope.findall(q("sequenceFlow")) if f.get("targetRef") == throw.get("id")]
        first = None
        previous = None
        for activity_id, _boundary, handler in reversed(chosen):
            base = f"{throw.get('id')}__{activity_id}"
            gate = etree.SubElement(scope, q("exclusiveGateway"), id=f"{base}__gate", default=f"{base}__skip")
            gate.set(COMPENSATES, activity_id)
            merge = etree.SubElement(scope, q("exclusiveGateway"), id=f"{base}__merge")
            runner = handler
            if handler.get("id") in used:
                runner = copy.deepcopy(handler)
                runner.set("id", f"{base}__{handler.get('id')}")
                scope.append(runner)
            used.add(handler.get("id"))
            runner.attrib.pop("isForCompensation", None)
            for flow_id, source, target in ((f"{base}__run", gate.get("id"), runner.get("id")),
                                            (f"{base}__skip", gate.get("id"), merge.get("id")),
                                            (f"{base}__done", runner.get("id"), merge.get("id"))):
                etree.SubElement(scope, q("sequenceFlow"), id=flow_id, sourceRef=source, targetRef=target)
            if previous is not None:
                etree.SubElement(scope, q("sequenceFlow"), id=f"{base}__in", sourceRef=previous.get("id"),
                                 targetRef=gate.get("id"))
            first = first if first is not None else gate
            previous = merge
        if first is None:
            continue
        for flow in incoming:
            flow.set("targetRef", first.get("id"))
        etree.SubElement(scope, q("sequenceFlow"), id=f"{throw.get('id')}__compensated",
                         sourceRef=previous.get("id"), targetRef=throw.get("id"))
    for _activity, boundary, _handler in pairs:
        scope.remove(boundary)
    for association in scope.findall(q("association")):
        if association.get("sourceRef") in {b.get("id") for _a, b, _h in pairs}:
            scope.remove(association)


def instantiating_receive_tasks_to_start_events(root: etree._Element) -> None:
    """A process without start event may begin with ``<receiveTask instantiate="true">`` (BPMN 2.0
    §10.2.3): receiving the message creates the instance. Spiff needs a start event, so such a receive
    task becomes a message start event with the same id and outgoing flows."""
    for process in root.findall(q("process")):
        if process.find(q("startEvent")) is not None:
            continue
        targets = {flow.get("targetRef") for flow in process.findall(q("sequenceFlow"))}
        for task in process.findall(q("receiveTask")):
            if task.get("instantiate") != "true" or task.get("id") in targets:
                continue
            start = etree.Element(q("startEvent"), id=task.get("id") or "")
            if task.get("name"):
                start.set("name", task.get("name"))
            for outgoing in task.findall(q("outgoing")):
                start.append(copy.deepcopy(outgoing))
            definition = etree.SubElement(start, q("messageEventDefinition"))
            if task.get("messageRef"):
                definition.set("messageRef", task.get("messageRef"))
            start.tail = task.tail
            process.replace(task, start)


_GLOBAL_TASKS = {"globalTask": "task", "globalScriptTask": "scriptTask", "globalUserTask": "userTask",
                 "globalManualTask": "manualTask", "globalBusinessRuleTask": "businessRuleTask"}


def global_tasks_to_processes(root: etree._Element) -> None:
    """A call activity may call a global task (BPMN 2.0 §10.2.5); Spiff calls only processes, so each
    called global task becomes a process of one task: start, the task (same id), end."""
    called = {(c.get("calledElement") or "").strip() for c in root.iter(q("callActivity"))}
    for element in list(root):
        if not isinstance(element.tag, str):
            continue
        tag = _GLOBAL_TASKS.get(local_name(element.tag))
        task_id = element.get("id")
        if tag is None or task_id not in called:
            continue
        process = etree.Element(q("process"), id=task_id, isExecutable="true")
        if element.get("name"):
            process.set("name", element.get("name"))
        start = etree.SubElement(process, q("startEvent"), id=f"{task_id}__start")
        etree.SubElement(start, q("outgoing")).text = f"{task_id}__in"
        task = etree.SubElement(process, q(tag), {k: v for k, v in element.attrib.items()})
        etree.SubElement(task, q("incoming")).text = f"{task_id}__in"
        etree.SubElement(task, q("outgoing")).text = f"{task_id}__out"
        for child in element:
            task.append(copy.deepcopy(child))
        end = etree.SubElement(process, q("endEvent"), id=f"{task_id}__end")
        etree.SubElement(end, q("incoming")).text = f"{task_id}__out"
        for flow_id, source, target in ((f"{task_id}__in", start.get("id"), task_id),
                                        (f"{task_id}__out", task_id, end.get("id"))):
            etree.SubElement(process, q("sequenceFlow"), id=flow_id, sourceRef=source, targetRef=target)
        root.replace(element, process)


def link_events_to_flows(root: etree._Element) -> None:
    """A link throw event and the link catch event of the same name in the same (sub-)process are one
    sequence flow drawn in two pieces (BPMN 2.0 §10.4.5); Spiff has no link events, so the pair
    becomes two none events joined by a sequence flow."""
    link = q("linkEventDefinition")
    for throw in list(root.iter(q("intermediateThrowEvent"))):
        definition = throw.find(link)
        scope = throw.getparent()
        if definition is None or scope is None:
            continue
        targets = {(t.text or "").strip() for t in definition.findall(q("target"))}
        for catch in scope.findall(q("intermediateCatchEvent")):
            catch_definition = catch.find(link)
            if catch_definition is None:
                continue
            same_name = definition.get("name") and catch_definition.get("name") == definition.get("name")
            if catch_definition.get("id") in targets or same_name:
                flow = etree.SubElement(scope, q("sequenceFlow"))
                flow.set("id", f"{throw.get('id')}_to_{catch.get('id')}")
                flow.set("sourceRef", throw.get("id") or "")
                flow.set("targetRef", catch.get("id") or "")
                etree.SubElement(throw, q("outgoing")).text = flow.get("id")
                etree.SubElement(catch, q("incoming")).text = flow.get("id")
        throw.remove(definition)
    for catch in list(root.iter(q("intermediateCatchEvent"))):
        definition = catch.find(link)
        if definition is not None and catch.find(q("incoming")) is not None:
            catch.remove(definition)


def inline_event_definition_refs(root: etree._Element) -> None:
    """Replace each ``<eventDefinitionRef>`` by a copy of the top-level event definition it names
    (BPMN 2.0 §10.4.5 allows either form; Spiff reads only inline definitions)."""
    shared = {
        child.get("id"): child for child in root
        if isinstance(child.tag, str) and local_name(child.tag).endswith("EventDefinition") and child.get("id")
    }
    for ref in list(root.iter(q("eventDefinitionRef"))):
        definition = shared.get((ref.text or "").strip().split(":")[-1])
        event = ref.getparent()
        if definition is None or event is None:
            continue
        inline = copy.deepcopy(definition)
        inline.set("id", f"{event.get('id')}_{definition.get('id')}")
        inline.tail = ref.tail
        event.replace(ref, inline)
