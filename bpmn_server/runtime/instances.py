"""Process instances (cf. Camunda's RuntimeService): start, follow, list, terminate, suspend/resume,
read and change variables, retry a failed instance. Every change is one command (commands.py).

Who may read an instance (its status, variables, history; the ``principal`` of the reads; internal
callers pass none): administrators, the system, members of the auditor group, the user who started
it, the owner of its process definition, and whoever has, had or may take one of its tasks — its
assignee, who claimed or completed it, or a candidate (a task open to everyone opens its instance to
everyone). Instance data (a customer's refund, an employee's leave) is for the people working the
case, not for every signed-in user. Lists show only what the principal may read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, func, select, union, update

from ..audit import events
from ..audit.service import AUDITOR_GROUP
from ..clock import Clock
from ..errors import Forbidden, InvalidInput, NotExecutable, NotFound
from ..identity.principal import Principal
from ..store import Database
from ..store.models import AuditEvent, Incident, ProcessDefinition, ProcessInstance
from . import idempotency
from .commands import (
    ACTIVE,
    FAILED,
    RUNNING,
    SUSPENDED,
    TERMINATED,
    WITH_DEFINITION,
    Command,
    CommandRunner,
    element_type,
    is_bpmn_element,
    record_denied,
)
from .engine import Engine
from .tasks import involved_instances, principal_params
from .views import ActivityInfo, IncidentInfo, InstanceInfo, Page

STATUSES = ("running", "waiting", "completed", "terminated", "failed", "suspended")
LIVE_STATES = TaskState.READY | TaskState.WAITING | TaskState.ERROR | TaskState.STARTED
_HIDDEN_VARIABLES = {"data_objects"}


class InstanceService:
    """The public surface for process instances."""

    def __init__(self, database: Database, clock: Clock, engine: Engine, definitions) -> None:
        self.database = database
        self.clock = clock
        self.engine = engine
        self.definitions = definitions
        self.runner = CommandRunner(database, clock, engine)
        self.idempotency_keys = idempotency.IdempotencyKeys(database)  # shared with the message service

    # -- commands --------------------------------------------------------------------------------
    def apply(self, instance_id: str, action: Callable[[BpmnWorkflow], Any], *, actor: str,
              now: datetime | None = None) -> Any:
        """Run ``action(workflow)`` on a running or waiting instance as one command.

        After the action the engine fires due timers (as of ``now``, default the service clock) and
        runs until the instance waits; the state, projections and audit events are stored in one
        transaction. A concurrent change raises ``Conflict``; an instance that is not running or
        waiting (suspended, failed, ended) raises ``Conflict`` with ``extra['status']``. Returns
        what the action returned. The timer worker fires a due timer with ``apply(id, lambda wf:
        None, actor="system:timer", now=due_at)``.
        """
        return self.runner.run(instance_id, lambda command: action(command.workflow), actor=actor, now=now)

    def start(
        self,
        key: str | None = None,
        *,
        principal: Principal,
        version: int | None = None,
        definition_id: int | None = None,
        business_key: str | None = None,
        variables: dict[str, Any] | None = None,
        action: Callable[[Command], Any] | None = None,
        idempotency_key: str | None = None,
    ) -> InstanceInfo:
        """Start the latest active version of ``key`` (or the given version / definition id).

        With an ``idempotency_key`` (runtime/idempotency.py), a request repeated with the same key by
        the same user within a day answers with the instance the first one started (``replayed``),
        as it is now, instead of starting another; the same key with a different request is refused.
        """
        if idempotency.checked_key(idempotency_key) is None:
            return self._start(key, principal, version, definition_id, business_key, variables, action)
        keyed = self.idempotency_keys.request(principal.username, idempotency_key, {
            "start": key, "version": version, "definition_id": definition_id, "business_key": business_key,
            "variables": variables}, self.clock.now())

        def start_and_remember(command: Command) -> None:
            keyed.remember(command, idempotency.STARTED)
            if action is not None:
                action(command)

        def replay(earlier: idempotency.Answer) -> InstanceInfo:
            info = self.get(earlier.instance_id)
            info.replayed = True
            return info

        return keyed.once(lambda: self._start(key, principal, version, definition_id, business_key, variables,
                                              start_and_remember), replay)

    def _start(self, key, principal, version, definition_id, business_key, variables, action) -> InstanceInfo:
        definition = self.startable_definition(key, version=version, definition_id=definition_id)
        variables = check_variables(variables)
        command = self.runner.start(definition, actor=principal.username, business_key=business_key,
                                    variables=variables, action=action)
        return self._info(command.instance, command.definition, workflow=command.workflow)

    def start_by_timer(self, definition: ProcessDefinition, element_id: str, *, actor: str,
                       now: datetime | None = None) -> str:
        """Start an instance whose timer start event ``element_id`` fires at once; returns its id."""
        from .timers import fire_start_event

        def start_event_fires(command: Command) -> None:
            workflow = command.workflow
            workflow.do_engine_steps()
            for task in workflow.get_tasks(state=TaskState.WAITING):
                if task.task_spec.bpmn_id == element_id:
                    fire_start_event(task)  # also adds the path a cycle timer does not predict

        command = self.runner.start(definition, actor=actor, action=start_event_fires, now=now)
        return command.instance.id

    def startable_definition(self, key: str | None, *, version: int | None = None,
                             definition_id: int | None = None) -> ProcessDefinition:
        """The definition to start, or NotFound / NotExecutable saying why it cannot start."""
        if definition_id is not None:
            retired_at = self.definitions.locate_id(definition_id)
        elif key:
            definition_id, retired_at = self.definitions.locate(key, version)
        else:
            raise InvalidInput("say which process to start: a key or a definition id",
                               errors=[{"field": "key", "message": "is required"}])
        definition = self.runner.definition(definition_id)  # cached: what a start reads never changes
        label = f"process '{definition.key}' version {definition.version}"
        if not definition.executable:
            raise NotExecutable(f"{label} is not executable (isExecutable is not true)")
        if definition.error_count:
            errors = [f for f in definition.findings or [] if f.get("severity") == "error"]
            raise NotExecutable(f"{label} has {definition.error_count} error finding(s) and cannot start",
                                findings=errors)
        if retired_at is not None:
            raise NotExecutable(f"{label} is retired; start a current version")
        self.engine.specs_for(definition)  # NotExecutable if the engine cannot load it
        return definition

    def terminate(self, instance_id: str, *, principal: Principal, reason: str | None = None,
                  expected_version: int | None = None) -> InstanceInfo:
        """Cancel every open task and timer and end the instance as terminated."""

        def action(command: Command) -> None:
            self._require_operator(principal, command.instance)
            command.workflow.cancel()
            command.status = TERMINATED
            command.audit(events.INSTANCE_TERMINATED, data={"reason": reason})

        return self._command(instance_id, action, principal, expected_version,
                             allowed=ACTIVE | {FAILED, SUSPENDED}, name="terminate")

    def suspend(self, instance_id: str, *, principal: Principal, expected_version: int | None = None) -> InstanceInfo:
        """Hold the instance: its tasks cannot be completed and its timers do not fire until resumed."""

        def action(command: Command) -> None:
            self._require_operator(principal, command.instance)
            command.status = SUSPENDED
            command.audit(events.INSTANCE_SUSPENDED)

        return self._command(instance_id, action, principal, expected_version, name="suspend")

    def resume(self, instance_id: str, *, principal: Principal, expected_version: int | None = None) -> InstanceInfo:
        """Continue a suspended instance; timers that fell due meanwhile fire now."""

        def action(command: Command) -> None:
            self._require_operator(principal, command.instance)
            command.instance.status = RUNNING
            command.audit(events.INSTANCE_RESUMED)

        return self._command(instance_id, action, principal, expected_version, allowed={SUSPENDED}, name="resume")

    def retry(self, instance_id: str, *, principal: Principal, variables: dict[str, Any] | None = None,
              expected_version: int | None = None) -> InstanceInfo:
        """Run the failed element again (after its data or the model was fixed); resolves the incidents."""
        variables = check_variables(variables)

        def action(command: Command) -> None:
            self._require_operator(principal, command.instance)
            failed = command.workflow.get_tasks(state=TaskState.ERROR)
            if variables:
                set_variables(command.workflow, variables, [])
            for task in failed:
                task._set_state(TaskState.READY)
            command.session.execute(
                update(Incident)
                .where(Incident.instance_id == command.instance.id, Incident.resolved_at.is_(None))
                .values(resolved_at=command.now, resolved_by=principal.username)
            )
            command.instance.status = RUNNING
            command.audit(events.INSTANCE_RETRIED, data={
                "elements": [t.task_spec.bpmn_id for t in failed], "variables": variables or {}})

        return self._command(instance_id, action, principal, expected_version, allowed={FAILED}, name="retry")

    def update_variables(self, instance_id: str, *, principal: Principal, set: dict[str, Any] | None = None,
                         remove: list[str] | None = None, expected_version: int | None = None) -> dict[str, Any]:
        """Set and remove process variables (audited as a delta); the engine does not move."""
        values = check_variables(set)
        remove = list(remove or [])

        def action(command: Command) -> dict[str, Any]:
            self._require_operator(principal, command.instance)
            before = current_variables(command.workflow)
            set_variables(command.workflow, values, remove)
            after = current_variables(command.workflow)
            command.run_engine = False
            command.audit(events.VARIABLES_CHANGED, data=events.variables_delta(before, after))
            return after

        return self._operate(instance_id, action, principal, "update_variables", expected_version,
                             ACTIVE | {FAILED, SUSPENDED})

    def _command(self, instance_id: str, action: Callable[[Command], Any], principal: Principal,
                 expected_version: int | None, allowed=ACTIVE, *, name: str) -> InstanceInfo:
        def wrapped(command: Command) -> Command:
            action(command)
            return command

        command = self._operate(instance_id, wrapped, principal, name, expected_version, allowed)
        return self._info(command.instance, command.definition, workflow=command.workflow)

    def _operate(self, instance_id: str, action: Callable[[Command], Any], principal: Principal, name: str,
                 expected_version: int | None, allowed) -> Any:
        """Run an operator command; a refusal is audited as permission-denied before it is raised."""
        try:
            return self.runner.run(instance_id, action, actor=principal.username,
                                   expected_version=expected_version, allowed=allowed)
        except Forbidden as error:
            record_denied(self.database, self.clock, principal.username, f"instance.{name}", error,
                          instance_id=instance_id)
            raise

    @staticmethod
    def _require_operator(principal: Principal, instance: ProcessInstance) -> None:
        if not (principal.is_admin or principal.is_system or principal.username == instance.started_by):
            raise Forbidden("only the user who started this instance or an administrator may do that")

    # -- queries ---------------------------------------------------------------------------------
    def get(self, instance_id: str, *, principal: Principal | None = None,
            with_variables: bool = True) -> InstanceInfo:
        """An instance with its status, current activities, variables and incidents."""
        with self.database.read() as session:
            instance = self._load(session, instance_id, principal)
            workflow = self.engine.restore(instance.definition, instance.state, self.clock)
            incidents = session.scalars(
                select(Incident).where(Incident.instance_id == instance_id).order_by(Incident.id)
            ).all()
            return self._info(instance, instance.definition, workflow=workflow, incidents=incidents,
                              with_variables=with_variables)

    def variables(self, instance_id: str, *, principal: Principal | None = None) -> tuple[dict[str, Any], int]:
        """The current process variables and the instance's row version (for If-Match)."""
        with self.database.read() as session:
            instance = self._load(session, instance_id, principal)
            workflow = self.engine.restore(instance.definition, instance.state, self.clock)
            return current_variables(workflow), instance.row_version

    def history(self, instance_id: str, *, principal: Principal | None = None) -> list[dict[str, Any]]:
        """What happened to the instance, in order, from the audit log."""
        with self.database.read() as session:
            self._load(session, instance_id, principal)
            rows = session.scalars(
                select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.sequence)
            ).all()
            return [
                {"sequence": r.sequence, "timestamp": r.timestamp, "event_type": r.event_type,
                 "element_id": r.element_id, "element_name": r.element_name, "element_type": r.element_type,
                 "transition": r.transition, "actor": r.actor, "group": r.group, "data": r.data}
                for r in rows
            ]

    def list(
        self,
        *,
        key: str | None = None,
        version: int | None = None,
        definition_id: int | None = None,
        status: str | None = None,
        business_key: str | None = None,
        started_by: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        principal: Principal | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[InstanceInfo]:
        """Instances, newest first, filtered and paginated (with the total number of matches); with a
        ``principal``, only those it may read."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown status '{status}'", errors=[
                {"field": "status", "message": f"must be one of {', '.join(STATUSES)}"}])
        query = select(ProcessInstance).join(ProcessDefinition, ProcessInstance.definition_id == ProcessDefinition.id)
        conditions = []
        if key is not None:
            conditions.append(ProcessDefinition.key == key)
        if version is not None:
            conditions.append(ProcessDefinition.version == version)
        if definition_id is not None:
            conditions.append(ProcessInstance.definition_id == definition_id)
        if status is not None:
            conditions.append(ProcessInstance.status == status)
        if business_key is not None:
            conditions.append(ProcessInstance.business_key == business_key)
        if started_by is not None:
            conditions.append(ProcessInstance.started_by == started_by)
        if started_after is not None:
            conditions.append(ProcessInstance.started_at >= started_after)
        if started_before is not None:
            conditions.append(ProcessInstance.started_at < started_before)
        params = {}
        if principal is not None and not sees_every_instance(principal):
            conditions.append(_readable(bool(principal.groups)))
            params = principal_params(principal)
        query = query.where(*conditions)
        with self.database.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()), params) or 0
            rows = session.scalars(
                query.options(WITH_DEFINITION)
                .order_by(ProcessInstance.started_at.desc(), ProcessInstance.id).offset(offset).limit(limit),
                params,
            ).all()
            items = [self._info(row, row.definition) for row in rows]
        return Page(items, total, offset, limit)

    @staticmethod
    def _load(session, instance_id: str, principal: Principal | None) -> ProcessInstance:
        """The instance, if it exists (NotFound) and ``principal`` may read it (Forbidden)."""
        instance = session.get(ProcessInstance, instance_id, options=[WITH_DEFINITION])
        if instance is None:
            raise NotFound(f"there is no process instance {instance_id}", instance_id=instance_id)
        if principal is not None and not sees_every_instance(principal):
            readable = session.scalar(_readable_one(bool(principal.groups)),
                                      {**principal_params(principal), "instance_id": instance_id})
            if readable is None:
                raise Forbidden(f"{principal.username} may not see process instance {instance_id}: it is for "
                                "whoever started it, owns its process, works or may take one of its tasks, "
                                "and for auditors", instance_id=instance_id)
        return instance

    @staticmethod
    def _info(instance: ProcessInstance, definition: ProcessDefinition, *, workflow: BpmnWorkflow | None = None,
              incidents=None, with_variables: bool = True) -> InstanceInfo:
        info = InstanceInfo(
            id=instance.id,
            definition_key=definition.key,
            definition_version=definition.version,
            definition_id=definition.id,
            business_key=instance.business_key,
            status=instance.status,
            started_by=instance.started_by,
            started_at=instance.started_at,
            ended_at=instance.ended_at,
            row_version=instance.row_version,
            parent_instance_id=instance.parent_instance_id,
        )
        if workflow is not None:
            info.activities = current_activities(workflow)
            if with_variables:
                info.variables = current_variables(workflow)
        if incidents is not None:
            info.incidents = [
                IncidentInfo(id=i.id, kind=i.kind, element_id=i.element_id, message=i.message, line=i.line,
                             created_at=i.created_at, resolved_at=i.resolved_at, resolved_by=i.resolved_by)
                for i in incidents
            ]
        return info


def sees_every_instance(principal: Principal) -> bool:
    """Administrators, the system and auditors read every instance (see the module docstring)."""
    return principal.is_admin or principal.is_system or AUDITOR_GROUP in principal.groups


@functools.cache
def _readable(has_groups: bool):
    """SQL over ``process_instance``: the principal (values bound by ``principal_params``) started the
    instance, owns its process, or is involved in one of its tasks. One set of instance ids, each part
    found from its own table once (not a probe per instance row), which the instance query semi-joins;
    built once per shape, all values bound."""
    username = bindparam("username")
    readable = union(
        select(ProcessInstance.id).where(ProcessInstance.started_by == username),
        select(ProcessInstance.id).where(ProcessInstance.definition_id.in_(
            select(ProcessDefinition.id).where(ProcessDefinition.owner == username))),
        *involved_instances(has_groups),
    )
    return ProcessInstance.id.in_(readable)


@functools.cache
def _readable_one(has_groups: bool):
    """The id of the bound ``instance_id`` if the principal may read it (``_readable``)."""
    return select(ProcessInstance.id).where(ProcessInstance.id == bindparam("instance_id"), _readable(has_groups))


# -- variables and activities -------------------------------------------------------------------
def check_variables(variables: Any) -> dict[str, Any]:
    """Variables must be an object of JSON values with names usable in expressions and scripts."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidInput("variables must be an object", errors=[{"field": "variables", "message": "not an object"}])
    errors = []
    for name, value in variables.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            errors.append({"field": str(name), "message": "is not a valid variable name (letters, digits, _; "
                                                          "not starting with a digit or _)"})
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            errors.append({"field": name, "message": "is not a JSON value"})
    if errors:
        raise InvalidInput("; ".join(f"{e['field']} {e['message']}" for e in errors), errors=errors)
    return dict(variables)


def current_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The process variables now: the data of the live tasks (or the final data once completed)."""
    if workflow.is_completed():
        data = dict(workflow.data)
        if not data:
            for task in workflow.get_tasks(state=TaskState.COMPLETED):
                data.update(task.data)
    else:
        data = {}
        for task in frontier_tasks(workflow):
            data.update(task.data)
    return {k: v for k, v in data.items() if k not in _HIDDEN_VARIABLES and not callable(v)}


def frontier_tasks(workflow: BpmnWorkflow) -> list:
    """The tasks whose data the process continues with: the live ones, and finished ones whose data
    waits at a join (no finished child yet), oldest change first so that newer data wins."""
    tasks = list(workflow.get_tasks(state=LIVE_STATES))
    for task in workflow.get_tasks(state=TaskState.COMPLETED):
        if task.children and not any(child.state == TaskState.COMPLETED for child in task.children):
            tasks.append(task)
    return sorted(tasks, key=lambda t: t.last_state_change or 0)


def set_variables(workflow: BpmnWorkflow, values: dict[str, Any], remove: list[str]) -> None:
    """Set and remove variables on the frontier tasks, so whatever runs next sees them."""
    for task in frontier_tasks(workflow):
        task.data.update(values)
        for name in remove:
            task.data.pop(name, None)


def current_activities(workflow: BpmnWorkflow) -> list[ActivityInfo]:
    """The model elements the instance is at: open human tasks, waiting events, failed elements."""
    names = {TaskState.READY: "ready", TaskState.WAITING: "waiting", TaskState.ERROR: "failed",
             TaskState.STARTED: "started"}
    found = []
    for task in workflow.get_tasks(state=LIVE_STATES):
        spec = task.task_spec
        if not is_bpmn_element(spec):
            continue
        found.append(ActivityInfo(element_id=spec.bpmn_id, name=spec.bpmn_name, type=element_type(spec),
                                  state=names.get(task.state, TaskState.get_name(task.state).lower())))
    return found
