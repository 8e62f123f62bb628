"""The audit log over REST: list events, verify the hash chain, export XES / OCEL 2.0 / CSV (streamed).

Auditors only: administrators and members of the ``auditor`` group. Anyone else gets a 403 and the
attempt is recorded as a permission-denied event (the service does both).
"""

from __future__ import annotations

import re
from datetime import UTC

from flask import Response, stream_with_context
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates

from ..audit.events import EVENT_TYPES
from ..audit.service import EXPORT_FORMATS
from .arguments import Blueprint
from .auth import current_principal, services
from .rate_limits import expensive
from .schemas import PageQuerySchema, PageSchema

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit",
                description="Tamper-evident audit log: history, chain verification, XES/OCEL/CSV export")

_ANCHOR = re.compile(r"^\d+:[0-9a-fA-F]{64}$")


class AuditFilterSchema(Schema):
    """Filters shared by listing and export; every given filter must hold."""

    process = fields.String(metadata={"description": "process definition key"})
    instance_id = fields.String(data_key="instanceId", metadata={"description": "one instance's history"})
    user = fields.String(metadata={"description": "who did it: a username or system:timer, system:message…"})
    actor = fields.String(metadata={"description": "same as user"})
    since = fields.AwareDateTime(default_timezone=UTC, metadata={"description": "inclusive, ISO 8601"})
    until = fields.AwareDateTime(default_timezone=UTC, metadata={"description": "exclusive, ISO 8601"})


class AuditEventQuerySchema(PageQuerySchema, AuditFilterSchema):
    event_type = fields.String(data_key="eventType", validate=validate.OneOf(sorted(EVENT_TYPES)))
    after_sequence = fields.Integer(data_key="afterSequence", validate=validate.Range(min=0, max=2**63 - 1), metadata={
        "description": "keyset paging for long logs: only events after this sequence (pass nextAfterSequence)"})


class AuditExportQuerySchema(AuditFilterSchema):
    format = fields.String(load_default="xes", validate=validate.OneOf(sorted(EXPORT_FORMATS)))


class AuditEventSchema(Schema):
    sequence = fields.Integer(required=True, metadata={"description": "position in the hash chain, gapless"})
    event_id = fields.String(required=True)
    timestamp = fields.String(required=True, metadata={"description": "UTC, RFC 3339 with microseconds"})
    event_type = fields.String(required=True)
    transition = fields.String(allow_none=True, metadata={"description": "XES lifecycle transition"})
    actor = fields.String(required=True)
    group = fields.String(allow_none=True)
    instance_id = fields.String(allow_none=True)
    definition_key = fields.String(allow_none=True)
    definition_version = fields.Integer(allow_none=True)
    element_id = fields.String(allow_none=True)
    element_name = fields.String(allow_none=True)
    element_type = fields.String(allow_none=True)
    data = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


class AuditEventPageSchema(PageSchema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    next_after_sequence = fields.Integer(allow_none=True, data_key="nextAfterSequence", metadata={
        "description": "afterSequence for the next page (null on the last page)"})


class VerifyQuerySchema(Schema):
    anchor = fields.List(
        fields.String(), load_default=list,
        metadata={"description": "SEQ:HASH kept from an earlier verify (repeatable): catches a log cut "
                                 "short or rewritten together with its head"},
    )

    @validates("anchor")
    def _anchors(self, values: list[str], **_kwargs) -> None:
        bad = [value for value in values if not _ANCHOR.match(value)]
        if bad:
            raise ValidationError(f"not SEQ:HASH (64 hex digits): {', '.join(bad)}")


class VerifySchema(Schema):
    ok = fields.Boolean(required=True)
    events_checked = fields.Integer(required=True)
    message = fields.String(required=True)
    first_bad_sequence = fields.Integer(allow_none=True)
    problem = fields.String(allow_none=True, metadata={
        "description": "altered, removed, reordered, truncated or head-mismatch"})
    head_sequence = fields.Integer()
    head_hash = fields.String()
    anchor = fields.String(metadata={"description": "SEQ:HASH of the head: keep it outside the server"})


def _filters(args: dict) -> dict:
    return {
        "process_key": args.get("process"),
        "instance_id": args.get("instance_id"),
        "actor": args.get("user") or args.get("actor"),
        "since": args.get("since"),
        "until": args.get("until"),
    }


@blp.route("/events")
class AuditEvents(MethodView):
    @blp.arguments(AuditEventQuerySchema, location="query")
    @blp.response(200, AuditEventPageSchema)
    def get(self, args):
        """Events oldest first, filtered by instance, user, process, type and time; paginated."""
        page = services().audit.list_events(
            current_principal(), event_type=args.get("event_type"), limit=args["limit"], offset=args["offset"],
            after_sequence=args.get("after_sequence"), **_filters(args),
        )
        return {"items": [item.to_dict() for item in page.items], "total": page.total,
                "offset": page.offset, "limit": page.limit, "next_after_sequence": page.next_after_sequence}


@blp.route("/verify")
class AuditVerify(MethodView):
    @blp.arguments(VerifyQuerySchema, location="query")
    @blp.response(200, VerifySchema)
    @expensive(blp)
    def get(self, args):
        """Check the whole hash chain: ``ok``, or the first altered, removed or reordered event."""
        anchors = {}
        for text in args["anchor"]:
            sequence, _, digest = text.partition(":")
            anchors[int(sequence)] = digest.lower()
        result = services().audit.verify(current_principal(), anchors=anchors)
        return {**result.to_dict(), "anchor": f"{result.head_sequence}:{result.head_hash}"}


@blp.route("/export")
class AuditExport(MethodView):
    @blp.arguments(AuditExportQuerySchema, location="query")
    @blp.doc(responses={"200": {
        "description": "the log, streamed: IEEE XES (one trace per instance), OCEL 2.0 JSON, or CSV",
        "content": {media.split(";")[0]: {"schema": {"type": "object" if media.startswith("application/json")
                                                     else "string"}} for media, _ in EXPORT_FORMATS.values()},
    }})
    @expensive(blp)
    def get(self, args):
        """Export the log as XES, OCEL 2.0 or CSV, streamed so that any size fits in flat memory."""
        format_ = args["format"]
        filters = _filters(args)
        chunks = services().audit.export(current_principal(), format_, **filters)  # refuses before streaming
        media_type, suffix = EXPORT_FORMATS[format_]
        response = Response(stream_with_context(chunks), content_type=media_type)
        response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(filters, suffix)}"'
        response.headers["Cache-Control"] = "no-store"
        return response


def _file_name(filters: dict, suffix: str) -> str:
    """``audit-refund-20260105T0900Z.xes``: what was exported, and from when on."""
    parts = ["audit"]
    if filters["process_key"]:
        parts.append(re.sub(r"[^A-Za-z0-9._-]+", "_", filters["process_key"])[:64])
    if filters["since"]:
        parts.append(filters["since"].astimezone(UTC).strftime("%Y%m%dT%H%MZ"))
    return "-".join(parts) + suffix

