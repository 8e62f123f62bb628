"""Rate limits counted in the database, so every worker process and every node shares one count.

Fixed windows: a limit of N hits per window W allows N hits in each window ``[k·W, (k+1)·W)``
counted from the Unix epoch, and the count starts over when the window ends. One ``rate_limit`` row
per bucket (a caller of one limit, e.g. ``api-expensive:token:<sha256>``) holds the hits of its
current window. A hit is one ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`` statement that
either counts it (under the limit, or the first hit of a new window) or changes nothing, so hits
arriving at once from any number of processes never count past the limit. The price of one row and
one statement per hit: across a window boundary a caller can get up to 2·N hits in a short time.

Rows whose window has ended are deleted at most once a minute per process (by the index on
``resets_at``, skipping rows another transaction holds), so the table stays as small as the set of
recent callers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..clock import Clock
from ..errors import RateLimited
from .database import Database
from .models import RateLimit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PRUNE_INTERVAL = timedelta(minutes=1)
PRUNE_BATCH = 1000
_BUCKET_LENGTH = RateLimit.__table__.c.bucket.type.length


@dataclass(frozen=True)
class Limit:
    """At most ``hits`` per ``window`` for each bucket; ``hits`` (or ``window``) 0 switches the limit off.

    ``what`` says what is counted ("expensive requests per token") and ``setting`` how to change it;
    both go into the refusal's detail.
    """

    hits: int
    window: timedelta
    what: str
    setting: str

    @property
    def enabled(self) -> bool:
        return self.hits > 0 and self.window > timedelta(0)

    def window_end(self, now: datetime) -> datetime:
        """The end of the fixed window ``now`` falls in."""
        return EPOCH + ((now - EPOCH) // self.window + 1) * self.window


@dataclass(frozen=True)
class Hit:
    """One hit counted in a bucket: how many the window holds now, and when it ends."""

    bucket: str
    hits: int
    resets_at: datetime


EXPENSIVE_WINDOW = timedelta(minutes=1)


def expensive_requests(per_minute: int) -> Limit:
    """The limit on expensive requests (uploads, audit exports and verification, SOP exports) of one
    caller: ``rate_limit_expensive_per_minute``, over the API and the web pages alike."""
    return Limit(per_minute, EXPENSIVE_WINDOW, what="expensive requests (uploads, audit exports and verification, "
                 "SOP exports) per token", setting="rate_limit_expensive_per_minute")


def expensive_user_bucket(username: str) -> str:
    """The bucket of a signed-in browser user's expensive requests (API calls on the session and page uploads)."""
    return bucket("api-expensive:user", username)


def bucket(kind: str, value: str) -> str:
    """The bucket key of one caller of one limit (``login:user:alice``); a value too long for the
    column (a username typed into the sign-in form can be anything) is replaced by its SHA-256."""
    key = f"{kind}:{value}"
    if len(key) <= _BUCKET_LENGTH:
        return key
    return f"{kind}:sha256:{hashlib.sha256(value.encode('utf-8')).hexdigest()}"


class RateLimiter:
    """Counts hits in shared buckets and refuses (``errors.RateLimited``) the ones over a limit."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock
        self._next_prune: datetime | None = None
        self._insert = sqlite.insert if database.is_sqlite else postgresql.insert

    def hit(self, *checks: tuple[str, Limit]) -> list[Hit]:
        """Count one hit in each ``(bucket, limit)``, all or none, in one transaction.

        When a bucket is at its limit nothing is counted (not even in the buckets before it) and
        ``RateLimited`` says which limit and in how many seconds to retry (``retry_after``).
        Disabled limits are skipped. Returns the counted hits, in the order given.
        """
        checks = tuple((key, limit) for key, limit in checks if limit.enabled)
        if not checks:
            return []
        now = self.clock.now()
        self._prune_when_due(now)
        counted: list[Hit] = []
        with self.database.transaction() as session:
            for key, limit in checks:
                row = session.execute(self._count_statement(key, limit, now)).first()
                if row is None:
                    raise self._refusal(session, key, limit, now)  # rolls back what was counted
                counted.append(Hit(key, row.hits, row.resets_at))
        return counted

    def refund(self, hits: Iterable[Hit] = (), *, clear: Iterable[str] = ()) -> None:
        """Give counted hits back (when what they counted turned out not to matter) and forget
        the ``clear`` buckets entirely, in one transaction. A hit of an ended window is not refunded."""
        hits, clear = list(hits), list(clear)
        if not hits and not clear:
            return
        with self.database.transaction() as session:
            for counted in hits:
                session.execute(
                    update(RateLimit)
                    .where(RateLimit.bucket == counted.bucket, RateLimit.resets_at == counted.resets_at,
                           RateLimit.hits > 0)
                    .values(hits=RateLimit.hits - 1)
                )
            if clear:
                session.execute(delete(RateLimit).where(RateLimit.bucket.in_(clear)))

    def prune(self) -> int:
        """Delete up to ``PRUNE_BATCH`` rows whose window has ended; how many went."""
        now = self.clock.now()
        ended = (select(RateLimit.bucket).where(RateLimit.resets_at <= now).limit(PRUNE_BATCH)
                 .with_for_update(skip_locked=True))  # never wait for (or deadlock with) a hit
        with self.database.transaction() as session:
            return session.execute(delete(RateLimit).where(RateLimit.bucket.in_(ended))).rowcount

    def _prune_when_due(self, now: datetime) -> None:
        if self._next_prune is None or now >= self._next_prune:
            self._next_prune = now + PRUNE_INTERVAL
            self.prune()

    def _count_statement(self, key: str, limit: Limit, now: datetime):
        """Count the hit, starting the bucket's window over when it has ended; with the bucket at
        its limit the WHERE holds the update back and nothing is returned."""
        table = RateLimit.__table__
        insert = self._insert(table).values(bucket=key, hits=1, resets_at=limit.window_end(now))
        # a node whose clock lags puts its hit into the newer window already stored, not an older one
        new_window = insert.excluded.resets_at > table.c.resets_at
        return insert.on_conflict_do_update(
            index_elements=[table.c.bucket],
            set_={"hits": case((new_window, 1), else_=table.c.hits + 1),
                  "resets_at": case((new_window, insert.excluded.resets_at), else_=table.c.resets_at)},
            where=new_window | (table.c.hits < limit.hits),
        ).returning(table.c.hits, table.c.resets_at)

    @staticmethod
    def _refusal(session: Session, key: str, limit: Limit, now: datetime) -> RateLimited:
        resets_at = session.scalar(select(RateLimit.resets_at).where(RateLimit.bucket == key))
        retry_after = max(1, math.ceil((resets_at - now).total_seconds()))
        return RateLimited(
            f"rate limit reached: {limit.hits} {limit.what} per {_duration(limit.window)} "
            f"(setting {limit.setting}); try again in {retry_after} s",
            limit={"setting": limit.setting, "hits": limit.hits, "window_seconds": int(limit.window.total_seconds())},
            retry_after=retry_after,
        )


def _duration(window: timedelta) -> str:
    """``minute``, ``5 minutes``, ``90 seconds``: the window as the refusal says it."""
    seconds = int(window.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"
