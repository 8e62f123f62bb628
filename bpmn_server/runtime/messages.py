"""Messages and signals from outside (and between instances): correlate a message to the one
instance waiting for it or to a message start event, broadcast a signal to every waiting instance.

Correlation rule: the ``message_wait`` rows of the message name, narrowed by business key, then by
correlation keys (each key must equal the instance's Spiff correlation property or, failing that,
its process variable of that name). No match: a process whose start event catches the message
starts (the latest startable version of each such process). Nothing at all: 404. Several matches
without ``all``: 409, naming how many.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..audit import events
from ..errors import BpmnServerError, Conflict, InvalidInput, NotFound
from ..identity.principal import Principal
from ..store.models import MessageWait, ProcessDefinition, ProcessInstance
from . import idempotency
from .commands import Command, caught_definitions, event_definition_of
from .instances import InstanceService, check_variables
from .views import CorrelationResult

log = logging.getLogger(__name__)

MESSAGE = "message"
SIGNAL = "signal"
_DELIVERY_ATTEMPTS = 3
Remember = Callable[[Command, str], None]  # stores an idempotency key with the command (and its outcome)


class MessageService:
    """Correlates messages and broadcasts signals; each delivery is one command on one instance."""

    def __init__(self, instances: InstanceService) -> None:
        self.instances = instances
        self.database = instances.database
        self.runner = instances.runner
        self.engine = instances.engine
        self._start_events: dict[int, set[tuple[str, str]]] = {}
        self.runner.on_thrown = self.deliver_thrown

    # -- messages --------------------------------------------------------------------------------
    def correlate(
        self,
        name: str,
        *,
        principal: Principal,
        business_key: str | None = None,
        correlation_keys: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        all: bool = False,
        idempotency_key: str | None = None,
    ) -> CorrelationResult:
        """Deliver message ``name`` to the instance waiting for it, or start the process it starts.

        With an ``idempotency_key`` (runtime/idempotency.py), the same message sent again with the key
        by the same user within a day answers as the first did (``replayed``) instead of reaching or
        starting an instance once more; not with ``all``, whose deliveries are separate commands.
        """
        if not name or not name.strip():
            raise InvalidInput("a message needs a name", errors=[{"field": "name", "message": "is required"}])
        variables = check_variables(variables)
        correlation_keys = dict(correlation_keys or {})
        if idempotency.checked_key(idempotency_key) is None:
            return self._correlate(name, principal, business_key, correlation_keys, variables, all, None)
        if all:
            raise InvalidInput("an Idempotency-Key names one delivery; a message sent with all=true may reach several "
                               "instances, each in a command of its own",
                               errors=[{"field": "Idempotency-Key", "message": "cannot be sent with all=true"}])
        keyed = self.instances.idempotency_keys.request(principal.username, idempotency_key, {
            "message": name, "business_key": business_key, "correlation_keys": correlation_keys,
            "variables": variables}, self.instances.clock.now())
        # a twin that delivered first leaves nobody waiting (409 after the retries, or 404 when nothing
        # starts with the message) or makes the key's INSERT fail
        return keyed.once(
            lambda: self._correlate(name, principal, business_key, correlation_keys, variables, False, keyed.remember),
            lambda earlier: CorrelationResult(name, [earlier.instance_id], replayed=True,
                                              started=earlier.outcome == idempotency.STARTED),
            lost_race=(Conflict, NotFound, IntegrityError))

    def _correlate(self, name: str, principal: Principal, business_key: str | None, correlation_keys: dict[str, Any],
                   variables: dict[str, Any], all: bool, remember: Remember | None) -> CorrelationResult:
        targets = self._waiting_instances(MESSAGE, name, business_key, correlation_keys)
        if not targets:
            definitions = self._starting_definitions(MESSAGE, name)
            if not definitions:
                which = f" with business key '{business_key}'" if business_key else ""
                keys = f" and correlation keys {correlation_keys}" if correlation_keys else ""
                raise NotFound(f"no process instance{which}{keys} is waiting for message '{name}', and no "
                               "deployed process starts with it", message_name=name)
            if len(definitions) > 1 and not all:
                raise Conflict(f"message '{name}' starts {len(definitions)} different processes "
                               f"({', '.join(d.key for d in definitions)}); send it with all=true to start each",
                               message_name=name)
            started = [self._start_with(MESSAGE, name, d, principal.username, business_key, variables, remember)
                       for d in definitions]
            return CorrelationResult(name, started, started=True)
        if len(targets) > 1 and not all:
            raise Conflict(f"{len(targets)} process instances wait for message '{name}'; narrow it down with a "
                           "business key or correlation keys, or send it with all=true",
                           message_name=name, matches=len(targets))
        delivered = [self._deliver(instance_id, MESSAGE, name, variables, principal.username, required=not all,
                                   remember=remember) for instance_id in targets]
        return CorrelationResult(name, [i for i in delivered if i])

    # -- signals ---------------------------------------------------------------------------------
    def signal(self, name: str, *, principal: Principal, variables: dict[str, Any] | None = None) -> CorrelationResult:
        """Broadcast signal ``name`` to every waiting instance and start processes with that signal start."""
        if not name or not name.strip():
            raise InvalidInput("a signal needs a name", errors=[{"field": "name", "message": "is required"}])
        variables = check_variables(variables)
        reached = [i for i in (self._deliver(instance_id, SIGNAL, name, variables, principal.username, required=False)
                               for instance_id in self._waiting_instances(SIGNAL, name, None, {})) if i]
        started = [self._start_with(SIGNAL, name, d, principal.username, None, variables)
                   for d in self._starting_definitions(SIGNAL, name)]
        return CorrelationResult(name, reached + started, started=bool(started))

    # -- thrown by instances ---------------------------------------------------------------------
    def deliver_thrown(self, command: Command, thrown: list[BpmnEvent]) -> None:
        """Messages and signals an instance threw that nothing inside it caught (after its commit)."""
        for event in thrown:
            definition = event.event_definition
            payload = event.payload if isinstance(event.payload, dict) else {}
            payload = {k: v for k, v in payload.items() if isinstance(k, str) and k.isidentifier()
                       and not k.startswith("_")}
            try:
                if isinstance(definition, SignalEventDefinition):
                    self.signal(definition.name, principal=_system(), variables=payload)
                elif isinstance(definition, MessageEventDefinition):
                    self._deliver_thrown_message(command, definition.name, payload)
            except BpmnServerError as err:
                log.warning("message %s thrown by instance %s was not delivered: %s",
                            definition.name, command.instance.id, err.detail)

    def _deliver_thrown_message(self, command: Command, name: str, payload: dict[str, Any]) -> None:
        sender = command.instance.id
        business_key = command.instance.business_key
        targets = [t for t in self._waiting_instances(MESSAGE, name, None, {}) if t != sender]
        same_key = [t for t in self._waiting_instances(MESSAGE, name, business_key, {}) if t != sender] \
            if business_key else []
        targets = same_key or targets
        if targets:
            self._deliver(targets[0], MESSAGE, name, payload, events.ACTOR_MESSAGE, required=False)
            return
        for definition in self._starting_definitions(MESSAGE, name):
            self._start_with(MESSAGE, name, definition, events.ACTOR_MESSAGE, business_key, payload)

    # -- helpers ---------------------------------------------------------------------------------
    def _waiting_instances(self, kind: str, name: str, business_key: str | None,
                           correlation_keys: dict[str, Any]) -> list[str]:
        query = (select(MessageWait.instance_id, MessageWait.correlation)
                 .join(ProcessInstance, ProcessInstance.id == MessageWait.instance_id)
                 .where(MessageWait.kind == kind, MessageWait.message_name == name,
                        ProcessInstance.status.in_(("running", "waiting"))))
        if business_key is not None:
            query = query.where(MessageWait.business_key == business_key)
        with self.database.read() as session:
            rows = session.execute(query.order_by(MessageWait.id)).all()
        found: list[str] = []
        for instance_id, correlation in rows:
            if instance_id in found:
                continue
            if correlation_keys and not self._correlates(instance_id, correlation or {}, correlation_keys):
                continue
            found.append(instance_id)
        return found

    def _correlates(self, instance_id: str, correlation: dict[str, Any], keys: dict[str, Any]) -> bool:
        missing = {k: v for k, v in keys.items() if k not in correlation}
        if any(correlation[k] != v for k, v in keys.items() if k in correlation):
            return False
        if not missing:
            return True
        variables, _ = self.instances.variables(instance_id)
        return all(k in variables and variables[k] == v for k, v in missing.items())

    def _deliver(self, instance_id: str, kind: str, name: str, variables: dict[str, Any], actor: str,
                 *, required: bool, remember: Remember | None = None) -> str | None:
        """One command: the waiting catch events of ``name`` in the instance catch it; None if none waits.
        ``remember`` (an idempotency key) is stored in the command that delivers."""

        def action(command: Command) -> bool:
            event_definition = MessageEventDefinition(name) if kind == MESSAGE else SignalEventDefinition(name)
            waiting = [t for t in command.workflow.get_tasks(state=TaskState.WAITING)
                       if event_definition in caught_definitions(t.task_spec)]
            if not waiting:
                if required:
                    raise Conflict(f"process instance {instance_id} no longer waits for {kind} '{name}'")
                return False
            for task in waiting:
                command.audit_task(events.MESSAGE_RECEIVED if kind == MESSAGE else events.SIGNAL_RECEIVED, task,
                                   data={"name": name, "variables": variables})
            command.workflow.catch(BpmnEvent(event_definition, payload=dict(variables)))
            if remember is not None:
                remember(command, idempotency.DELIVERED)
            return True

        for attempt in range(_DELIVERY_ATTEMPTS):
            try:
                caught = self.runner.run(instance_id, action, actor=actor)
                return instance_id if caught else None
            except Conflict:
                if required and attempt == _DELIVERY_ATTEMPTS - 1:
                    raise
        return None

    def _start_with(self, kind: str, name: str, definition: ProcessDefinition, actor: str,
                    business_key: str | None, variables: dict[str, Any], remember: Remember | None = None) -> str:
        event_definition = MessageEventDefinition(name) if kind == MESSAGE else SignalEventDefinition(name)

        def action(command: Command) -> None:
            workflow = command.workflow
            workflow.do_engine_steps()
            for task in workflow.get_tasks(state=TaskState.WAITING):
                if event_definition_of(task.task_spec) == event_definition:
                    command.audit_task(events.MESSAGE_RECEIVED if kind == MESSAGE else events.SIGNAL_RECEIVED, task,
                                       data={"name": name, "variables": variables, "started": True})
            workflow.catch(BpmnEvent(event_definition, payload=dict(variables)))
            if remember is not None:
                remember(command, idempotency.STARTED)

        command = self.runner.start(definition, actor=actor, business_key=business_key, variables=variables,
                                    action=action)
        return command.instance.id

    def _starting_definitions(self, kind: str, name: str) -> list[ProcessDefinition]:
        """The latest startable version of every process whose start event catches this message/signal."""
        latest = (select(ProcessDefinition.key, func.max(ProcessDefinition.version).label("version"))
                  .where(ProcessDefinition.retired_at.is_(None), ProcessDefinition.executable.is_(True),
                         ProcessDefinition.error_count == 0)
                  .group_by(ProcessDefinition.key).subquery())
        with self.database.read() as session:
            definitions = session.scalars(
                select(ProcessDefinition).join(latest, (latest.c.key == ProcessDefinition.key)
                                               & (latest.c.version == ProcessDefinition.version))
                .order_by(ProcessDefinition.key)
            ).all()
        return [d for d in definitions if (kind, name) in self._start_events_of(d)]

    def _start_events_of(self, definition: ProcessDefinition) -> set[tuple[str, str]]:
        cached = self._start_events.get(definition.id)
        if cached is not None:
            return cached
        found: set[tuple[str, str]] = set()
        try:
            specs = self.engine.specs_for(definition)
        except BpmnServerError:
            specs = None
        if specs is not None:
            for task_spec in specs.spec.task_specs.values():
                if not isinstance(task_spec, StartEvent):
                    continue
                event_definition = event_definition_of(task_spec)
                if isinstance(event_definition, MessageEventDefinition):
                    found.add((MESSAGE, event_definition.name))
                elif isinstance(event_definition, SignalEventDefinition):
                    found.add((SIGNAL, event_definition.name))
        self._start_events[definition.id] = found
        return found


def _system() -> Principal:
    return Principal(events.ACTOR_SIGNAL, is_admin=True)

