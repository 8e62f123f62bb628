"""Build SpiffWorkflow specs from a BPMN document: executable processes only, standard BPMN as other
tools write it (ISO-8601 timer literals, JUEL conditions, Camunda/Zeebe/standard task assignment).

Spiff never sees non-executable content: the document is copied, every process that is neither
executable nor called by an executable one is removed, and only then handed to Spiff's parser.
What Spiff cannot run becomes a ``not-executable-element`` finding instead of an import error.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser, full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    CANCEL_EVENT_XPATH,
    CONDITIONAL_EVENT_XPATH,
    ERROR_EVENT_XPATH,
    ESCALATION_EVENT_XPATH,
    MESSAGE_EVENT_XPATH,
    SIGNAL_EVENT_XPATH,
    TERMINATION_EVENT_XPATH,
    TIMER_EVENT_XPATH,
    BoundaryEventParser,
    EndEventParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    ReceiveTaskParser,
    SendTaskParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser, ScriptTaskParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import first
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.bpmn.specs.defaults import BoundaryEvent as DefaultBoundaryEvent
from SpiffWorkflow.bpmn.specs.defaults import InclusiveGateway as DefaultInclusiveGateway
from SpiffWorkflow.bpmn.specs.defaults import ManualTask, ServiceTask, UserTask
from SpiffWorkflow.bpmn.specs.defaults import StartEvent as DefaultStartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent as BoundaryEventMixin
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask as SubWorkflowTaskMixin
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskIterator, TaskState

from .document import BpmnDocument
from .findings import Finding
from .namespaces import BPMN, CAMUNDA, ZEEBE, local_name, q
from .rewrites import COMPENSATES, compensation_pairs, compensation_throws, rewrite_for_engine
from .timer_text import TimerSpec, TimerTextError, as_utc, parse_date_time, parse_timer

RULE = "not-executable-element"

# Elements Spiff has no parser for, with the reason a modeler reads in the finding.
UNSUPPORTED = {
    "businessRuleTask": "business rule tasks (DMN) are not supported by the engine yet",
    "adHocSubProcess": "ad-hoc sub-processes are not supported by the engine (SpiffWorkflow 3.2 fails on them at "
                       "run time); model the order with gateways",
}


# -- specs of human tasks --------------------------------------------------------------------------
@dataclass
class Assignment:
    """Who may work on a human task and when it is due, as written in the model (expressions unevaluated)."""

    assignee: str | None = None
    candidate_users: list[str] = field(default_factory=list)
    candidate_groups: list[str] = field(default_factory=list)
    due_date: str | None = None
    follow_up_date: str | None = None
    priority: str | None = None
    form_key: str | None = None
    lane: str | None = None


@dataclass
class FormField:
    """One field of a task form (``camunda:formField``): id, label, type, required, default, enum values."""

    id: str
    label: str | None = None
    type: str = "string"
    required: bool = False
    readonly: bool = False
    default: str | None = None
    values: list[dict[str, str]] = field(default_factory=list)
    validation: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label or self.id,
            "type": self.type,
            "required": self.required,
            "readonly": self.readonly,
            "default": self.default,
            "values": list(self.values),
            "validation": dict(self.validation),
        }


class HumanTaskMixin:
    """Assignment and form of a user or manual task (what the ``human_task`` projection shows)."""

    assignment: Assignment
    form_fields: list[FormField]


class HumanUserTask(HumanTaskMixin, UserTask):
    def __init__(self, wf_spec, bpmn_id, assignment=None, form_fields=None, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.assignment = assignment or Assignment()
        self.form_fields = form_fields or []


class HumanManualTask(HumanTaskMixin, ManualTask):
    def __init__(self, wf_spec, bpmn_id, assignment=None, form_fields=None, **kwargs):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.assignment = assignment or Assignment()
        self.form_fields = form_fields or []


class PassThroughServiceTask(ServiceTask):
    """A service or send task without an implementation: completes at once (Spiff's would hang STARTED)."""

    def _run_hook(self, my_task):
        return True


# -- timers ---------------------------------------------------------------------------------------
def now_of(workflow) -> datetime:
    """The engine clock of a workflow: the runtime sets ``workflow.top_workflow.clock`` each command."""
    clock = getattr(workflow.top_workflow, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


def read_timer_text(text: str, kind: str) -> TimerSpec | None:
    """The parsed literal or ``${…}`` expression; ``None`` for a Python expression (evaluated at run time)."""
    try:
        return parse_timer(text, kind)
    except TimerTextError:
        if _looks_like_literal(text):
            raise
        return None


def _looks_like_literal(text: str) -> bool:
    """A text that starts like an ISO date, duration or cycle is a (mistyped) literal, not Python."""
    return bool(re.match(r"^\s*(R\d*/|P[\dT]|\d{4}-\d{2})", text, re.IGNORECASE))


def resolve_timer(my_task, text: str, kind: str) -> TimerSpec:
    """The one rule for timer texts (docs/runtime.md): ISO-8601 or cron literals are taken as written,
    ``${…}``/``#{…}`` is a JUEL expression, anything else is a Python expression over the instance
    data; an expression's value (text, datetime or timedelta) is then read as a literal."""
    spec = read_timer_text(text, kind)
    if spec is not None and not spec.is_expression:
        return spec
    value = my_task.workflow.script_engine.evaluate(my_task, text.strip())
    if isinstance(value, datetime):
        value = as_utc(value).isoformat()
    elif isinstance(value, timedelta):
        value = f"PT{value.total_seconds():g}S"
    elif isinstance(value, int | float) and kind == "timeDuration":
        value = f"PT{value:g}S"
    if not isinstance(value, str):
        raise TimerTextError(f"the timer expression '{text.strip()}' gave {value!r}, not a date, duration or cycle")
    return parse_timer(value, kind)


def parse_datetime_utc(value: Any) -> datetime:
    """A timezone-aware UTC datetime from an ISO text or datetime; a value without offset is UTC."""
    if isinstance(value, datetime):
        return as_utc(value)
    return parse_date_time(str(value))


EVENT_VALUE_PREFIX = "event_value:"


def _timer_keys(definition, my_task) -> tuple[str, str]:
    """Internal-data keys of a timer: Spiff's own for a timer event, one pair per timer when the timer
    is one of several events of an event-based gateway (they share the gateway's task, and with
    Spiff's keys the second timer read the first one's due time and took the wrong branch)."""
    if getattr(my_task.task_spec, "event_definition", None) is definition:
        return "event_value", "event_fired"
    key = getattr(definition, "element_id", None) or definition.name
    return f"{EVENT_VALUE_PREFIX}{key}", f"event_fired:{key}"


def _single_timer_fired(definition, my_task, kind: str) -> bool:
    value_key, fired_key = _timer_keys(definition, my_task)
    event_value = my_task.internal_data.get(value_key)
    if event_value is None:
        now = now_of(my_task.workflow)
        event_value = resolve_timer(my_task, definition.expression, kind).next_due(now).isoformat()
        my_task.internal_data[value_key] = event_value
    if parse_datetime_utc(event_value) <= now_of(my_task.workflow):
        my_task.internal_data[fired_key] = True
    return my_task.internal_data.get(fired_key, False)


class ElementTimerMixin:
    """A timer definition that knows its catch event: two timers of one event-based gateway (often
    both named "Wait") stay distinct, so the gateway takes the branch of the timer that fired."""

    def __init__(self, *args, element_id: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.element_id = element_id

    def __eq__(self, other):
        return super().__eq__(other) and getattr(other, "element_id", None) == self.element_id

    def __hash__(self):
        return hash((type(self).__name__, self.name, self.element_id))


class ServerTimeDate(ElementTimerMixin, TimeDateEventDefinition):
    """A timer at a date: ISO literal or expression; dates without offset are UTC, never local time."""

    def has_fired(self, my_task):
        return _single_timer_fired(self, my_task, "timeDate")


class ServerDuration(ElementTimerMixin, DurationTimerEventDefinition):
    """A timer after a duration, counted from the moment the event is reached, on the engine clock."""

    def has_fired(self, my_task):
        return _single_timer_fired(self, my_task, "timeDuration")


class ServerCycle(ElementTimerMixin, CycleTimerEventDefinition):
    """A repeating timer (``R3/PT1H``, ``R/2026-01-01T09:00Z/P1D``, cron) on the engine clock.

    Its internal ``event_value`` is ``{"text", "started", "fired", "next"}``; ``next`` is None once
    every repetition has fired.
    """

    def cycle_complete(self, my_task):
        now = now_of(my_task.workflow)
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            spec = resolve_timer(my_task, self.expression, "timeCycle")
            due = spec.next_due(now, 0, now)
            event_value = {"text": spec.text if not spec.is_expression else self.expression,
                           "literal": _literal_of(spec), "started": now.isoformat(), "fired": 0,
                           "next": due.isoformat() if due else None}
        ready = False
        if event_value["next"] is not None and parse_datetime_utc(event_value["next"]) <= now:
            event_value["fired"] += 1
            spec = parse_timer(event_value["literal"], "timeCycle")
            due = spec.next_due(now, event_value["fired"], parse_datetime_utc(event_value["started"]))
            event_value["next"] = due.isoformat() if due else None
            ready = True
        if event_value["next"] is None and not ready:
            my_task.internal_data["event_fired"] = True
        my_task._set_internal_data(event_value=event_value)
        return ready

    def has_fired(self, my_task):
        return my_task._get_internal_data("event_fired", False)

    def update_task(self, my_task):
        if self.cycle_complete(my_task):
            for output in my_task.task_spec.outputs:
                child = my_task._add_child(output, TaskState.FUTURE)
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                child.task_spec._update(child)

    def details(self, my_task):
        event_value = my_task._get_internal_data("event_value") or {}
        return PendingBpmnEvent(self.name, self.__class__.__name__, event_value.get("next"))


def _literal_of(spec: TimerSpec) -> str:
    text = spec.text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def serializer_config() -> dict[type, type]:
    """Serializer converters for the server's own event definitions (a fired timer of an event-based
    gateway is kept in the task's internal data, which is stored with the instance)."""
    from SpiffWorkflow.bpmn.serializer.default.event_definition import (
        TimerConditionalEventDefinitionConverter,
    )

    class ServerTimerConverter(TimerConditionalEventDefinitionConverter):
        def to_dict(self, event_definition):
            return {**super().to_dict(event_definition), "element_id": event_definition.element_id}

    return {cls: ServerTimerConverter for cls in (ServerTimeDate, ServerDuration, ServerCycle)}


def timer_due(my_task) -> datetime | None:
    """When a waiting timer task is due, from the value kept in its internal data (None: not armed)."""
    event_value = my_task.internal_data.get("event_value")
    if isinstance(event_value, dict):
        event_value = event_value.get("next")
    if event_value is None:  # the timers of an event-based gateway: the earliest one
        dues = [parse_datetime_utc(v) for k, v in my_task.internal_data.items()
                if k.startswith(EVENT_VALUE_PREFIX) and isinstance(v, str)]
        return min(dues) if dues else None
    return parse_datetime_utc(event_value)


# -- parsers --------------------------------------------------------------------------------------
class TimerTextParserMixin:
    """Timer definitions that take ISO literals unquoted and run on the engine clock."""

    def parse_timer_event(self, event):
        description = self.get_event_description(event)
        name = self.node.get("name", self.node.get("id"))
        for tag, cls in (("timeDate", ServerTimeDate), ("timeDuration", ServerDuration), ("timeCycle", ServerCycle)):
            node = first(self.xpath(f".//bpmn:{tag}"))
            if node is not None:
                text = (node.text or "").strip()
                try:
                    read_timer_text(text, tag)
                except TimerTextError as err:
                    self.raise_validation_exception(f"timer {tag}: {err}")
                return cls(name, text, description=description, element_id=self.node.get("id"))
        self.raise_validation_exception("the timer has no timeDate, timeDuration or timeCycle")


class InterruptingStartEvent(DefaultStartEvent):
    """A start event; in an event sub-process marked ``isInterrupting`` (the default), firing it
    cancels everything else running in the enclosing (sub-)process, which Spiff never does."""

    interrupting: bool = False

    def catch(self, my_task, event):
        super().catch(my_task, event)
        if self.interrupting:  # at once: the thrower's next tasks must not run first
            interrupt_enclosing_process(my_task)

    def _on_complete_hook(self, my_task):
        super()._on_complete_hook(my_task)
        if self.interrupting:
            interrupt_enclosing_process(my_task)


def interrupt_enclosing_process(my_task) -> None:
    """Cancel every unfinished task of the process that holds this event sub-process, but the
    event sub-process itself and the path that leads to it."""
    workflow = my_task.workflow
    parent_id = getattr(workflow, "parent_task_id", None)
    if parent_id is None:
        return
    holder = workflow.top_workflow.get_task_from_id(parent_id)
    if holder is None:
        return
    for task in holder.workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK):
        if task.workflow is not holder.workflow:
            continue
        if task is holder or task.is_descendant_of(holder) or holder.is_descendant_of(task):
            continue
        if task.has_state(TaskState.NOT_FINISHED_MASK) and task.parent is not None:
            task.cancel()


class ServerStartEventParser(TimerTextParserMixin, StartEventParser):
    """Start events that also read error and escalation definitions (event sub-processes start on them;
    Spiff reads them as none events, so such an event sub-process ran at once)."""

    def create_task(self):
        event_definition = self.get_event_definition(
            [MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH, TIMER_EVENT_XPATH, CONDITIONAL_EVENT_XPATH,
             ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH])
        task = self._create_task(event_definition)
        self.spec.start.connect(task)
        in_event_subprocess = self.node.getparent().get("triggeredByEvent") == "true"
        task.interrupting = in_event_subprocess and self.node.get("isInterrupting", "true") != "false"
        return task


def _untriggered_event_subprocess(task) -> bool:
    """An event sub-process task whose start event has not fired: no token of the process is in it."""
    if not getattr(task.task_spec, "event_subprocess", False):
        return False
    subworkflow = task.workflow.top_workflow.get_subprocess(task)
    if subworkflow is None:
        return True
    for inner in subworkflow.get_tasks(state=TaskState.READY | TaskState.STARTED | TaskState.WAITING |
                                       TaskState.ERROR):
        if not (inner.state == TaskState.WAITING and isinstance(inner.task_spec, DefaultStartEvent)):
            return False
    return True


class ProcessEndJoin(_EndJoin):
    """The end of a (sub-)process: it completes when no token is left; an event sub-process whose
    event never came holds no token (Spiff waited for it forever), and is cancelled then."""

    def _check_threshold_unstructured(self, my_task):
        waiting_for = [
            task for task in TaskIterator(my_task.workflow.task_tree, state=TaskState.NOT_FINISHED_MASK,
                                          end_at_spec=self.name)
            if task is not my_task and not any(_untriggered_event_subprocess(t) for t in _lineage(task))
        ]
        return not waiting_for

    def _run_hook(self, my_task):
        for task in my_task.workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK):
            if task.workflow is my_task.workflow and _untriggered_event_subprocess(task):
                task.cancel()
        return super()._run_hook(my_task)


def _lineage(task):
    while task is not None:
        yield task
        task = task.parent


class ServerProcessParser(ProcessParser):
    """Event sub-processes inside a sub-process are instantiated with it and wait on their start event,
    and no (sub-)process waits at its end for an event sub-process whose event never came.

    Spiff starts message/signal/error/escalation event sub-processes on demand, but looks only at the
    top-level process for them, so one nested in a sub-process never started."""

    def add_tasks(self):
        super().add_tasks()
        self.spec.end.__class__ = ProcessEndJoin
        for node in self.xpath("./bpmn:subProcess[@triggeredByEvent='true']"):
            self.spec.task_specs[node.get("id")].event_subprocess = True
        if self.node.tag == full_tag("process"):
            return
        start = self.spec.start
        for name in list(start.trigger_specs):
            task_spec = self.spec.task_specs[name]
            start.connect(task_spec)
            task_spec.connect(self.spec.end)
        start.trigger_specs.clear()


class ServerEndEventParser(TimerTextParserMixin, EndEventParser):
    """End events that also throw signals (Spiff's parser reads a signal end event as a none end event)."""

    def create_task(self):
        event_definition = self.get_event_definition(
            [MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH, CANCEL_EVENT_XPATH, ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH,
             TERMINATION_EVENT_XPATH])
        task = self._create_task(event_definition)
        task.connect(self.spec.end)
        return task


class ServerIntermediateCatchEventParser(TimerTextParserMixin, IntermediateCatchEventParser):
    pass


class ServerIntermediateThrowEventParser(TimerTextParserMixin, IntermediateThrowEventParser):
    pass


class ServerBoundaryEventParser(TimerTextParserMixin, BoundaryEventParser):
    pass


class InterruptingBoundaryEvent(DefaultBoundaryEvent):
    """A boundary event that interrupts its activity the moment it catches its event.

    Spiff cancels the activity only when the boundary event's task runs, and an engine step runs
    every ready task of a sub-process first: a signal or escalation thrown inside a sub-process let
    the rest of the sub-process run before the interrupting boundary event on it took effect."""

    def catch(self, my_task, event):
        super().catch(my_task, event)
        self.interrupt(my_task)

    def _update_hook(self, my_task):
        fired = super()._update_hook(my_task)
        if fired:  # a timer or condition that holds: interrupt before the activity's next task runs
            self.interrupt(my_task)
        return fired

    def interrupt(self, my_task):
        if not self.cancel_activity or my_task.parent is None:
            return
        for sibling in my_task.parent.children:
            if sibling is my_task or isinstance(sibling.task_spec, BoundaryEventMixin):
                continue
            if not sibling.has_state(TaskState.FINISHED_MASK):
                sibling.cancel()


class ServerSendTaskParser(TimerTextParserMixin, SendTaskParser):
    pass


class ServerReceiveTaskParser(TimerTextParserMixin, ReceiveTaskParser):
    pass


class ConditionalFlowsMixin:
    """An activity with conditional outgoing sequence flows (BPMN 2.0 §10.5.1): when it completes, a
    token goes down every unconditional flow and every flow whose condition holds; the default flow
    only when no condition holds. With no flow to take, the instance fails (as a gateway would)."""

    flow_conditions: dict[str, str | None]
    default_flow_target: str | None

    def _predict_hook(self, my_task):
        state = TaskState.FUTURE if my_task.has_state(TaskState.DEFINITE_MASK) else my_task.state
        unconditional = [s for s in self.outputs if self.flow_conditions.get(s.name) is None
                         and s.name != self.default_flow_target]
        my_task._sync_children(unconditional, state)
        for spec in self.outputs:
            if spec not in unconditional:
                my_task._add_child(spec, TaskState.MAYBE)

    def _on_complete_hook(self, my_task):
        super()._on_complete_hook(my_task)
        engine = my_task.workflow.script_engine
        chosen, matched = [], False
        for spec in self.outputs:
            condition = self.flow_conditions.get(spec.name)
            if spec.name == self.default_flow_target:
                continue
            if condition is None:
                chosen.append(spec)
            elif engine.evaluate(my_task, condition):
                chosen.append(spec)
                matched = True
        if not matched and self.default_flow_target is not None:
            chosen.append(my_task.workflow.spec.task_specs[self.default_flow_target])
        if not chosen:
            raise WorkflowTaskException(f"no outgoing sequence flow of {self.bpmn_id} can be taken: no condition "
                                        "holds and there is no default flow", task=my_task)
        my_task._sync_children(chosen, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)


_CONDITIONAL_CLASSES: dict[type, type] = {}


def _with_conditional_flows(cls: type) -> type:
    if cls not in _CONDITIONAL_CLASSES:
        _CONDITIONAL_CLASSES[cls] = type(f"Conditional{cls.__name__}", (ConditionalFlowsMixin, cls), {})
    return _CONDITIONAL_CLASSES[cls]


class MappedDataAssociations:
    """Data associations as BPMN 2.0 §10.4.1 defines them: a ``dataInputAssociation`` copies a data object
    into the task's ``dataInput`` it targets, a ``dataOutputAssociation`` copies the task's ``dataOutput``
    into the data object. (Spiff copies the object under the object's own id and then replaces the task's
    data by its inputs/outputs, so a script writing its declared output failed.) Declared inputs and
    outputs must be present; other process variables stay visible."""

    input_map: dict[str, str]  # dataInput id -> data object id
    output_map: dict[str, str]  # dataOutput id -> data object id
    required_inputs: list[str]
    required_outputs: list[str]

    def _update_hook(self, my_task):
        ready = super()._update_hook(my_task)
        for input_id, object_id in self.input_map.items():
            if object_id in my_task.data:
                my_task.data[input_id] = my_task.data.pop(object_id)
        missing = [i for i in self.required_inputs if i not in my_task.data]
        if missing:
            raise WorkflowTaskException(f"{self.bpmn_id} is missing its data input {', '.join(missing)}",
                                        task=my_task)
        return ready

    def _on_complete_hook(self, my_task):
        missing = [o for o in self.required_outputs if o not in my_task.data]
        if missing:
            raise WorkflowTaskException(f"{self.bpmn_id} did not set its data output {', '.join(missing)}",
                                        task=my_task)
        for output_id, object_id in self.output_map.items():
            my_task.data[object_id] = my_task.data[output_id]
        super()._on_complete_hook(my_task)
        for object_id in self.output_map.values():
            my_task.data.pop(object_id, None)


_ASSOCIATION_CLASSES: dict[type, type] = {}


class DataAssociationParserMixin:
    """Activities whose ioSpecification is wired to data objects get ``MappedDataAssociations``."""

    def parse_node(self):
        result = super().parse_node()
        refs = {r.get("id"): r.get("dataObjectRef") for r in self.process_parser.node.iter(q("dataObjectReference"))}
        inputs, outputs = {}, {}
        for association in self.node.findall(q("dataInputAssociation")):
            source, target = association.find(q("sourceRef")), association.find(q("targetRef"))
            if source is not None and target is not None and (source.text or "").strip() in refs:
                inputs[(target.text or "").strip()] = refs[(source.text or "").strip()]
        for association in self.node.findall(q("dataOutputAssociation")):
            source, target = association.find(q("sourceRef")), association.find(q("targetRef"))
            if source is not None and target is not None and (target.text or "").strip() in refs:
                outputs[(source.text or "").strip()] = refs[(target.text or "").strip()]
        io = self.task.io_specification
        if (inputs or outputs) and io is not None:
            cls = type(self.task)
            if cls not in _ASSOCIATION_CLASSES:
                _ASSOCIATION_CLASSES[cls] = type(f"Mapped{cls.__name__}", (MappedDataAssociations, cls), {})
            self.task.__class__ = _ASSOCIATION_CLASSES[cls]
            self.task.input_map, self.task.output_map = inputs, outputs
            self.task.required_inputs = [d.bpmn_id for d in io.data_inputs]
            self.task.required_outputs = [d.bpmn_id for d in io.data_outputs]
            self.task.io_specification = None
        return result


class StartQuantityMixin:
    """An activity with ``startQuantity`` N > 1 (BPMN 2.0 §10.2.1) starts once N tokens have arrived,
    consuming them all; until then the tokens wait (and with fewer tokens the instance waits for good)."""

    start_quantity: int = 1

    def _update_hook(self, my_task):
        waiting = [t for t in my_task.workflow.tasks.values()
                   if t is not my_task and t.task_spec == self and t.state == TaskState.WAITING]
        if len(waiting) + 1 < self.start_quantity:
            my_task._set_state(TaskState.WAITING)
            return False
        for token in waiting[: self.start_quantity - 1]:
            DeepMerge.merge(my_task.data, token.parent.data)
            token.cancel()  # consumed by this start
        return super()._update_hook(my_task)


_QUANTITY_CLASSES: dict[type, type] = {}
_QUANTITY_TAGS = {"task", "scriptTask", "userTask", "manualTask", "serviceTask"}


def _quantity(node: etree._Element, attribute: str) -> int:
    value = (node.get(attribute) or "1").strip()
    return int(value) if value.isdigit() else 1


class ImplicitSplitMixin(DataAssociationParserMixin):
    """Several outgoing flows leaving an activity: unconditional ones are a parallel split, conditional
    ones are taken when their condition holds, the default one when none holds (BPMN 2.0 §10.5.1)."""

    def handles_multiple_outgoing(self):
        return True

    def parse_node(self):
        result = super().parse_node()
        start_quantity = _quantity(self.node, "startQuantity")
        if start_quantity > 1:
            cls = type(self.task)
            if cls not in _QUANTITY_CLASSES:
                _QUANTITY_CLASSES[cls] = type(f"Quantity{cls.__name__}", (StartQuantityMixin, cls), {})
            self.task.__class__ = _QUANTITY_CLASSES[cls]
            self.task.start_quantity = start_quantity
        return result

    def connect_outgoing(self, outgoing_task, sequence_flow_node, is_default):
        # completionQuantity N: N tokens on each outgoing flow (BPMN 2.0 §10.2.1)
        for _ in range(_quantity(self.node, "completionQuantity")):
            super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)
        condition = self.parse_condition(sequence_flow_node)
        if condition is None and not is_default and not isinstance(self.task, ConditionalFlowsMixin):
            return
        if not isinstance(self.task, ConditionalFlowsMixin):
            self.task.__class__ = _with_conditional_flows(type(self.task))
            self.task.flow_conditions = {}
            self.task.default_flow_target = None
        self.task.flow_conditions[outgoing_task.name] = condition
        if is_default:
            self.task.default_flow_target = outgoing_task.name


class ServerTaskParser(ImplicitSplitMixin, TaskParser):
    pass


class ServerScriptTaskParser(ImplicitSplitMixin, ScriptTaskParser):
    def get_script(self):
        script = super().get_script()
        if script is None or not script.strip():
            self.raise_validation_exception("the script task has no script")
        return script


class HumanTaskParser(ImplicitSplitMixin, TaskParser):
    """User and manual tasks with assignment (Camunda, Zeebe, standard resources, lane) and form."""

    def create_task(self):
        return self.spec_class(
            self.spec,
            self.bpmn_id,
            assignment=read_assignment(self.node, self.lane),
            form_fields=read_form(self.node),
            **self.bpmn_attributes,
        )


class CompletedActivity:
    """The condition of a compensation gateway: the activity completed in this (sub-)process."""

    def __init__(self, activity_id: str) -> None:
        self.activity_id = activity_id

    def _matches(self, my_task) -> bool:
        return any(t.task_spec.bpmn_id == self.activity_id and t.state == TaskState.COMPLETED
                   for t in my_task.workflow.tasks.values())


class ServerExclusiveGatewayParser(ConditionalGatewayParser):
    """Exclusive gateways; the ones compensation adds choose the handler by whether its activity completed."""

    def connect_outgoing(self, outgoing_task, sequence_flow_node, is_default):
        activity = self.node.get(COMPENSATES)
        if activity and not is_default:
            self.task.connect_if(CompletedActivity(activity), outgoing_task)
        else:
            super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)


class ComplexGateway(DefaultInclusiveGateway):
    """A complex gateway (BPMN 2.0 §10.5.7). Diverging it is an inclusive split. Converging with an
    ``activationCondition`` it fires once the condition holds over ``activationCount`` (the number of
    incoming flows with a token) and consumes the tokens that arrive after it fired without firing
    again; without a condition it joins like an inclusive gateway."""

    activation_condition: str | None = None

    def _update_hook(self, my_task):
        if self.activation_condition is not None and self._fired(my_task):
            my_task.cancel()  # a late token of a wave the gateway already fired for
            return False
        return super()._update_hook(my_task)

    def _fired(self, my_task) -> bool:
        return any(t is not my_task and t.task_spec == self and t.has_state(TaskState.READY | TaskState.COMPLETED)
                   and not my_task.is_descendant_of(t) for t in my_task.workflow.tasks.values())

    def _check_threshold_unstructured(self, my_task):
        if self.activation_condition is None:
            return super()._check_threshold_unstructured(my_task)
        arrived = {t.parent.task_spec for t in my_task.workflow.tasks.values()
                   if t.task_spec == self and t.parent is not None and t.parent.state == TaskState.COMPLETED}
        return bool(my_task.workflow.script_engine.evaluate(
            my_task, self.activation_condition, external_context={"activationCount": len(arrived)}))


class ComplexGatewayParser(ConditionalGatewayParser):
    def create_task(self):
        task = super().create_task()
        condition = first(self.xpath("./bpmn:activationCondition"))
        text = (condition.text or "").strip() if condition is not None else ""
        task.activation_condition = text or None
        return task


class ServerBpmnParser(BpmnParser):
    """Spiff's BPMN parser with the task parsers that make imported models run as written."""

    PROCESS_PARSER_CLASS = ServerProcessParser

    OVERRIDE_PARSER_CLASSES = {
        full_tag("userTask"): (HumanTaskParser, HumanUserTask),
        full_tag("complexGateway"): (ComplexGatewayParser, ComplexGateway),
        full_tag("exclusiveGateway"): (ServerExclusiveGatewayParser,
                                       BpmnParser.PARSER_CLASSES[full_tag("exclusiveGateway")][1]),
        full_tag("manualTask"): (HumanTaskParser, HumanManualTask),
        full_tag("task"): (ServerTaskParser, BpmnParser.PARSER_CLASSES[full_tag("task")][1]),
        full_tag("scriptTask"): (ServerScriptTaskParser, BpmnParser.PARSER_CLASSES[full_tag("scriptTask")][1]),
        full_tag("serviceTask"): (ServerTaskParser, PassThroughServiceTask),
        full_tag("startEvent"): (ServerStartEventParser, InterruptingStartEvent),
        full_tag("endEvent"): (ServerEndEventParser, BpmnParser.PARSER_CLASSES[full_tag("endEvent")][1]),
        full_tag("intermediateCatchEvent"): (
            ServerIntermediateCatchEventParser,
            BpmnParser.PARSER_CLASSES[full_tag("intermediateCatchEvent")][1],
        ),
        full_tag("intermediateThrowEvent"): (
            ServerIntermediateThrowEventParser,
            BpmnParser.PARSER_CLASSES[full_tag("intermediateThrowEvent")][1],
        ),
        full_tag("boundaryEvent"): (ServerBoundaryEventParser, InterruptingBoundaryEvent),
        full_tag("sendTask"): (ServerSendTaskParser, BpmnParser.PARSER_CLASSES[full_tag("sendTask")][1]),
        full_tag("receiveTask"): (ServerReceiveTaskParser, BpmnParser.PARSER_CLASSES[full_tag("receiveTask")][1]),
    }


# -- reading assignment and forms -------------------------------------------------------------------
_EXPRESSION = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)
_USER_OR_GROUP = re.compile(r"^\s*(user|group)\s*\(\s*(.*?)\s*\)\s*$")


def split_list(text: str | None) -> list[str]:
    """A comma-separated list, keeping ``${…}`` expressions (which may contain commas) whole."""
    if not text:
        return []
    if _EXPRESSION.match(text):
        return [text.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def _resource_names(node: etree._Element, tag: str) -> list[str]:
    texts: list[str] = []
    root = node.getroottree().getroot()
    for role in node.findall(q(tag)):
        for expression in role.iter(q("formalExpression")):
            if expression.text and expression.text.strip():
                texts.append(expression.text.strip())
        ref = role.find(q("resourceRef"))
        if ref is not None and ref.text:
            resource_id = ref.text.strip().split(":")[-1]
            for resource in root.iter(q("resource")):
                if resource.get("id") == resource_id:
                    texts.append(resource.get("name") or resource_id)
    return texts


def read_assignment(node: etree._Element, lane: str | None) -> Assignment:
    """Assignment from ``camunda:``/``zeebe:`` attributes, ``potentialOwner``/``humanPerformer``, and lane."""
    a = Assignment(lane=lane)

    def camunda(name: str) -> str | None:
        value = node.get(f"{{{CAMUNDA}}}{name}")
        return value.strip() if value and value.strip() else None

    a.assignee = camunda("assignee")
    a.candidate_users = split_list(camunda("candidateUsers"))
    a.candidate_groups = split_list(camunda("candidateGroups"))
    a.due_date = camunda("dueDate")
    a.follow_up_date = camunda("followUpDate")
    a.priority = camunda("priority")
    a.form_key = camunda("formKey")

    extensions = node.find(q("extensionElements"))
    if extensions is not None:
        zeebe_assignment = extensions.find(f"{{{ZEEBE}}}assignmentDefinition")
        if zeebe_assignment is not None:
            a.assignee = a.assignee or _strip_feel(zeebe_assignment.get("assignee"))
            a.candidate_users += split_list(_strip_feel(zeebe_assignment.get("candidateUsers")))
            a.candidate_groups += split_list(_strip_feel(zeebe_assignment.get("candidateGroups")))
        schedule = extensions.find(f"{{{ZEEBE}}}taskSchedule")
        if schedule is not None:
            a.due_date = a.due_date or _strip_feel(schedule.get("dueDate"))
            a.follow_up_date = a.follow_up_date or _strip_feel(schedule.get("followUpDate"))
        priority = extensions.find(f"{{{ZEEBE}}}priorityDefinition")
        if priority is not None:
            a.priority = a.priority or _strip_feel(priority.get("priority"))

    for text in _resource_names(node, "potentialOwner"):
        for part in split_list(text):
            match = _USER_OR_GROUP.match(part)
            if match and match.group(1) == "user":
                a.candidate_users.append(match.group(2))
            else:
                a.candidate_groups.append(match.group(2) if match else part)
    for text in _resource_names(node, "humanPerformer") + _resource_names(node, "performer"):
        match = _USER_OR_GROUP.match(text)
        if match and match.group(1) == "group":
            a.candidate_groups.append(match.group(2))
        elif a.assignee is None:
            a.assignee = match.group(2) if match else text

    if not (a.assignee or a.candidate_users or a.candidate_groups) and lane:
        a.candidate_groups = [lane]
    a.candidate_users = list(dict.fromkeys(a.candidate_users))
    a.candidate_groups = list(dict.fromkeys(a.candidate_groups))
    return a


def _strip_feel(value: str | None) -> str | None:
    """Zeebe writes static values plainly and FEEL expressions as ``=expr``; we keep static ones."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    return "${" + value[1:].strip() + "}" if value.startswith("=") else value


_FORM_TYPES = {"string", "long", "boolean", "date", "enum", "double", "integer", "number", "text"}


def read_form(node: etree._Element) -> list[FormField]:
    """The ``camunda:formData`` fields of a task, with required/readonly and other constraints."""
    fields: list[FormField] = []
    for form_field in node.iter(f"{{{CAMUNDA}}}formField"):
        field_type = (form_field.get("type") or "string").strip()
        f = FormField(
            id=(form_field.get("id") or "").strip(),
            label=form_field.get("label"),
            type=field_type if field_type in _FORM_TYPES else field_type,
            default=form_field.get("defaultValue"),
        )
        for child in form_field:
            name = local_name(child.tag)
            if name == "validation":
                for constraint in child:
                    constraint_name = (constraint.get("name") or "").strip()
                    if constraint_name == "required":
                        f.required = True
                    elif constraint_name == "readonly":
                        f.readonly = True
                    elif constraint_name:
                        f.validation[constraint_name] = constraint.get("config") or ""
            elif name == "value":
                f.values.append({"id": child.get("id") or "", "name": child.get("name") or child.get("id") or ""})
        if f.id:
            fields.append(f)
    return fields


# -- building specs ---------------------------------------------------------------------------------
@dataclass
class ProcessSpecs:
    """What Spiff needs to start an instance: the process spec and the specs of what it calls."""

    process_id: str
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, BpmnProcessSpec]


def _called_ids(process: etree._Element) -> set[str]:
    return {
        (call.get("calledElement") or "").strip()
        for call in process.iter(q("callActivity"))
        if call.get("calledElement")
    }


def runnable_process_ids(document: BpmnDocument) -> set[str]:
    """The executable processes plus every process they call, transitively."""
    by_id = {p.get("id"): p for p in document.process_elements}
    keep = {p.id for p in document.processes() if p.is_executable}
    todo = list(keep)
    while todo:
        process = by_id.get(todo.pop())
        if process is None:
            continue
        for called in _called_ids(process):
            if called in by_id and called not in keep:
                keep.add(called)
                todo.append(called)
    return keep


def executable_tree(document: BpmnDocument, keep: set[str]) -> etree._Element:
    """A copy of the document without the processes Spiff must not see; kept ones marked executable."""
    root = copy.deepcopy(document.root)
    for process in root.findall(q("process")):
        if process.get("id") in keep:
            process.set("isExecutable", "true")
        else:
            root.remove(process)
    rewrite_for_engine(root)
    return root


def _new_parser(root: etree._Element, name: str) -> ServerBpmnParser:
    parser = ServerBpmnParser()
    parser.add_bpmn_xml(root, filename=name)
    return parser


def build_specs(document: BpmnDocument, process_id: str) -> ProcessSpecs:
    """The Spiff specs of one executable process; raises ``ValidationException`` when Spiff can't run it."""
    keep = runnable_process_ids(document)
    if process_id not in keep:
        raise ValidationException(f"process '{process_id}' is not executable (isExecutable is not true)")
    parser = _new_parser(executable_tree(document, keep), document.name)
    spec = parser.get_spec(process_id)
    subprocess_specs = parser.get_subprocess_specs(process_id)
    # event sub-processes and embedded sub-processes are parsed as separate specs too
    for name, process_parser in parser.process_parsers.items():
        if name != process_id and name not in subprocess_specs and process_parser.spec is not None:
            subprocess_specs[name] = process_parser.spec
    _check_subprocesses(subprocess_specs, process_id)
    return ProcessSpecs(process_id, spec, subprocess_specs)


def _check_subprocesses(subprocess_specs: dict[str, Any], process_id: str) -> None:
    missing = [name for name, spec in subprocess_specs.items() if spec is None]
    if missing:
        raise ValidationException(
            f"process '{process_id}' calls {', '.join(sorted(missing))}, which this file does not contain"
        )
    for spec in subprocess_specs.values():
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, SubWorkflowTaskMixin) and task_spec.spec not in subprocess_specs:
                raise ValidationException(f"'{task_spec.name}' calls '{task_spec.spec}', which was not found")


# -- findings -------------------------------------------------------------------------------------
def spec_findings(document: BpmnDocument) -> list[Finding]:
    """Errors for every element of an executable process that the engine cannot run, with the reason."""
    findings: list[Finding] = []
    keep = runnable_process_ids(document)
    for process in document.process_elements:
        process_id = process.get("id") or ""
        if process_id not in keep:
            continue
        before = len(findings)
        findings.extend(_static_findings(process, process_id))
        if len(findings) > before:
            continue  # Spiff would stop at the first of these anyway
        try:
            build_specs(document, process_id)
        except ValidationException as err:
            findings.append(_finding_from(err, document, process_id))
        except Exception as err:  # noqa: BLE001 - any parser crash is a finding, never an import error
            findings.append(Finding(RULE, "error", f"the engine cannot load this process: {err}",
                                    element_id=process_id, line=process.sourceline, process_id=process_id))
    return findings


def _static_findings(process: etree._Element, process_id: str) -> list[Finding]:
    """Constructs we know Spiff cannot run, each reported where it is (no parse needed)."""
    found: list[Finding] = []

    def add(element: etree._Element, message: str, hint: str | None = None) -> None:
        found.append(Finding(RULE, "error", message, element_id=element.get("id"), line=element.sourceline,
                             process_id=process_id, hint=hint))

    flows_by_source: dict[str, list[etree._Element]] = {}
    for flow in process.iter(q("sequenceFlow")):
        flows_by_source.setdefault(flow.get("sourceRef") or "", []).append(flow)
    for element in process.iter(etree.Element):
        if not isinstance(element.tag, str) or not element.tag.startswith(f"{{{BPMN}}}"):
            continue
        name = local_name(element.tag)
        if name in UNSUPPORTED:
            add(element, f"<{name}> cannot run: {UNSUPPORTED[name]}")
        elif name in ("task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
                      "callActivity", "subProcess", "businessRuleTask"):
            for attribute in ("startQuantity", "completionQuantity"):
                if name in _QUANTITY_TAGS:
                    continue  # run as written (ImplicitSplitMixin, StartQuantityMixin)
                if (element.get(attribute) or "1").strip() not in ("1", "0") and \
                        (element.get(attribute) or "").strip().isdigit():
                    add(element, f"<{name}> has {attribute}={element.get(attribute)}; the engine runs every "
                        "activity on one token at a time", hint=f"remove {attribute} (the default is 1), or model "
                        "the tokens with a parallel gateway")
            if name == "serviceTask" and _service_implementation(element):
                add(element, f"service task uses {_service_implementation(element)}, which this server cannot "
                    "call", hint="use a script task, or a message the integrator answers")
        elif name == "boundaryEvent":
            definitions = [local_name(c.tag) for c in element if local_name(c.tag).endswith("EventDefinition")]
            if not definitions and element.find(q("eventDefinitionRef")) is None:
                add(element, "a boundary event needs an event definition (timer, message, signal, error…)")
            if "compensateEventDefinition" in definitions and not _compensation_runs(element):
                add(element, "compensation: no compensation throw event (or transaction cancel) of the same "
                    "(sub-)process triggers this handler, which is all the engine supports",
                    hint="throw the compensation event in the process that holds the activity")
        elif name == "startEvent":
            if any(local_name(c.tag) == "compensateEventDefinition" for c in element):
                add(element, "compensation event sub-processes are not supported by the engine",
                    hint="attach a compensation boundary event with a handler to the activity instead")
        elif name == "multiInstanceLoopCharacteristics" and (element.get("behavior") or "All") != "All" and (
                element.get("noneBehaviorEventRef") or element.get("oneBehaviorEventRef")
                or element.find(q("complexBehaviorDefinition")) is not None):
            add(element, f"multi-instance behavior '{element.get('behavior')}' (events thrown as instances "
                "complete) is not supported by the engine", hint="remove the behavior events, or throw the event "
                "from inside the activity")
        elif name == "dataStoreReference":
            add(element, "data stores are not supported by the engine")
    return found


def _compensation_runs(boundary: etree._Element) -> bool:
    """A compensation boundary event runs when a throw of its own scope can reach its handler."""
    scope = boundary.getparent()
    if scope is None:
        return False
    return any(b is boundary for _a, b, _h in compensation_pairs(scope)) and bool(compensation_throws(scope))


def _service_implementation(element: etree._Element) -> str | None:
    for attribute in ("class", "delegateExpression", "expression", "type"):
        if element.get(f"{{{CAMUNDA}}}{attribute}"):
            return f"camunda:{attribute}"
    if element.find(f"{q('extensionElements')}/{{{CAMUNDA}}}connector") is not None:
        return "a Camunda connector"
    if element.find(f"{q('extensionElements')}/{{{ZEEBE}}}taskDefinition") is not None:
        return "a Zeebe job worker (zeebe:taskDefinition)"
    implementation = element.get("implementation")
    if implementation and implementation not in ("##unspecified", "##WebService"):
        return f"implementation '{implementation}'"
    return None


def _finding_from(err: ValidationException, document: BpmnDocument, process_id: str) -> Finding:
    element_id = getattr(err, "id", None) or process_id
    message = str(err).split("\n")[0].strip() or err.__class__.__name__
    tag = getattr(err, "tag", "") or ""
    where = f"<{tag}> " if tag else ""
    return Finding(
        RULE,
        "error",
        f"{where}cannot run: {message}",
        element_id=element_id,
        line=document.line_of(element_id),
        process_id=process_id,
    )
