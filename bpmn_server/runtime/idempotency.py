"""Idempotent requests: a client sends an ``Idempotency-Key`` with a start or a message (the IETF
httpapi draft's header), and a retry with the same key gets the first request's answer instead of a
second start or delivery — after a timeout, a dropped connection, or a connection lost while the
server committed, when the client cannot know whether the request took effect.

The key is stored with a hash of the request and what it did (the instance it started or reached)
*in the same transaction as the command that did it*, so either both exist or neither does. Keys
belong to the user who sent them (two clients may use the same key) and are kept for ``KEEP`` (a
day); an expired key is new again, and expired keys are deleted in batches at most every
``PRUNE_INTERVAL`` by each process that takes keyed requests. The same key with a different request is refused
(``IdempotencyKeyReused``, 422). Two requests with the same key at the same time: the key's primary
key (or the instance lock) lets one command commit; the other finds the key and answers as the first.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError

from ..errors import IdempotencyKeyReused, InvalidInput
from ..store import Database
from ..store.models import IdempotencyKey

if TYPE_CHECKING:
    from .commands import Command

T = TypeVar("T")

KEEP = timedelta(hours=24)
PRUNE_INTERVAL = timedelta(minutes=10)
PRUNE_BATCH = 1000
STARTED = "started"
DELIVERED = "delivered"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # visible ASCII and spaces, as an HTTP header carries it

_TABLE = IdempotencyKey.__table__
_FIND = select(_TABLE.c.request_hash, _TABLE.c.instance_id, _TABLE.c.outcome).where(
    _TABLE.c.owner == bindparam("owner"), _TABLE.c.key == bindparam("key"), _TABLE.c.created_at > bindparam("since"))
_FORGET_IF_EXPIRED = delete(_TABLE).where(_TABLE.c.owner == bindparam("owner"), _TABLE.c.key == bindparam("key"),
                                          _TABLE.c.created_at <= bindparam("since"))
_PRUNE = delete(_TABLE).where(tuple_(_TABLE.c.owner, _TABLE.c.key).in_(
    select(_TABLE.c.owner, _TABLE.c.key).where(_TABLE.c.created_at <= bindparam("since")).limit(PRUNE_BATCH)
    .with_for_update(skip_locked=True)))  # never wait for (or deadlock with) another process's prune
_REMEMBER = insert(_TABLE)


def checked_key(key: str | None) -> str | None:
    """The key as sent, or InvalidInput naming the header if it cannot be one."""
    if key is None or _KEY.fullmatch(key):
        return key
    raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters",
                       errors=[{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}])


@dataclass(frozen=True)
class Answer:
    """What the first request with a key did: the instance it started or reached."""

    instance_id: str
    outcome: str  # STARTED or DELIVERED


@dataclass
class IdempotentRequest:
    """One keyed request of ``owner``: look up what an earlier one did, remember what this one does."""

    database: Database
    owner: str
    key: str
    request: dict[str, Any]  # what a retry must repeat exactly (the kind of request included)
    now: datetime

    @cached_property
    def fingerprint(self) -> str:
        canonical = json.dumps(self.request, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def once(self, work: Callable[[], T], replay: Callable[[Answer], T], *,
             lost_race: tuple[type[Exception], ...] = (IntegrityError,)) -> T:
        """``work()`` unless an earlier request with this key took effect; then ``replay`` of what it did.
        ``work`` stores the key with its command (``remember``). A twin request that got there first makes
        ``work`` fail with one of ``lost_race`` (its key INSERT, or what the twin already did); this
        request then answers as the twin did."""
        earlier = self.answered_before()
        if earlier is None:
            try:
                return work()
            except lost_race:
                earlier = self.answered_before()
                if earlier is None:
                    raise
        return replay(earlier)

    def answered_before(self) -> Answer | None:
        """What an earlier request with this key did (None: the key is new or expired);
        IdempotencyKeyReused if that request was a different one."""
        with self.database.query() as connection:
            row = connection.execute(_FIND, {"owner": self.owner, "key": self.key, "since": self.now - KEEP}).first()
        if row is None:
            return None
        if row.request_hash != self.fingerprint:
            raise IdempotencyKeyReused(
                f"the Idempotency-Key '{self.key}' was used for a different request (instance {row.instance_id}); "
                "use a new key for a new request", instance_id=row.instance_id)
        return Answer(row.instance_id, row.outcome)

    def remember(self, command: Command, outcome: str) -> None:
        """Store the key with the command that did the work (``outcome`` to its instance), in its
        transaction; a twin request that stored it first makes the INSERT fail (IntegrityError), and the
        whole command rolls back."""
        connection = command.session.connection()
        connection.execute(_FORGET_IF_EXPIRED, {"owner": self.owner, "key": self.key, "since": self.now - KEEP})
        connection.execute(_REMEMBER, {"owner": self.owner, "key": self.key, "request_hash": self.fingerprint,
                                       "instance_id": command.instance.id, "outcome": outcome,
                                       "created_at": self.now})


class IdempotencyKeys:
    """The keyed requests of one process's services, and the pruning of expired keys."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._next_prune: datetime | None = None
        self._lock = threading.Lock()

    def request(self, owner: str, key: str, request: dict[str, Any], now: datetime) -> IdempotentRequest:
        """A keyed request; expired keys are pruned first when it is time."""
        with self._lock:
            due = self._next_prune is None or now >= self._next_prune
            if due:
                self._next_prune = now + PRUNE_INTERVAL
        if due:
            self.prune(now)
        return IdempotentRequest(self.database, owner, key, request, now)

    def prune(self, now: datetime) -> int:
        """Delete up to ``PRUNE_BATCH`` expired keys; how many went."""
        with self.database.transaction() as session:
            return session.execute(_PRUNE, {"since": now - KEEP}).rowcount
