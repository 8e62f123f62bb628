"""Process instances over REST: start, list, follow (status, activities, variables, incidents,
history), change variables, terminate, suspend/resume, retry. Updates honour ``If-Match`` with the
instance's row version (its ETag)."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ..errors import PreconditionFailed
from ..runtime.instances import STATUSES
from .arguments import Blueprint
from .auth import current_principal, services
from .schemas import INT32, PageQuerySchema, PageSchema, idempotency_key_header, replayed_header

blp = Blueprint("instances", __name__, url_prefix="/api/v1", description="Process instances")


class ActivitySchema(Schema):
    element_id = fields.String(required=True)
    name = fields.String(allow_none=True)
    type = fields.String(required=True, metadata={"description": "BPMN element, e.g. userTask, boundaryEvent"})
    state = fields.String(required=True, metadata={"description": "ready, waiting, failed or started"})


class IncidentSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "script, engine, timer or message"})
    element_id = fields.String(allow_none=True)
    message = fields.String(required=True)
    line = fields.Integer(allow_none=True)
    created_at = fields.DateTime(required=True)
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True)


class InstanceSchema(Schema):
    id = fields.String(required=True)
    definition_key = fields.String(required=True)
    definition_version = fields.Integer(required=True)
    definition_id = fields.Integer(required=True)
    business_key = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    started_by = fields.String(required=True)
    started_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(allow_none=True)
    row_version = fields.Integer(required=True, metadata={"description": "send it back as If-Match to update"})
    parent_instance_id = fields.String(allow_none=True)
    variables = fields.Dict()
    activities = fields.List(fields.Nested(ActivitySchema))
    incidents = fields.List(fields.Nested(IncidentSchema))
    links = fields.Method("get_links")

    def get_links(self, instance) -> dict[str, str]:
        base = f"/api/v1/process-instances/{instance.id}"
        return {"self": base, "variables": f"{base}/variables", "history": f"{base}/history",
                "tasks": f"/api/v1/tasks?instanceId={instance.id}",
                "definition": f"/api/v1/process-definitions/{instance.definition_key}/versions/"
                              f"{instance.definition_version}"}


class InstancePageSchema(PageSchema):
    items = fields.List(fields.Nested(InstanceSchema), required=True)


class StartSchema(Schema):
    key = fields.String(metadata={"description": "process id; the latest active version starts"})
    definition_id = fields.Integer(data_key="definitionId", validate=INT32, metadata={"description": "a definition by id"})
    version = fields.Integer(validate=validate.Range(min=1, max=INT32.max), metadata={"description": "a given version of key"})
    business_key = fields.String(data_key="businessKey", allow_none=True, validate=validate.Length(max=255))
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class InstanceQuerySchema(PageQuerySchema):
    key = fields.String()
    version = fields.Integer(validate=INT32)
    definition_id = fields.Integer(data_key="definitionId", validate=INT32)
    status = fields.String(validate=validate.OneOf(STATUSES))
    business_key = fields.String(data_key="businessKey")
    started_by = fields.String(data_key="startedBy")
    started_after = fields.AwareDateTime(data_key="startedAfter", default_timezone=None)
    started_before = fields.AwareDateTime(data_key="startedBefore", default_timezone=None)


class VariablesSchema(Schema):
    variables = fields.Dict(required=True)
    row_version = fields.Integer(required=True)


class VariablesPatchSchema(Schema):
    set = fields.Dict(keys=fields.String(), load_default=dict, metadata={"description": "variables to set"})
    remove = fields.List(fields.String(), load_default=list, metadata={"description": "variables to remove"})


class TerminateSchema(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=2000))


class RetrySchema(Schema):
    variables = fields.Dict(keys=fields.String(), load_default=dict,
                            metadata={"description": "variables to set before the failed element runs again"})


class HistoryEventSchema(Schema):
    sequence = fields.Integer(required=True)
    timestamp = fields.DateTime(required=True)
    event_type = fields.String(required=True)
    element_id = fields.String(allow_none=True)
    element_name = fields.String(allow_none=True)
    element_type = fields.String(allow_none=True)
    transition = fields.String(allow_none=True, metadata={"description": "XES lifecycle transition"})
    actor = fields.String(required=True)
    group = fields.String(allow_none=True)
    data = fields.Dict()


class HistorySchema(Schema):
    items = fields.List(fields.Nested(HistoryEventSchema), required=True)


_IF_MATCH = {"parameters": [{"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                             "description": "the row version (ETag) you read; 412 if the instance changed since"}]}


def expected_version() -> int | None:
    """The row version of an ``If-Match`` header (``"3"`` or ``W/"3"``), None without one."""
    header = request.headers.get("If-Match")
    if not header or header.strip() == "*":
        return None
    text = header.strip()
    if text.startswith("W/"):
        text = text[2:]
    try:
        return int(text.strip('"'))
    except ValueError:
        raise PreconditionFailed(f"If-Match must be a row version such as \"3\", not {header!r}") from None


def with_etag(body, row_version: int):
    return body, 200, {"ETag": f'"{row_version}"'}


@blp.route("/process-instances")
class Instances(MethodView):
    @blp.doc(**idempotency_key_header("start", "the instance the first request started"))
    @blp.arguments(StartSchema)
    @blp.response(201, InstanceSchema)
    def post(self, data):
        """Start an instance (the latest active version of a key, a given version, or a definition id);
        safe to retry with an Idempotency-Key."""
        principal = current_principal()
        info = services().instances.start(
            data.get("key"), principal=principal, version=data.get("version"),
            definition_id=data.get("definition_id"), business_key=data.get("business_key"),
            variables=data.get("variables"), idempotency_key=request.headers.get("Idempotency-Key"),
        )
        headers = {"Location": f"/api/v1/process-instances/{info.id}", "ETag": f'"{info.row_version}"',
                   **replayed_header(info.replayed)}
        return info, 201, headers

    @blp.arguments(InstanceQuerySchema, location="query")
    @blp.response(200, InstancePageSchema)
    def get(self, query):
        """List the instances the caller may read, newest first (filter by process, version, status, business
        key, starter, start time)."""
        return services().instances.list(**query, principal=current_principal())  # the schema reads the Page


@blp.route("/process-instances/<instance_id>")
class InstanceResource(MethodView):
    @blp.response(200, InstanceSchema)
    def get(self, instance_id: str):
        """One instance: status, current activities, variables and incidents (ETag: row version)."""
        info = services().instances.get(instance_id, principal=current_principal())
        return with_etag(info, info.row_version)


@blp.route("/process-instances/<instance_id>/history")
class InstanceHistory(MethodView):
    @blp.response(200, HistorySchema)
    def get(self, instance_id: str):
        """What happened to the instance, in order (from the audit log)."""
        return {"items": services().instances.history(instance_id, principal=current_principal())}


@blp.route("/process-instances/<instance_id>/variables")
class InstanceVariables(MethodView):
    @blp.response(200, VariablesSchema)
    def get(self, instance_id: str):
        """The current process variables (ETag: row version)."""
        variables, row_version = services().instances.variables(instance_id, principal=current_principal())
        return with_etag({"variables": variables, "row_version": row_version}, row_version)

    @blp.doc(**_IF_MATCH)
    @blp.arguments(VariablesPatchSchema)
    @blp.response(200, VariablesSchema)
    def patch(self, data, instance_id: str):
        """Set and remove variables (starter or administrator; audited as a delta)."""
        principal = current_principal()
        instances = services().instances
        instances.update_variables(instance_id, principal=principal, set=data["set"], remove=data["remove"],
                                   expected_version=expected_version())
        variables, row_version = instances.variables(instance_id, principal=principal)
        return with_etag({"variables": variables, "row_version": row_version}, row_version)


def _instance_action(name: str, schema=None):
    """A POST /process-instances/<id>/<name> endpoint calling InstanceService.<name>."""

    def handler(instance_id: str, data: dict | None = None):
        principal = current_principal()
        method = getattr(services().instances, name)
        info = method(instance_id, principal=principal, expected_version=expected_version(), **(data or {}))
        return with_etag(info, info.row_version)

    return handler


@blp.route("/process-instances/<instance_id>/terminate")
class TerminateInstance(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.arguments(TerminateSchema)
    @blp.response(200, InstanceSchema)
    def post(self, data, instance_id: str):
        """Terminate: cancel every open task and timer (starter or administrator)."""
        return _instance_action("terminate")(instance_id, data)


@blp.route("/process-instances/<instance_id>/suspend")
class SuspendInstance(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.response(200, InstanceSchema)
    def post(self, instance_id: str):
        """Suspend: tasks cannot be completed and timers wait until it is resumed."""
        return _instance_action("suspend")(instance_id)


@blp.route("/process-instances/<instance_id>/resume")
class ResumeInstance(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.response(200, InstanceSchema)
    def post(self, instance_id: str):
        """Resume a suspended instance (timers that fell due meanwhile fire now)."""
        return _instance_action("resume")(instance_id)


@blp.route("/process-instances/<instance_id>/retry")
class RetryInstance(MethodView):
    @blp.doc(**_IF_MATCH)
    @blp.arguments(RetrySchema)
    @blp.response(200, InstanceSchema)
    def post(self, data, instance_id: str):
        """Retry a failed instance: the failed element runs again (optionally with corrected variables)."""
        return _instance_action("retry")(instance_id, data)
