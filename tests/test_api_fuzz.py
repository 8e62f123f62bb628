"""Schemathesis against the served OpenAPI document: every operation, authenticated as an
administrator, with generated (valid and invalid) input. No answer may be a 5xx, and every answer
must match the documented schema (status code, content type, body)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def backend() -> str:
    """The fuzzer exercises the HTTP layer; one embedded database is enough."""
    return "sqlite"


def _operations():
    """(method, path) of every documented operation, for one test each (xdist spreads them)."""
    import tempfile

    from bpmn_server import create_app
    from bpmn_server.settings import Settings

    app = create_app(Settings(data_dir=tempfile.mkdtemp(prefix="bpmn-fuzz-")).resolved(), testing=True)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    return sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations())


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_operation_answers_within_its_contract(method, path, app, services, auth):
    from .models import linear_process

    services.definitions.deploy(linear_process("fuzz_process"), "fuzz.bpmn", "admin")
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operation = schema[path][method.lower()]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def answers_within_contract(case):
        case.call_and_validate(headers=auth, checks=CHECKS)

    answers_within_contract()
