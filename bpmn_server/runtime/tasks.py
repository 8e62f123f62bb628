"""Human task lists and task actions (cf. Camunda's TaskService): list for a principal, get with the
form and SOP link, claim, unclaim, assign/delegate, complete with validated data, comment.

Who may do what (the services decide; the API and web pages only pass the principal):

* see / comment: administrators, the assignee, the candidates (candidate users, members of a
  candidate group), and whoever claimed or completed it; a task with neither assignee nor candidates
  is open to every signed-in user;
* claim: a candidate (or administrator) while nobody else has the task;
* unclaim: the assignee or an administrator;
* assign / delegate: the assignee (hands it on) or an administrator;
* complete: the assignee, or a candidate of an unassigned task (claims it in the same command), or
  an administrator.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, String, and_, bindparam, cast, exists, false, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..audit import events
from ..audit.chain import record
from ..clock import Clock
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, PreconditionFailed
from ..identity.principal import Principal
from ..store import Database
from ..store.models import (
    HumanTask,
    ProcessDefinition,
    ProcessInstance,
    TaskCandidateGroup,
    TaskComment,
    User,
)
from .commands import ACTIVE, WITH_DEFINITION, Command, CommandRunner, is_contention, record_denied
from .forms import validate_submission
from .projection import (
    CLAIMED,
    OPEN,
    OPEN_STATUSES,
    TASK_CANCELLED,
    TASK_COMPLETED,
    load_open_tasks,
    store_task,
    task_row,
)
from .reminders import notify_task_assigned
from .views import CommentInfo, Page, TaskInfo

SCOPES = ("mine", "claimable", "all")
TASK_STATUSES = (OPEN, CLAIMED, TASK_COMPLETED, TASK_CANCELLED)
SORTS = {
    "created": HumanTask.created_at,
    "due": HumanTask.due_at,
    "priority": HumanTask.priority,
    "name": HumanTask.name,
}
MAX_COMMENT = 10_000


class TaskService:
    """The public surface for human tasks."""

    def __init__(self, database: Database, clock: Clock, runner: CommandRunner, engine=None) -> None:
        self.database = database
        self.clock = clock
        self.runner = runner
        self.engine = engine

    # -- queries ---------------------------------------------------------------------------------
    def list(
        self,
        principal: Principal,
        *,
        scope: str | None = None,
        status: str | None = None,
        process_key: str | None = None,
        instance_id: str | None = None,
        name: str | None = None,
        priority: int | None = None,
        min_priority: int | None = None,
        due_before: datetime | None = None,
        due_after: datetime | None = None,
        overdue: bool | None = None,
        created_before: datetime | None = None,
        created_after: datetime | None = None,
        candidate_group: str | None = None,
        assignee: str | None = None,
        sort: str = "created",
        offset: int = 0,
        limit: int = 50,
    ) -> Page[TaskInfo]:
        """The tasks a principal may act on ("mine", "claimable", or both by default; "all" for admins)."""
        if scope is not None and scope not in SCOPES:
            raise InvalidInput(f"unknown scope '{scope}'", errors=[
                {"field": "scope", "message": f"must be one of {', '.join(SCOPES)}"}])
        if status is not None and status not in TASK_STATUSES:
            raise InvalidInput(f"unknown status '{status}'", errors=[
                {"field": "status", "message": f"must be one of {', '.join(TASK_STATUSES)}"}])
        if scope == "all" and not principal.is_admin:
            raise Forbidden("only administrators may list every task")
        values = {"process_key": process_key, "instance_id": instance_id, "priority": priority,
                  "min_priority": min_priority, "due_before": due_before, "due_after": due_after,
                  "created_before": created_before, "created_after": created_after,
                  "candidate_group": candidate_group, "assignee": assignee,
                  "name": f"%{_like_escaped(name.lower())}%" if name else None}
        filters = {key: value for key, value in values.items() if value is not None}
        if overdue is not None:
            filters["overdue" if overdue else "not_overdue"] = True
        page, count = _list_statements(scope, status, bool(principal.groups), frozenset(filters), sort)
        params = {**filters, **principal_params(principal), "now": self.clock.now(), "status": status,
                  "offset": offset, "limit": limit}
        with self.database.query() as connection:
            # the total rides along on every row (a window count): one query for page and total,
            # unless the page is past the end and has no row to carry it
            rows = connection.execute(page, params).all()
            if rows:
                total = rows[0].total
            elif offset:
                total = connection.execute(count, params).scalar() or 0
            else:
                total = 0
        return Page([_info(row) for row in rows], total, offset, limit)

    def get(self, task_id: str, principal: Principal) -> TaskInfo:
        """One task with its form and the link to its SOP step (403 if the principal may not see it)."""
        with self.database.query() as connection:
            task = self._load(connection, task_id)
        _require_visible(task, principal)
        info = _info(task)
        info.documentation = self._documentation(task)
        return info

    def comments(self, task_id: str, principal: Principal) -> list[CommentInfo]:
        with self.database.read() as session:
            task = self._load(session, task_id)
            _require_visible(task, principal)
            rows = session.scalars(
                select(TaskComment).where(TaskComment.task_id == task_id).order_by(TaskComment.id)
            ).all()
            return [CommentInfo(r.id, r.task_id, r.author, r.text, r.created_at) for r in rows]

    # -- actions without engine steps -------------------------------------------------------------
    def claim(self, task_id: str, principal: Principal, *, expected_version: int | None = None) -> TaskInfo:
        """Take an open task; 409 if someone else has it, 403 if the principal is not a candidate."""

        def change(session: Session, task: HumanTask, now: datetime) -> list[tuple[str, dict]]:
            if task.assignee == principal.username:
                if task.status == OPEN:
                    task.status, task.claimed_at, task.claimed_by = CLAIMED, now, principal.username
                    return [(events.TASK_CLAIMED, {})]
                return []
            if task.assignee is not None:
                raise Conflict(f"task {task.id} is already claimed by {task.assignee}", assignee=task.assignee)
            if not (principal.is_admin or _is_candidate(task, principal)):
                raise Forbidden(f"{principal.username} is not a candidate for task '{task.name}' "
                                f"(candidate groups: {', '.join(task.candidate_groups) or 'none'})")
            task.assignee = principal.username
            task.status, task.claimed_at, task.claimed_by = CLAIMED, now, principal.username
            return [(events.TASK_CLAIMED, {})]

        return self._change(task_id, principal, change, expected_version, "claim")

    def unclaim(self, task_id: str, principal: Principal, *, expected_version: int | None = None) -> TaskInfo:
        """Give a task back to its candidates (the assignee or an administrator)."""

        def change(session: Session, task: HumanTask, now: datetime) -> list[tuple[str, dict]]:
            if task.assignee is None:
                return []
            if not (principal.is_admin or task.assignee == principal.username):
                raise Forbidden(f"only {task.assignee} or an administrator may give this task back")
            previous = task.assignee
            task.assignee, task.status, task.claimed_at, task.claimed_by = None, OPEN, None, None
            return [(events.TASK_UNCLAIMED, {"previous_assignee": previous})]

        return self._change(task_id, principal, change, expected_version, "unclaim")

    def assign(self, task_id: str, assignee: str | None, principal: Principal, *,
               expected_version: int | None = None) -> TaskInfo:
        """Hand a task to someone (the assignee delegates, an administrator assigns); None unassigns."""

        def change(session: Session, task: HumanTask, now: datetime) -> list[tuple[str, dict]]:
            previous = task.assignee
            if not (principal.is_admin or (previous is not None and previous == principal.username)):
                raise Forbidden("only the task's assignee or an administrator may assign it")
            if assignee == previous:
                return []
            if assignee is None:
                task.assignee, task.status, task.claimed_at, task.claimed_by = None, OPEN, None, None
                return [(events.TASK_UNCLAIMED, {"previous_assignee": previous, "by": principal.username})]
            user = session.get(User, assignee)
            if user is None or not user.active:
                raise InvalidInput(f"there is no active user '{assignee}'",
                                   errors=[{"field": "assignee", "message": "is not an active user"}])
            task.assignee, task.status, task.claimed_at, task.claimed_by = assignee, CLAIMED, now, assignee
            kind = events.TASK_ASSIGNED if previous is None else events.TASK_DELEGATED
            notify_task_assigned(session, task, by=principal.username, now=now)  # outbox, same transaction
            return [(kind, {"assignee": assignee, "previous_assignee": previous, "by": principal.username})]

        return self._change(task_id, principal, change, expected_version, "assign")

    def comment(self, task_id: str, text: str, principal: Principal) -> CommentInfo:
        """Add a comment to a task (anyone who may see it)."""
        text = (text or "").strip()
        if not text or len(text) > MAX_COMMENT:
            raise InvalidInput("a comment needs text (at most 10,000 characters)",
                               errors=[{"field": "text", "message": "is empty or too long"}])
        with self.database.transaction() as session:
            task = self._load(session, task_id)
            _require_visible(task, principal)
            now = self.clock.now()
            comment = TaskComment(task_id=task_id, author=principal.username, text=text, created_at=now)
            session.add(comment)
            session.flush()
            self._audit(session, events.TASK_COMMENTED, task, principal.username, now,
                        {"comment_id": comment.id, "text": text})
            return CommentInfo(comment.id, task_id, comment.author, comment.text, comment.created_at)

    def _change(self, task_id: str, principal: Principal, change, expected_version: int | None,
                action: str) -> TaskInfo:
        """Run ``change(session, task, now)`` on a copy of the task's row and write what it changed back
        in one UPDATE guarded by the row version (a concurrent change: 409), then its audit events."""
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.orm.exc import StaleDataError

        where: dict[str, Any] = {}
        try:
            with self.database.transaction() as session:
                task = task_row(self._load(session, task_id))
                where = _where(task)
                _require_open(task, task.instance_status)
                if expected_version is not None and task.row_version != expected_version:
                    raise PreconditionFailed(f"task {task_id} is at version {task.row_version}, not "
                                             f"{expected_version}: someone changed it first",
                                             row_version=task.row_version)
                now = self.clock.now()
                happened = change(session, task, now)
                store_task(session, task)  # before the audit head is locked (lock order: the task row, then the head)
                for event_type, data in happened:
                    self._audit(session, event_type, task, principal.username, now, {"task_id": task.id, **data})
                return _info(task)
        except StaleDataError as err:
            raise Conflict(f"task {task_id} was changed by someone else at the same time; reload it") from err
        except Forbidden as err:
            self._denied(principal, action, err, where)
            raise
        except OperationalError as err:
            if not is_contention(err):
                raise
            raise Conflict(f"task {task_id} is busy with another change; try again") from err

    # -- complete (a command on the instance) ------------------------------------------------------
    def complete(self, task_id: str, data: dict[str, Any] | None, principal: Principal, *,
                 expected_version: int | None = None) -> TaskInfo:
        """Complete a task with form data; 422 listing each bad field (nothing changes), 409 if it is gone."""
        with self.database.query() as connection:
            task = self._load(connection, task_id)
        if task.status not in OPEN_STATUSES:
            raise _settled(task)
        try:
            _require_completer(task, principal)
        except Forbidden as err:
            self._denied(principal, "complete", err, _where(task))
            raise
        values = validate_submission(task.form or {}, data)
        instance_id = task.instance_id

        def action(command: Command) -> tuple[HumanTask, int, str | None]:
            # the instance's open tasks, loaded once: this one, and the rows reconcile goes through
            row = next((t for t in load_open_tasks(command) if t.id == task_id), None)
            if row is None or row.status not in OPEN_STATUSES:
                raise Conflict(f"task {task_id} was completed or withdrawn meanwhile")
            if expected_version is not None and row.row_version != expected_version:
                raise PreconditionFailed(f"task {task_id} is at version {row.row_version}, not {expected_version}",
                                         row_version=row.row_version)
            _require_completer(row, principal)
            spiff_task = _spiff_task(command, row.spiff_task_id)
            if spiff_task is None or spiff_task.state != TaskState.READY:
                raise Conflict(f"task {task_id} is no longer waiting to be completed")
            spiff_task.data.update(values)
            spiff_task.run()
            if row.assignee is None:
                row.assignee, row.claimed_at, row.claimed_by = principal.username, command.now, principal.username
            row.status, row.completed_at, row.completed_by = TASK_COMPLETED, command.now, principal.username
            command.audit(events.TASK_COMPLETED, element_id=row.element_id, element_name=row.name,
                          element_type="userTask", group=row.lane or _first(row.candidate_groups),
                          data={"task_id": row.id, "values": values})
            return row, command.definition.version, command.instance.business_key

        row, version, business_key = self.runner.run(instance_id, action, actor=principal.username, allowed=ACTIVE)
        # built after the commit: the row version as stored
        return _info(row, definition_version=version, business_key=business_key)

    # -- helpers ---------------------------------------------------------------------------------
    def _denied(self, principal: Principal, action: str, error: Forbidden, where: dict[str, Any]) -> None:
        """Audit a refused task action (in its own transaction: the refused one rolls back)."""
        record_denied(self.database, self.clock, principal.username, f"task.{action}", error, **where)

    @staticmethod
    def _load(reader: Session | Connection, task_id: str):
        """The task's row (all its columns, with ``definition_version``, ``business_key`` and
        ``instance_status``), or NotFound."""
        row = reader.execute(_ONE_TASK, {"task_id": task_id}).first()
        if row is None:
            raise NotFound(f"there is no task {task_id}", task_id=task_id)
        return row

    @staticmethod
    def _audit(session: Session, event_type: str, task, actor: str, now: datetime, data: dict[str, Any]) -> None:
        record(session, event_type, actor=actor, timestamp=now, instance_id=task.instance_id,
               definition_key=task.process_key, definition_version=task.definition_version,
               element_id=task.element_id, element_name=task.name, element_type="userTask",
               group=task.lane or _first(task.candidate_groups), data=data)

    def _documentation(self, task: HumanTask) -> str | None:
        if self.engine is None:
            return None
        try:
            with self.database.read() as session:
                instance = session.get(ProcessInstance, task.instance_id, options=[WITH_DEFINITION])
                specs = self.engine.specs_for(instance.definition)
        except Exception:  # noqa: BLE001 - documentation is a convenience; the task works without it
            return None
        for spec in (specs.spec, *specs.subprocess_specs.values()):
            task_spec = spec.task_specs.get(task.element_id)
            if task_spec is not None:
                return getattr(task_spec, "documentation", None)
        return None


def _where(task) -> dict[str, Any]:
    return {"instance_id": task.instance_id, "definition_key": task.process_key,
            "definition_version": task.definition_version, "element_id": task.element_id, "task_id": task.id}


_TASK_TABLE = HumanTask.__table__
# a task row with what its views need from the instance and definition: one SELECT, Core rows (no ORM
# objects); built once, since statements are immutable and .where() returns a new one
_TASK_QUERY = (
    select(_TASK_TABLE, ProcessDefinition.version.label("definition_version"), ProcessInstance.business_key,
           ProcessInstance.status.label("instance_status"))
    .join(ProcessInstance, _TASK_TABLE.c.instance_id == ProcessInstance.id)
    .join(ProcessDefinition, ProcessInstance.definition_id == ProcessDefinition.id)
)
_ONE_TASK = _TASK_QUERY.where(_TASK_TABLE.c.id == bindparam("task_id"))


def _order(sort: str) -> list:
    descending = sort.startswith("-")
    field = sort.lstrip("-+")
    if field not in SORTS:
        raise InvalidInput(f"cannot sort by '{field}'", errors=[
            {"field": "sort", "message": f"must be one of {', '.join(SORTS)} (prefix - for descending)"}])
    column = SORTS[field]
    return [column.desc() if descending else column.asc(), HumanTask.created_at, HumanTask.id]


@lru_cache(maxsize=512)  # one pair per filter shape; the values are bound parameters
def _list_statements(scope: str | None, status: str | None, has_groups: bool, filters: frozenset[str],
                     sort: str) -> tuple[Select, Select]:
    """The task-list query for one shape of request: its page (with the total as a window count) and
    its count. Parameters: the filters' values by name, ``now``, ``status``, ``username``, ``groups``,
    ``candidate_user`` (a LIKE pattern of the JSON-quoted username), ``offset`` and ``limit``."""
    conditions = [HumanTask.status == bindparam("status")] if status else [HumanTask.status.in_(OPEN_STATUSES)]
    username = bindparam("username")
    mine = HumanTask.assignee == username
    candidate = candidate_condition(has_groups)
    claimable = and_(HumanTask.assignee.is_(None), HumanTask.status == OPEN, candidate)
    if scope == "mine":
        conditions.append(mine)
    elif scope == "claimable":
        conditions.append(claimable)
    elif scope is None and status not in (TASK_COMPLETED, TASK_CANCELLED):
        conditions.append(or_(mine, claimable))
    elif scope is None:
        conditions.append(involved_condition(has_groups))
    conditions += [_FILTERS[name]() for name in sorted(filters)]
    query = _TASK_QUERY.where(*conditions)
    page = (query.add_columns(func.count().over().label("total")).order_by(*_order(sort))
            .offset(bindparam("offset")).limit(bindparam("limit")))
    return page, select(func.count()).select_from(query.subquery())


_FILTERS = {  # filter name -> its condition, the value bound by the same name
    "process_key": lambda: HumanTask.process_key == bindparam("process_key"),
    "instance_id": lambda: HumanTask.instance_id == bindparam("instance_id"),
    "name": lambda: func.lower(HumanTask.name).like(bindparam("name"), escape="/"),
    "priority": lambda: HumanTask.priority == bindparam("priority"),
    "min_priority": lambda: HumanTask.priority >= bindparam("min_priority"),
    "due_before": lambda: HumanTask.due_at < bindparam("due_before"),
    "due_after": lambda: HumanTask.due_at >= bindparam("due_after"),
    "overdue": lambda: HumanTask.due_at < bindparam("now"),
    "not_overdue": lambda: or_(HumanTask.due_at.is_(None), HumanTask.due_at >= bindparam("now")),
    "created_before": lambda: HumanTask.created_at < bindparam("created_before"),
    "created_after": lambda: HumanTask.created_at >= bindparam("created_after"),
    "candidate_group": lambda: exists().where(TaskCandidateGroup.task_id == HumanTask.id,
                                              TaskCandidateGroup.group_name == bindparam("candidate_group")),
    "assignee": lambda: HumanTask.assignee == bindparam("assignee"),
}


def principal_params(principal: Principal) -> dict[str, Any]:
    """The bound values that ``candidate_condition`` and ``involved_condition`` compare with."""
    return {"username": principal.username, "groups": sorted(principal.groups),
            "candidate_user": f"%{_like_escaped(json.dumps(principal.username))}%"}


def involved_condition(has_groups: bool):
    """SQL: the principal (``principal_params``) has, had or may take the task: its assignee, who
    claimed or completed it, or a candidate (``candidate_condition``)."""
    return or_(_named_in(), candidate_condition(has_groups))


def involved_instances(has_groups: bool) -> list[Select]:
    """The instance ids of the tasks ``involved_condition`` matches, as SELECTs to unite: the tasks of
    the principal's groups found through the candidate-group index, the rest in one pass over the
    tasks — a set found once, where the condition would be probed task by task."""
    direct = select(HumanTask.instance_id).where(or_(_named_in(), _named_candidate(), _open_to_everyone()))
    if not has_groups:
        return [direct]
    return [direct, select(HumanTask.instance_id).join(TaskCandidateGroup, TaskCandidateGroup.task_id == HumanTask.id)
            .where(TaskCandidateGroup.group_name.in_(bindparam("groups", expanding=True)))]


def candidate_condition(has_groups: bool):
    """SQL: the principal (``username``, ``groups``) is a candidate, or the task has no candidates at
    all (open to everyone)."""
    in_group = exists().where(TaskCandidateGroup.task_id == HumanTask.id,
                              TaskCandidateGroup.group_name.in_(bindparam("groups", expanding=True))) \
        if has_groups else false()
    return or_(in_group, _named_candidate(), _open_to_everyone())


def _named_in():
    username = bindparam("username")
    return or_(HumanTask.assignee == username, HumanTask.claimed_by == username, HumanTask.completed_by == username)


def _named_candidate():
    """Candidate users are a JSON list; the principal is in it when its text contains the JSON-quoted
    username (``candidate_user``)."""
    return cast(HumanTask.candidate_users, String).like(bindparam("candidate_user"), escape="/")


def _open_to_everyone():
    """No candidate groups and no candidate users. The task's own JSON lists say so (its candidate-group
    index rows are written from the same list, once, when the task is created)."""
    return and_(*(or_(cast(column, String) == "[]", column.is_(None))
                  for column in (HumanTask.candidate_groups, HumanTask.candidate_users)))


def _like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern with escape character ``/`` (as SQLAlchemy's autoescape): its
    wildcards match literally."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _is_candidate(task: HumanTask, principal: Principal) -> bool:
    groups = task.candidate_groups or []
    users = task.candidate_users or []
    if not groups and not users:
        return True
    return principal.username in users or principal.in_any(groups)


def _require_visible(task: HumanTask, principal: Principal) -> None:
    if principal.is_admin or principal.username in (task.assignee, task.claimed_by, task.completed_by):
        return
    if _is_candidate(task, principal):
        return
    raise Forbidden(f"{principal.username} may not see task {task.id}")


def _require_completer(task: HumanTask, principal: Principal) -> None:
    if principal.is_admin or task.assignee == principal.username:
        return
    if task.assignee is not None:
        raise Forbidden(f"task {task.id} is assigned to {task.assignee}; only they may complete it")
    if not _is_candidate(task, principal):
        raise Forbidden(f"{principal.username} is not a candidate for task '{task.name}'")


def _require_open(task: HumanTask, status: str) -> None:
    """The task is open and its instance (whose ``status`` was read with it) is not suspended."""
    if task.status not in OPEN_STATUSES:
        raise _settled(task)
    if status == "suspended":
        raise Conflict(f"the process instance of task {task.id} is suspended", instance_status=status)


def _settled(task) -> Conflict:
    """409 for a task that is no longer open, saying who completed it and when: a client whose first
    completion's answer was lost can tell its own completion from someone else's."""
    if task.status == TASK_COMPLETED and task.completed_by:
        when = task.completed_at.isoformat() if task.completed_at else None
        return Conflict(f"task {task.id} is already completed (by {task.completed_by}{f' at {when}' if when else ''})",
                        task_status=task.status, completed_by=task.completed_by, completed_at=when)
    return Conflict(f"task {task.id} is already {task.status}", task_status=task.status)


def _spiff_task(command: Command, spiff_task_id: str):
    try:
        return command.workflow.get_task_from_id(UUID(spiff_task_id))
    except Exception:  # noqa: BLE001 - unknown id: the task is gone
        return None


def _first(items: list[str] | None) -> str | None:
    return items[0] if items else None


def _info(task, *, definition_version: int | None = None, business_key: str | None = None) -> TaskInfo:
    """The view of a task: a row of ``_TASK_QUERY`` (or a ``TaskRow`` of one), or a ``HumanTask`` with
    its definition version and business key given."""
    version = getattr(task, "definition_version", definition_version)
    business_key = getattr(task, "business_key", business_key)
    return TaskInfo(
        id=task.id,
        instance_id=task.instance_id,
        element_id=task.element_id,
        name=task.name,
        process_key=task.process_key,
        process_version=version,
        business_key=business_key,
        lane=task.lane,
        candidate_groups=list(task.candidate_groups or []),
        candidate_users=list(task.candidate_users or []),
        assignee=task.assignee,
        priority=task.priority,
        due_at=task.due_at,
        follow_up_at=task.follow_up_at,
        status=task.status,
        created_at=task.created_at,
        claimed_at=task.claimed_at,
        claimed_by=task.claimed_by,
        completed_at=task.completed_at,
        completed_by=task.completed_by,
        outcome=task.outcome,
        form=task.form or {"key": None, "fields": []},
        sop_url=f"/sop/{task.process_key}/v/{version}#step-{task.element_id}" if version is not None else None,
        row_version=task.row_version,
    )
