"""Messages and signals over REST: correlate a message to a waiting instance (or a message start
event), broadcast a signal to every waiting instance."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from .arguments import Blueprint
from .auth import current_principal, services
from .schemas import idempotency_key_header, replayed_header

blp = Blueprint("messages", __name__, url_prefix="/api/v1", description="Messages and signals")


class MessageSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255),
                         metadata={"description": "the message name as in the model (bpmn:message name)"})
    business_key = fields.String(data_key="businessKey", allow_none=True)
    correlation_keys = fields.Dict(data_key="correlationKeys", keys=fields.String(), load_default=dict,
                                   metadata={"description": "values the waiting instance must have"})
    variables = fields.Dict(keys=fields.String(), load_default=dict, metadata={"description": "the payload"})
    all = fields.Boolean(load_default=False, metadata={"description": "deliver to every matching instance"})


class SignalSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    variables = fields.Dict(keys=fields.String(), load_default=dict)


class CorrelationSchema(Schema):
    message_name = fields.String(required=True)
    instance_ids = fields.List(fields.String(), required=True,
                               metadata={"description": "instances reached (or started)"})
    started = fields.Boolean(metadata={"description": "true when the message/signal started new instances"})


@blp.route("/messages")
class Messages(MethodView):
    @blp.doc(**idempotency_key_header("message", "the first delivery's answer"))
    @blp.arguments(MessageSchema)
    @blp.response(200, CorrelationSchema)
    def post(self, data):
        """Correlate a message: 404 when nothing waits for it, 409 when several instances match without all;
        safe to retry with an Idempotency-Key (not with all)."""
        result = services().messages.correlate(
            data["name"], principal=current_principal(), business_key=data.get("business_key"),
            correlation_keys=data["correlation_keys"], variables=data["variables"], all=data["all"],
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        return result, 200, replayed_header(result.replayed)


@blp.route("/signals")
class Signals(MethodView):
    @blp.arguments(SignalSchema)
    @blp.response(200, CorrelationSchema)
    def post(self, data):
        """Broadcast a signal to every instance waiting for it (and start processes with a signal start)."""
        return services().messages.signal(data["name"], principal=current_principal(), variables=data["variables"])
