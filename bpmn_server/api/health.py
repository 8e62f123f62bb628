"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields

from .arguments import Blueprint
from .auth import services
from .problems import RETRY_AFTER_SECONDS, problem_response

blp = Blueprint("health", __name__, description="Health")


class HealthSchema(Schema):
    status = fields.String(required=True)


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process can reach its database."""
        if not services().database.ping():
            return problem_response(503, "not-ready", "Not ready", "the database does not answer",
                                    headers={"Retry-After": RETRY_AFTER_SECONDS})
        return {"status": "ready"}
