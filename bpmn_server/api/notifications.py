"""The caller's notifications (task created or assigned, reminders, escalations): list and mark read."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from .arguments import Blueprint
from .auth import current_principal, services
from .schemas import PageQuerySchema, PageSchema

blp = Blueprint("notifications", __name__, url_prefix="/api/v1", description="Notifications of the current user")


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "task.created, task.assigned, task.reminder, "
                                                                   "task.escalated, instance.failed, timer.incident"})
    instance_id = fields.String(allow_none=True)
    task_id = fields.String(allow_none=True)
    payload = fields.Dict(metadata={"description": "task name, process, due date, reason …"})
    read = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class NotificationPageSchema(PageSchema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)
    unread = fields.Integer(required=True, metadata={"description": "unread notifications in total"})


class NotificationQuerySchema(PageQuerySchema):
    unread_only = fields.Boolean(load_default=False, data_key="unreadOnly")


class MarkedSchema(Schema):
    marked = fields.Integer(required=True)


@blp.route("/notifications")
class Notifications(MethodView):
    @blp.arguments(NotificationQuerySchema, location="query")
    @blp.response(200, NotificationPageSchema)
    def get(self, query):
        """Your notifications, newest first (``unreadOnly=true`` for the unread ones)."""
        items, total, unread = services().outbox.notifications(
            current_principal(), unread_only=query["unread_only"], offset=query["offset"], limit=query["limit"])
        return {"items": [item.as_dict() for item in items], "total": total, "unread": unread,
                "offset": query["offset"], "limit": query["limit"]}


@blp.route("/notifications/<int:notification_id>/read")
class NotificationRead(MethodView):
    @blp.response(200, NotificationSchema)
    def post(self, notification_id: int):
        """Mark one of your notifications read."""
        return services().outbox.mark_read(current_principal(), notification_id).as_dict()


@blp.route("/notifications/read")
class NotificationsRead(MethodView):
    @blp.response(200, MarkedSchema)
    def post(self):
        """Mark all your notifications read."""
        return {"marked": services().outbox.mark_all_read(current_principal())}
