"""The REST API under /api/v1: flask-smorest blueprints, OpenAPI generated from the schemas,
and every error as RFC 9457 problem+json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from ..errors import BpmnServerError
from .problems import from_domain_error, from_http_exception

API_TITLE = "bpmn_server"
API_VERSION = "v1"
PROBLEM_CONTENT_TYPE = "application/problem+json"
MAX_ROW_ID = 2**31 - 1  # PostgreSQL INTEGER


class ProblemApi(Api):
    """flask-smorest's Api with problem+json for every HTTP error, documented as such."""

    def _register_responses(self):
        """Document every error answer as ``application/problem+json`` with the Problem schema."""
        import http

        from flask_smorest.spec import prepare_response

        from .schemas import ProblemSchema

        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as RFC 9457 problem details", "schema": ProblemSchema}
        prepare_response(response, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        return from_http_exception(error)


class RowIdConverter(IntegerConverter):
    """``<int:…>`` limited to what a database integer column holds: a larger id is a 404, not a 500."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(url_map, *args, **kwargs)


def init_app(app: Flask) -> Api:
    """Register the API blueprints and error mapping on the app."""
    app.url_map.converters["int"] = RowIdConverter
    app.config.setdefault("API_TITLE", API_TITLE)
    app.config.setdefault("API_VERSION", API_VERSION)
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "/static/vendor/swagger-ui/")
    api = ProblemApi(
        app,
        spec_kwargs={
            "info": {"description": "BPMN 2.0 modeling and execution server. Authenticate with "
                                    "'Authorization: Bearer <token>'."},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    )
    api.register_converter(RowIdConverter, lambda _c: {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID})
    app.register_error_handler(BpmnServerError, from_domain_error)

    from . import (
        audit,
        definitions,
        health,
        identity,
        instances,
        messages,
        metrics,
        notifications,
        sop,
        tasks,
        timers,
        webhooks,
    )

    _trace_requests(app)
    for module in (health, metrics, definitions, identity, instances, tasks, messages, timers, notifications,
                   webhooks, audit, sop):
        api.register_blueprint(module.blp)
    return api


def _trace_requests(app: Flask) -> None:
    """Give every request an id (``X-Request-ID``, taken from the caller when it sends one), put it
    in the log context and the response, and count the answer by method and status."""
    import uuid

    from flask import g, request

    from .. import logs
    from ..metrics import HTTP_REQUESTS

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        g.request_id_token = logs.request_id.set(g.request_id)

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        HTTP_REQUESTS.labels(method=request.method, status=str(response.status_code)).inc()
        return response

    @app.teardown_request
    def _forget(_error):
        token = g.pop("request_id_token", None)
        if token is not None:
            logs.request_id.reset(token)
