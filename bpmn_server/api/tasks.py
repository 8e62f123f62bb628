"""Human tasks over REST: the caller's task list (filtered, sorted, paginated), a task with its form
and SOP link, claim, unclaim, assign/delegate, complete with form data, comments. Task actions
honour ``If-Match`` with the task's row version (its ETag)."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ..runtime.tasks import SCOPES, TASK_STATUSES
from .arguments import Blueprint
from .auth import current_principal, services
from .instances import expected_version, with_etag
from .schemas import INT32, PageQuerySchema, PageSchema

blp = Blueprint("tasks", __name__, url_prefix="/api/v1", description="Human tasks")


class FormFieldSchema(Schema):
    id = fields.String(required=True)
    label = fields.String()
    type = fields.String(metadata={"description": "string, long, double, boolean, date or enum"})
    required = fields.Boolean()
    readonly = fields.Boolean()
    default = fields.Raw(allow_none=True)
    values = fields.List(fields.Dict(), metadata={"description": "enum choices: [{id, name}]"})
    validation = fields.Dict(metadata={"description": "constraints such as min, max, minlength, pattern"})


class FormSchema(Schema):
    key = fields.String(allow_none=True, metadata={"description": "camunda:formKey, if the model names one"})
    fields = fields.List(fields.Nested(FormFieldSchema))


class TaskSchema(Schema):
    id = fields.String(required=True)
    instance_id = fields.String(required=True)
    element_id = fields.String(required=True)
    name = fields.String(allow_none=True)
    process_key = fields.String(required=True)
    process_version = fields.Integer(allow_none=True)
    business_key = fields.String(allow_none=True)
    lane = fields.String(allow_none=True)
    candidate_groups = fields.List(fields.String())
    candidate_users = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    priority = fields.Integer()
    due_at = fields.DateTime(allow_none=True)
    follow_up_at = fields.DateTime(allow_none=True)
    status = fields.String(validate=validate.OneOf(TASK_STATUSES))
    created_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    claimed_by = fields.String(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"description": "why a task was cancelled"})
    form = fields.Nested(FormSchema)
    sop_url = fields.String(allow_none=True, metadata={"description": "the SOP section of this step"})
    documentation = fields.String(allow_none=True, metadata={"description": "the step's instructions"})
    row_version = fields.Integer(metadata={"description": "send it back as If-Match to update"})
    links = fields.Method("get_links")

    def get_links(self, task) -> dict[str, str]:
        base = f"/api/v1/tasks/{task.id}"
        return {"self": base, "claim": f"{base}/claim", "complete": f"{base}/complete",
                "comments": f"{base}/comments", "instance": f"/api/v1/process-instances/{task.instance_id}",
                "sop": task.sop_url}


class TaskPageSchema(PageSchema):
    items = fields.List(fields.Nested(TaskSchema), required=True)


class TaskQuerySchema(PageQuerySchema):
    scope = fields.String(validate=validate.OneOf(SCOPES), metadata={
        "description": "mine (assigned to me), claimable (my groups may claim), all (administrators); "
                       "default: mine and claimable"})
    status = fields.String(validate=validate.OneOf(TASK_STATUSES), metadata={"description": "default: open/claimed"})
    process_key = fields.String(data_key="processKey")
    instance_id = fields.String(data_key="instanceId")
    name = fields.String(metadata={"description": "part of the task name"})
    priority = fields.Integer(validate=INT32)
    min_priority = fields.Integer(data_key="minPriority", validate=INT32)
    due_before = fields.AwareDateTime(data_key="dueBefore", default_timezone=None)
    due_after = fields.AwareDateTime(data_key="dueAfter", default_timezone=None)
    overdue = fields.Boolean()
    created_before = fields.AwareDateTime(data_key="createdBefore", default_timezone=None)
    created_after = fields.AwareDateTime(data_key="createdAfter", default_timezone=None)
    candidate_group = fields.String(data_key="candidateGroup")
    assignee = fields.String()
    sort = fields.String(load_default="created", metadata={
        "description": "created, due, priority or name; prefix - for descending (e.g. -priority)"})


class AssignSchema(Schema):
    assignee = fields.String(required=True, allow_none=True, metadata={"description": "user name; null unassigns"})


class CompleteSchema(Schema):
    data = fields.Dict(keys=fields.String(), load_default=dict, metadata={"description": "form field values"})


class CommentSchema(Schema):
    id = fields.Integer(dump_only=True)
    task_id = fields.String(dump_only=True)
    author = fields.String(dump_only=True)
    text = fields.String(required=True, validate=validate.Length(min=1, max=10_000))
    created_at = fields.DateTime(dump_only=True)


class CommentListSchema(Schema):
    items = fields.List(fields.Nested(CommentSchema), required=True)


_IF_MATCH = {"parameters": [{"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                             "description": "the task's row version (ETag); 412 if it changed since"}]}


@blp.route("/tasks")
class Tasks(MethodView):
    @blp.arguments(TaskQuerySchema, location="query")
    @blp.response(200, TaskPageSchema)
    def get(self, query):
        """The caller's task list: assigned to them and claimable through their groups (filtered, sorted)."""
        principal = current_principal()
        return services().tasks.list(principal, **query)  # the schema reads the Page


@blp.route("/tasks/<task_id>")
class TaskResource(MethodView):
    @blp.response(200, TaskSchema)
    def get(self, task_id: str):
        """A task with its form (fields, types, required, defaults), instructions and SOP link."""
        info = services().tasks.get(task_id, current_principal())
        return with_etag(info, info.row_version)


@blp.route("/tasks/<task_id>/claim")
class ClaimTask(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.response(200, TaskSchema)
    def post(self, task_id: str):
        """Claim a task (a candidate; 409 if someone else has it, 403 for non-candidates)."""
        info = services().tasks.claim(task_id, current_principal(), expected_version=expected_version())
        return with_etag(info, info.row_version)


@blp.route("/tasks/<task_id>/unclaim")
class UnclaimTask(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.response(200, TaskSchema)
    def post(self, task_id: str):
        """Give a task back to its candidates (assignee or administrator)."""
        info = services().tasks.unclaim(task_id, current_principal(), expected_version=expected_version())
        return with_etag(info, info.row_version)


@blp.route("/tasks/<task_id>/assign")
class AssignTask(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.arguments(AssignSchema)
    @blp.response(200, TaskSchema)
    def post(self, data, task_id: str):
        """Assign or delegate a task to a user (assignee or administrator); null unassigns."""
        info = services().tasks.assign(task_id, data["assignee"], current_principal(),
                                       expected_version=expected_version())
        return with_etag(info, info.row_version)


@blp.route("/tasks/<task_id>/complete")
class CompleteTask(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.arguments(CompleteSchema)
    @blp.response(200, TaskSchema)
    def post(self, data, task_id: str):
        """Complete a task with form data: 422 lists each bad field (nothing changes); 409 if it is gone."""
        info = services().tasks.complete(task_id, data["data"], current_principal(),
                                         expected_version=expected_version())
        return with_etag(info, info.row_version)


@blp.route("/tasks/<task_id>/comments")
class TaskComments(MethodView):
    @blp.response(200, CommentListSchema)
    def get(self, task_id: str):
        """The comments on a task, oldest first."""
        return {"items": services().tasks.comments(task_id, current_principal())}

    @blp.arguments(CommentSchema)
    @blp.response(201, CommentSchema)
    def post(self, data, task_id: str):
        """Add a comment to a task."""
        return services().tasks.comment(task_id, data["text"], current_principal())
