"""Idempotent starts: a client sends an ``Idempotency-Key`` with a start (the IETF httpapi draft's
header), and a retry with the same key gets the instance the first request started instead of a
second one — after a timeout, a dropped connection, or a connection lost while the server committed,
when the client cannot know whether the start happened.

The key is stored with a hash of the request and the instance id *in the start's own transaction*,
so either both exist or neither does. Keys belong to the user who sent them (two clients may use the
same key) and are kept for ``KEEP`` (a day); an expired key starts anew. The same key with a different
request is refused (``IdempotencyKeyReused``, 422). Two requests with the same key at the same time:
the database's primary key lets one start commit; the other finds its key and answers with its instance.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.orm import Session

from ..errors import IdempotencyKeyReused, InvalidInput
from ..store import Database
from ..store.models import IdempotencyKey

KEEP = timedelta(hours=24)
_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # visible ASCII and spaces, as an HTTP header carries it

_TABLE = IdempotencyKey.__table__
_FIND = select(_TABLE.c.request_hash, _TABLE.c.instance_id).where(
    _TABLE.c.owner == bindparam("owner"), _TABLE.c.key == bindparam("key"), _TABLE.c.created_at > bindparam("since"))
_FORGET_EXPIRED = delete(_TABLE).where(_TABLE.c.owner == bindparam("owner"), _TABLE.c.created_at <= bindparam("since"))
_REMEMBER = insert(_TABLE)


def checked_key(key: str | None) -> str | None:
    """The key as sent, or InvalidInput naming the header if it cannot be one."""
    if key is None or _KEY.fullmatch(key):
        return key
    raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters",
                       errors=[{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}])


def request_hash(request: dict[str, Any]) -> str:
    """sha256 of the request's canonical JSON: what a retry must repeat exactly."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def started_before(database: Database, owner: str, key: str, fingerprint: str, now: datetime) -> str | None:
    """The instance an earlier request with this key started (None: the key is new or expired);
    IdempotencyKeyReused if that request was a different one."""
    with database.query() as connection:
        row = connection.execute(_FIND, {"owner": owner, "key": key, "since": now - KEEP}).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"the Idempotency-Key '{key}' was used for a different request (instance {row.instance_id}); "
            "use a new key for a new request", instance_id=row.instance_id)
    return row.instance_id


def remember(session: Session, owner: str, key: str, fingerprint: str, instance_id: str, now: datetime) -> None:
    """Store the key with the start, in its transaction; a twin request that stored it first makes the
    INSERT fail (IntegrityError), and the whole start rolls back."""
    connection = session.connection()
    connection.execute(_FORGET_EXPIRED, {"owner": owner, "since": now - KEEP})
    connection.execute(_REMEMBER, {"owner": owner, "key": key, "request_hash": fingerprint,
                                   "instance_id": instance_id, "created_at": now})
