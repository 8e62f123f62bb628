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
