"""The bridge to SpiffWorkflow: specs cached per definition, the sandboxed script engine, and
instance state serialized without the spec (the spec is rebuilt from the deployed document).
"""

from __future__ import annotations

import json
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer.config import DEFAULT_CONFIG
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer

from ..clock import Clock
from ..errors import NotExecutable
from ..parser.spec import ProcessSpecs, build_specs, serializer_config
from ..settings import Settings
from ..store.models import ProcessDefinition

STATE_FORMAT = "bpmn-server-1"


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Spiff's workflow converter without the spec: state holds tasks and data, never the model."""

    def to_dict(self, workflow):
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        dct["spec_name"] = workflow.spec.name
        return dct

    def from_dict(self, dct, specs: ProcessSpecs | None = None):
        if specs is None:
            raise ValueError("restoring an instance needs its process specs")
        dct = dict(dct)
        workflow = self.target_class(specs.spec, specs.subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], _uuid, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dict(dct["subprocesses"]), workflow)
        workflow.bpmn_events = self.registry.restore(dct.get("bpmn_events", []))
        return workflow


def _uuid(value):
    from uuid import UUID

    return UUID(value)


def _serializer() -> BpmnWorkflowSerializer:
    config = dict(DEFAULT_CONFIG)
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    config.update(serializer_config())
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


# The instant of the command running in this thread/context: scripts' now()/today() read it, so a
# script sees the same (injectable) clock as the timers of its command.
COMMAND_NOW: ContextVar[datetime | None] = ContextVar("bpmn_server_command_now", default=None)


def script_now() -> datetime:
    return COMMAND_NOW.get() or datetime.now(UTC)


class Engine:
    """Process specs by definition id, the script engine, and workflow (de)serialization."""

    def __init__(self, settings: Settings, definitions) -> None:
        from .script_engine import make_script_engine

        self.settings = settings
        self.definitions = definitions
        self.script_engine = make_script_engine(settings, now=script_now)
        self.serializer = _serializer()
        self._specs: dict[int, ProcessSpecs] = {}
        self._lock = threading.Lock()

    # -- specs ---------------------------------------------------------------------------------
    def specs_for(self, definition: ProcessDefinition) -> ProcessSpecs:
        """The cached Spiff specs of a definition version (built on first use; a version never changes)."""
        specs = self._specs.get(definition.id)
        if specs is not None:
            return specs
        document = self.definitions.document_of(definition)
        try:
            specs = build_specs(document, definition.key)
        except ValidationException as err:
            element = getattr(err, "id", None)
            raise NotExecutable(
                f"process '{definition.key}' version {definition.version} cannot run: {str(err).splitlines()[0]}",
                element_id=element or None,
                line=document.line_of(element) if element else None,
            ) from None
        with self._lock:
            self._specs.setdefault(definition.id, specs)
        return specs

    # -- workflows -----------------------------------------------------------------------------
    def new_workflow(self, definition: ProcessDefinition, clock: Clock) -> BpmnWorkflow:
        specs = self.specs_for(definition)
        workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=self.script_engine)
        workflow.clock = clock
        return workflow

    def restore(self, definition: ProcessDefinition, state: dict[str, Any], clock: Clock) -> BpmnWorkflow:
        """A live workflow from stored state and the definition's cached specs."""
        return self.restore_with(self.specs_for(definition), state, clock)

    def restore_with(self, specs: ProcessSpecs, state: dict[str, Any], clock: Clock) -> BpmnWorkflow:
        """A live workflow from stored state and the given specs."""
        body = {k: v for k, v in state.items() if k not in ("format", BpmnWorkflowSerializer.VERSION_KEY)}
        workflow = self.serializer.registry.restore(body, specs=specs)
        workflow.script_engine = self.script_engine
        workflow.clock = clock
        return workflow

    def dump(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        """The JSON-safe state of a workflow, without its spec."""
        registry = self.serializer.registry
        registry._encoder_mode = True
        try:
            text = json.dumps(registry.convert(workflow), cls=self.serializer._encoder_cls)
        finally:
            registry._encoder_mode = False
        state = json.loads(text)
        state["format"] = STATE_FORMAT
        return state
