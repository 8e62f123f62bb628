"""Run a betsy case straight on SpiffWorkflow with the server's spec builder and sandboxed script
engine, bypassing storage. A diagnostic backend (``--backend spiff``): it shows which failures come
from spec building or the engine, and which from the service layer around it.
"""

from __future__ import annotations

from datetime import timedelta

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import (
    ErrorEventDefinition,
    EscalationEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from bpmn_server.clock import ManualClock
from bpmn_server.parser.document import BpmnDocument
from bpmn_server.parser.findings import errors_for_process
from bpmn_server.parser.spec import build_specs, timer_due
from bpmn_server.parser.validation import validate
from bpmn_server.runtime.commands import element_type
from bpmn_server.runtime.projection import waiting_timers
from bpmn_server.runtime.script_engine import make_script_engine
from bpmn_server.settings import Settings

from .cases import (
    ERROR_DEPLOYMENT,
    ERROR_RUNTIME,
    ERROR_THROWN_ERROR,
    ERROR_THROWN_ESCALATION,
    Case,
    PreparedModel,
    Produced,
)

PARALLEL_PROCESS = "ParallelProcess"


class SpiffCase:
    """The workflows of one case, run in memory on a manual clock."""

    def __init__(self, case: Case, model: PreparedModel) -> None:
        self.case = case
        self.clock = ManualClock()
        self.document = BpmnDocument.load(model.source, case.bpmn.name)
        self.findings = validate(self.document)
        self.engine = make_script_engine(Settings(secret_key="x"), now=self.clock.now)
        self.workflows: list[BpmnWorkflow] = []
        self.produced = Produced()

    def run(self) -> Produced:
        case = self.case
        starts = ([PARALLEL_PROCESS] if case.parallel_process else []) + [case.test]
        for process_id in starts:
            if not self.start(process_id, dict(case.inputs)):
                return self.produced
        self.advance(timedelta(milliseconds=case.delay_ms))
        self.produced.statuses = [self.status(wf) for wf in self.workflows]
        return self.produced

    # -- starting ------------------------------------------------------------------------------
    def start(self, process_id: str, data: dict, event=None) -> bool:
        if errors_for_process(self.findings, process_id):
            first = errors_for_process(self.findings, process_id)[0]
            self.produced.errors.append(ERROR_DEPLOYMENT)
            self.produced.detail = f"{process_id}: {first.message}"
            return False
        try:
            specs = build_specs(self.document, process_id)
        except ValidationException as err:
            self.produced.errors.append(ERROR_DEPLOYMENT)
            self.produced.detail = str(err).splitlines()[0]
            return False
        workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=self.engine)
        workflow.clock = self.clock
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        self.workflows.append(workflow)
        if event is not None:
            workflow.do_engine_steps()
            workflow.catch(event)
        self.step(workflow)
        return True

    # -- running -------------------------------------------------------------------------------
    def step(self, workflow: BpmnWorkflow) -> None:
        def completed(task) -> None:
            if element_type(task.task_spec) == "scriptTask":
                self.produced.executed.append(task.task_spec.bpmn_id)

        if getattr(workflow, "failed", False):
            return
        try:
            workflow.do_engine_steps(did_complete_task=completed)
        except Exception as err:  # noqa: BLE001 - any engine failure is the case's ERROR_runtime
            workflow.failed = True
            self.produced.errors.append(ERROR_RUNTIME)
            self.produced.detail = f"{type(err).__name__}: {err}"
            return
        for event in workflow.get_events():
            self.route(workflow, event)

    def route(self, source: BpmnWorkflow, event) -> None:
        definition = event.event_definition
        if isinstance(definition, ErrorEventDefinition):
            self.produced.errors.append(ERROR_THROWN_ERROR)
            return
        if isinstance(definition, EscalationEventDefinition):
            self.produced.errors.append(ERROR_THROWN_ESCALATION)
            return
        caught = 0
        for workflow in list(self.workflows):
            if workflow is source or workflow.is_completed():
                continue
            if workflow.event_manager.catch(event, internal=False):
                caught += 1
                self.step(workflow)
        if caught and type(definition).__name__ == "MessageEventDefinition":
            return
        for process in self.document.processes():
            if process.id == source.spec.name or not process.is_executable:
                continue
            try:
                specs = build_specs(self.document, process.id)
            except ValidationException:
                continue
            if any(ts.event_definition == definition for ts in specs.spec.bpmn_start_events):
                self.start(process.id, {}, event)

    def advance(self, delay: timedelta) -> None:
        deadline = self.clock.now() + delay
        for _ in range(10_000):
            due = [d for d in (self.next_due(wf) for wf in self.workflows) if d is not None and d <= deadline]
            if not due:
                break
            self.clock.set(max(min(due), self.clock.now()))
            for workflow in list(self.workflows):
                if not workflow.is_completed():
                    workflow.refresh_timers()
                    self.step(workflow)
        self.clock.set(deadline)

    def next_due(self, workflow: BpmnWorkflow):
        if workflow.is_completed() or getattr(workflow, "failed", False):
            return None
        dues = [d for d in (timer_due(task) for task in waiting_timers(workflow).values()) if d is not None]
        return min(dues) if dues else None

    @staticmethod
    def status(workflow: BpmnWorkflow) -> str:
        if getattr(workflow, "failed", False):
            return "failed"
        return "completed" if workflow.is_completed() else "waiting"


def run_case(case: Case, model: PreparedModel) -> Produced:
    return SpiffCase(case, model).run()
