"""Marshmallow schemas shared by several endpoints (the OpenAPI document is generated from them)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

MAX_OFFSET = 2**31 - 1
INT32 = validate.Range(min=-(2**31), max=2**31 - 1)  # what an INTEGER column holds: larger is a 422, not a 500


class PageQuerySchema(Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class PageSchema(Schema):
    total = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    limit = fields.Integer(required=True)


class FindingSchema(Schema):
    rule = fields.String(required=True, metadata={"description": "stable rule id, e.g. dangling-reference"})
    severity = fields.String(required=True, validate=validate.OneOf(["error", "warning", "info"]))
    message = fields.String(required=True)
    element_id = fields.String()
    line = fields.Integer()
    column = fields.Integer()
    process_id = fields.String()
    hint = fields.String()
    file = fields.String()


class ProblemSchema(Schema):
    """RFC 9457 problem details; extension members (the ids involved, limits…) may be added."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Dict(), metadata={"description": "bad fields: [{field, message}]"})
    findings = fields.List(fields.Nested(FindingSchema))
    line = fields.Integer()
    column = fields.Integer()


def idempotency_key_header(what: str, first_answer: str) -> dict:
    """The OpenAPI documentation of the ``Idempotency-Key`` request header of an endpoint (runtime/idempotency.py)."""
    return {"parameters": [{
        "in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string", "maxLength": 255},
        "description": f"a key of your choice (e.g. a UUID) naming this {what}: sent again with the same request "
                       f"within 24 hours, the answer is {first_answer} (header Idempotent-Replayed: true), and "
                       "nothing happens twice; the same key with a different request: 422 idempotency-key-reused"}]}


def replayed_header(replayed: bool) -> dict[str, str]:
    """``Idempotent-Replayed: true`` on an answer repeated for a request sent again with its key."""
    return {"Idempotent-Replayed": "true"} if replayed else {}
