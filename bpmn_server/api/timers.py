"""Timers for operators (administrators): what is waiting, what fired, what failed and why; retry a
failed timer. A timer that keeps failing also opens an incident on its instance."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .arguments import Blueprint
from .auth import require_admin, services
from .schemas import PageQuerySchema, PageSchema

blp = Blueprint("timers", __name__, url_prefix="/api/v1", description="Timers (administrators)")

TIMER_STATUSES = ["waiting", "fired", "cancelled", "failed", "suspended"]


class TimerSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(metadata={"description": "boundary-interrupting, boundary-non-interrupting, "
                                                  "intermediate, start"})
    element_id = fields.String()
    instance_id = fields.String(allow_none=True)
    definition_id = fields.Integer(allow_none=True)
    due_at = fields.DateTime()
    status = fields.String(validate=validate.OneOf(TIMER_STATUSES))
    fire_count = fields.Integer()
    attempts = fields.Integer(metadata={"description": "failed firings since the last success"})
    next_attempt_at = fields.DateTime(allow_none=True, metadata={"description": "retry not before (backoff)"})
    last_error = fields.String(allow_none=True)
    fired_at = fields.DateTime(allow_none=True)
    expression = fields.String(allow_none=True)


class TimerPageSchema(PageSchema):
    items = fields.List(fields.Nested(TimerSchema), required=True)


class TimerQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(TIMER_STATUSES))
    instance_id = fields.String(data_key="instanceId")
    kind = fields.String()


@blp.route("/timers")
class Timers(MethodView):
    @blp.arguments(TimerQuerySchema, location="query")
    @blp.response(200, TimerPageSchema)
    def get(self, query):
        """Timers, earliest due first; ``status=failed`` lists the ones that need an operator."""
        items, total = services().timers.list_timers(
            require_admin(), status=query.get("status"), instance_id=query.get("instance_id"),
            kind=query.get("kind"), offset=query["offset"], limit=query["limit"])
        return {"items": [item.as_dict() for item in items], "total": total, "offset": query["offset"],
                "limit": query["limit"]}


@blp.route("/timers/<int:timer_id>")
class TimerResource(MethodView):
    @blp.response(200, TimerSchema)
    def get(self, timer_id: int):
        """One timer."""
        require_admin()
        return services().timers.get(timer_id).as_dict()


@blp.route("/timers/<int:timer_id>/retry")
class TimerRetry(MethodView):
    @blp.response(200, TimerSchema)
    def post(self, timer_id: int):
        """Queue a failed timer again (its timer incident is resolved); it fires on the next pass."""
        return services().timers.retry(require_admin(), timer_id).as_dict()
