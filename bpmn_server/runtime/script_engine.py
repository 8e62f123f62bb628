"""SpiffWorkflow's script engine with every script and expression run in the sandbox.

Spiff's ``PythonScriptEngine`` delegates to an environment (``TaskDataEnvironment``: plain
``eval``/``exec`` with full builtins). We keep Spiff's engine and replace the environment, so every
caller — gateway conditions, timers, multi-instance, data/message expressions, script tasks, and the
few Spiff places that call ``engine.environment.evaluate`` directly — goes through the sandbox.
Failures become ``errors.ScriptError`` naming the element, line and offending line.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition

from ..errors import ScriptError
from .sandbox import Sandbox, SandboxError, ThrownBpmnError, to_script_error

__all__ = ["SandboxEnvironment", "SandboxScriptEngine", "make_script_engine"]


class SandboxEnvironment(TaskDataEnvironment):
    """Spiff's task-data environment with ``eval``/``exec`` replaced by the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__({})
        self.sandbox = sandbox

    def evaluate(self, expression: str, context: Mapping[str, Any], external_context=None) -> Any:
        try:
            return self.sandbox.evaluate(expression, context, external_context)
        except SandboxError as error:
            raise to_script_error(error, what="expression") from None

    def execute(self, script: str, context: dict[str, Any], external_context=None) -> bool:
        try:
            self.sandbox.execute(script, context, external_context)
        except SandboxError as error:
            raise to_script_error(error) from None
        except ThrownBpmnError as thrown:  # no task to throw from (Spiff calls this only with one)
            raise ScriptError(f"A script raised {thrown} outside a task", error_type="BpmnError",
                              line=thrown.line) from None
        return True

    def call_service(self, context, **kwargs):
        raise ScriptError("Service tasks with an operation are not supported by this server")


class SandboxScriptEngine(PythonScriptEngine):
    """The engine every workflow of this server runs with; errors name the BPMN element."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(environment=SandboxEnvironment(sandbox))
        self.sandbox = sandbox

    def validate(self, expression: str) -> None:
        try:
            self.sandbox.check(expression, script=False)
        except SandboxError as error:
            raise to_script_error(error, what="expression") from None

    def evaluate(self, task, expression: str, external_context=None) -> Any:
        try:
            return self.sandbox.evaluate(expression, task.data, external_context)
        except SandboxError as error:
            raise self._task_error(task, error, "expression") from None

    def execute(self, task, script: str, external_context=None) -> bool | None:
        try:
            self.sandbox.execute(script, task.data, external_context)
        except SandboxError as error:
            raise self._task_error(task, error, "script") from None
        except ThrownBpmnError as thrown:
            return self._throw_bpmn_error(task, thrown)
        return True

    @staticmethod
    def _throw_bpmn_error(task, thrown: ThrownBpmnError) -> bool | None:
        """Throw the script's ``BpmnError`` from its task. Caught (error boundary, event sub-process):
        the task stays started and the catching event cancels it. Not caught: the task is in error and
        the error stays among the workflow's events, where the runtime turns it into an incident."""
        top = task.workflow.top_workflow
        pending = len(top.bpmn_events)
        ErrorEventDefinition(thrown.code, code=thrown.code).throw(task)
        caught = len(top.bpmn_events) == pending
        return None if caught else False

    def call_service(self, task, **kwargs):
        spec = getattr(task, "task_spec", None)
        raise ScriptError(f"Service task {getattr(spec, 'bpmn_id', '')} cannot call a service: "
                          "service operations are not supported by this server",
                          element_id=getattr(spec, "bpmn_id", None))

    @staticmethod
    def _task_error(task, error: SandboxError, what: str) -> ScriptError:
        spec = getattr(task, "task_spec", None)
        return to_script_error(error, element_id=getattr(spec, "bpmn_id", None),
                               element_name=getattr(spec, "bpmn_name", None), what=what)


def make_script_engine(settings, *, now: Callable[[], _dt.datetime] | None = None) -> SandboxScriptEngine:
    """The sandboxed engine for these settings; ``now`` (e.g. the injected Clock's ``now``) feeds
    the scripts' ``now()``/``today()`` helpers."""
    return SandboxScriptEngine(Sandbox.from_settings(settings, now=now))
