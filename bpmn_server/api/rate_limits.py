"""Per-caller rate limit on the expensive API endpoints: deploy and validate uploads, audit export and
verification, SOP export. Counted per bearer token (per user for a browser riding on its session)
in the database (``store.rate_limits``), so every process and node shares the count; a refusal is a
429 problem+json with ``Retry-After`` and changes nothing."""

from __future__ import annotations

import functools

from flask import Response, request

from ..errors import RateLimited
from ..identity import Principal
from ..identity.service import hash_token
from ..store.rate_limits import bucket, expensive_user_bucket
from .arguments import Blueprint
from .auth import current_principal, services
from .problems import PROBLEM_MEDIA_TYPE, from_domain_error
from .schemas import ProblemSchema

_RETRY_AFTER_DOC = {"Retry-After": {"description": "seconds until the limit lets the caller in again",
                                    "schema": {"type": "integer", "minimum": 1}}}


def expensive(blp: Blueprint):
    """Decorator for an expensive operation of ``blp``: authenticate, count the call against the
    caller's limit (``rate_limit_expensive_per_minute``) before the view runs, and document the 429."""
    if RateLimited not in blp.error_handler_spec[None][None]:
        blp.register_error_handler(RateLimited, _too_many_requests)

    def decorate(view):
        @functools.wraps(view)
        def limited(*args, **kwargs):
            count_expensive_request(current_principal())
            return view(*args, **kwargs)

        return blp.alt_response(429, schema=ProblemSchema, content_type=PROBLEM_MEDIA_TYPE, headers=_RETRY_AFTER_DOC,
                                description="Too many expensive requests from this caller: wait Retry-After "
                                            "seconds (rate_limit_expensive_per_minute)")(limited)

    return decorate


def count_expensive_request(principal: Principal) -> None:
    """Count one expensive request of this caller; ``RateLimited`` when its limit is reached."""
    services().count_expensive_request(caller_bucket(principal))


def caller_bucket(principal: Principal) -> str:
    """The bearer token (by its SHA-256, as stored) or, for a signed-in browser, the user."""
    header = request.headers.get("Authorization", "")
    if header:  # current_principal() has accepted it: "Bearer <token>"
        return bucket("api-expensive:token", hash_token(header.partition(" ")[2].strip()))
    return expensive_user_bucket(principal.username)


def _too_many_requests(error: RateLimited) -> Response:
    """The problem+json of every domain error, plus ``Retry-After``."""
    response = from_domain_error(error)
    response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response
