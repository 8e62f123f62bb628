"""Webhook subscriptions (administrators): which URL receives which events, and how deliveries went.

Each delivery is a JSON POST signed with HMAC-SHA256 of the body under the subscription's secret
(header ``X-Bpmn-Signature-256: sha256=<hex>``); see docs/timers.md.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ..runtime.outbox import EVENT_KINDS
from .arguments import Blueprint
from .auth import require_admin, services
from .schemas import PageQuerySchema, PageSchema

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1", description="Webhook subscriptions (administrators)")

_KIND = fields.String(validate=validate.OneOf([*EVENT_KINDS, "*"]))


class SubscriptionCreateSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    event_types = fields.List(_KIND, load_default=list,
                              metadata={"description": "event kinds to receive; empty or '*' for all"})
    secret = fields.String(validate=validate.Length(min=16, max=255),
                           metadata={"description": "HMAC key; generated (and shown once) when omitted"})


class SubscriptionUpdateSchema(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2048))
    event_types = fields.List(_KIND)
    secret = fields.String(validate=validate.Length(min=16, max=255))
    active = fields.Boolean()


class SubscriptionSchema(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    event_types = fields.List(fields.String())
    owner = fields.String()
    active = fields.Boolean()
    created_at = fields.DateTime()
    secret = fields.String(allow_none=True, metadata={"description": "only in the answer that set it"})


class DeliverySchema(Schema):
    id = fields.Integer(required=True)
    subscription_id = fields.Integer(allow_none=True)
    kind = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or dead"})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    delivered_at = fields.DateTime(allow_none=True)


class DeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema), required=True)


class DeliveryQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "dead"]))


@blp.route("/webhooks")
class Webhooks(MethodView):
    @blp.response(200, SubscriptionSchema(many=True))
    def get(self):
        """Every webhook subscription."""
        return [item.as_dict() for item in services().outbox.list_subscriptions(require_admin())]

    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionSchema)
    def post(self, body):
        """Subscribe a URL to event kinds; the answer carries the signing secret (only this once)."""
        return services().outbox.create_subscription(require_admin(), body["url"], body["event_types"],
                                                     body.get("secret")).as_dict()


@blp.route("/webhooks/<int:subscription_id>")
class Webhook(MethodView):
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_id: int):
        """One subscription (without its secret)."""
        return services().outbox.get_subscription(require_admin(), subscription_id).as_dict()

    @blp.arguments(SubscriptionUpdateSchema)
    @blp.response(200, SubscriptionSchema)
    def patch(self, body, subscription_id: int):
        """Change the URL, event kinds, secret or active flag."""
        return services().outbox.update_subscription(require_admin(), subscription_id, **body).as_dict()

    @blp.response(204)
    def delete(self, subscription_id: int):
        """Stop a subscription; undelivered webhooks to it are dropped (marked dead)."""
        services().outbox.delete_subscription(require_admin(), subscription_id)


@blp.route("/webhooks/<int:subscription_id>/deliveries")
class Deliveries(MethodView):
    @blp.arguments(DeliveryQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, query, subscription_id: int):
        """Deliveries of a subscription, newest first, with attempts and the last error."""
        items, total = services().outbox.deliveries(require_admin(), subscription_id, status=query.get("status"),
                                                    offset=query["offset"], limit=query["limit"])
        return {"items": [item.as_dict() for item in items], "total": total, "offset": query["offset"],
                "limit": query["limit"]}
