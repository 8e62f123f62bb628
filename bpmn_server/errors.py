"""Typed domain errors raised by the services; ``api/`` maps each to one problem+json response.

Each error has a stable ``type`` slug (documented at ``/problems/<type>``), a human ``detail``
and optional structured ``extra`` members (validation findings, bad form fields, …).
"""

from __future__ import annotations

from typing import Any


class BpmnServerError(Exception):
    """Base of every error a user can cause; never raised for a bug in the server."""

    type = "error"
    title = "Request failed"
    status = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(BpmnServerError):
    type = "not-found"
    title = "Not found"
    status = 404


class InvalidInput(BpmnServerError):
    """The request is understood but its content is wrong (form data, variables, filters)."""

    type = "invalid-input"
    title = "Invalid input"
    status = 422


class IdempotencyKeyReused(InvalidInput):
    """An ``Idempotency-Key`` sent again with a different request (it names one request only)."""

    type = "idempotency-key-reused"
    title = "Idempotency key reused"


class InvalidDocument(BpmnServerError):
    """The uploaded file is not a BPMN document we can take: not well-formed, not BPMN, too large."""

    type = "invalid-document"
    title = "Not a usable BPMN document"
    status = 422

    def __init__(self, detail: str, *, line: int | None = None, column: int | None = None, **extra: Any):
        super().__init__(detail, line=line, column=column, **extra)
        self.line = line
        self.column = column


class HostileDocument(InvalidDocument):
    """The XML tries to declare entities, reference external resources or blow up on parsing."""

    type = "hostile-document"
    title = "Refused XML construct"


class DocumentTooLarge(InvalidDocument):
    type = "document-too-large"
    title = "Document too large"
    status = 413


class NotExecutable(BpmnServerError):
    """The process has error-level findings or is not marked executable, so it cannot start."""

    type = "not-executable"
    title = "Process cannot be started"
    status = 422


class Conflict(BpmnServerError):
    """Someone else changed the same thing first (row version, task already completed/claimed)."""

    type = "conflict"
    title = "Conflict"
    status = 409


class Unauthenticated(BpmnServerError):
    type = "unauthenticated"
    title = "Authentication required"
    status = 401


class Forbidden(BpmnServerError):
    type = "forbidden"
    title = "Not allowed"
    status = 403
    audited = False  # set once the refusal is in the audit log (AuditService.record_refusal)


class PreconditionFailed(BpmnServerError):
    type = "precondition-failed"
    title = "Precondition failed"
    status = 412


class RateLimited(BpmnServerError):
    type = "rate-limited"
    title = "Too many requests"
    status = 429


class ScriptError(BpmnServerError):
    """A script task or expression failed; the instance is stopped with an incident."""

    type = "script-error"
    title = "Script failed"
    status = 422
