"""The outbox: notifications for people and webhook deliveries, written in the same transaction as
the event that caused them, and delivered afterwards by the worker in transactions of their own.

``enqueue()`` is what a command calls (task created or assigned, reminder, escalation, instance
failed). It writes one ``notification`` row per person (group recipients are expanded to the
group's members at that moment) and one ``webhook`` row per active subscription to the event type.
Nothing is sent inside the command: a slow or dead webhook endpoint never delays the engine.

``OutboxService`` lists and marks a user's notifications, manages webhook subscriptions, and
delivers pending webhooks (HMAC-SHA256 signed, retried with exponential backoff, ``dead`` after
``max_attempts``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from ..clock import Clock
from ..errors import Forbidden, InvalidInput, NotFound
from ..identity.principal import Principal
from ..store import Database
from ..store.models import Membership, Outbox, User, WebhookSubscription

# Event kinds (also the webhook ``X-Bpmn-Event`` header and the subscription filter)
TASK_CREATED = "task.created"
TASK_ASSIGNED = "task.assigned"
TASK_REMINDER = "task.reminder"
TASK_ESCALATED = "task.escalated"
INSTANCE_FAILED = "instance.failed"
TIMER_INCIDENT = "timer.incident"
EVENT_KINDS = (TASK_CREATED, TASK_ASSIGNED, TASK_REMINDER, TASK_ESCALATED, INSTANCE_FAILED, TIMER_INCIDENT)

NOTIFICATION = "notification"
WEBHOOK = "webhook"

# statuses
PENDING = "pending"  # webhook waiting for (re)delivery
DELIVERED = "delivered"  # webhook accepted by the receiver; notification in the user's list, unread
READ = "read"  # notification the user marked read
DEAD = "dead"  # webhook given up after max attempts

SIGNATURE_HEADER = "X-Bpmn-Signature-256"
GROUP_PREFIX = "group:"


def enqueue(
    session: Session,
    kind: str,
    *,
    recipients: Iterable[str],
    payload: dict[str, Any],
    now: datetime | None = None,
    instance_id: str | None = None,
    task_id: str | None = None,
) -> int:
    """Write the notifications and webhook deliveries of one event into the caller's transaction;
    returns how many rows were written.

    ``recipients`` are usernames and ``group:<name>`` entries (expanded to the group's active
    members now). Duplicates are dropped; nothing is sent until the transaction has committed.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown outbox event kind {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    now = now or datetime.now(UTC)
    notifications = [
        {"channel": NOTIFICATION, "event_type": kind, "recipient": username, "instance_id": instance_id,
         "task_id": task_id, "payload": payload, "status": DELIVERED, "attempts": 0, "created_at": now,
         "delivered_at": now}
        for username in expand_recipients(session, recipients)]
    if notifications:
        session.connection().execute(_INSERT_OUTBOX, notifications)  # Core: one INSERT, no ORM objects
    # webhook deliveries stay ORM objects: the scheduler's flush hook sees them and wakes its webhook lane
    deliveries = [
        Outbox(channel=WEBHOOK, event_type=kind, recipient=str(subscription_id), subscription_id=subscription_id,
               instance_id=instance_id, task_id=task_id, payload=payload, status=PENDING, created_at=now,
               next_attempt_at=now)
        for subscription_id, event_types in session.execute(_ACTIVE_SUBSCRIPTIONS)
        if not event_types or kind in event_types or "*" in event_types]
    session.add_all(deliveries)
    return len(notifications) + len(deliveries)


def expand_recipients(session: Session, recipients: Iterable[str]) -> list[str]:
    """Usernames of the recipients, with ``group:<name>`` replaced by the group's active members."""
    users: list[str] = []
    groups: list[str] = []
    for recipient in recipients:
        if not recipient:
            continue
        if recipient.startswith(GROUP_PREFIX):
            groups.append(recipient[len(GROUP_PREFIX):])
        else:
            users.append(recipient)
    if groups:
        users.extend(session.execute(_ACTIVE_MEMBERS, {"groups": groups}).scalars())
    return list(dict.fromkeys(users))


_OUTBOX = Outbox.__table__
_INSERT_OUTBOX = _OUTBOX.insert()
_ACTIVE_SUBSCRIPTIONS = select(WebhookSubscription.id, WebhookSubscription.event_types).where(
    WebhookSubscription.active.is_(True))
_ACTIVE_MEMBERS = (
    select(Membership.username)
    .join(User, User.username == Membership.username)
    .where(Membership.group_name.in_(bindparam("groups", expanding=True)), User.active.is_(True))
    .order_by(Membership.username)
)


# -- views ----------------------------------------------------------------------------------------
@dataclass
class NotificationInfo:
    """One entry of a person's notification list."""

    id: int
    kind: str
    instance_id: str | None
    task_id: str | None
    payload: dict[str, Any]
    read: bool
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SubscriptionInfo:
    """A webhook subscription (its secret is shown only when it is created)."""

    id: int
    url: str
    event_types: list[str]
    owner: str
    active: bool
    created_at: datetime
    secret: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeliveryInfo:
    """One webhook delivery and how it went."""

    id: int
    subscription_id: int | None
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0


def _notification(row: Outbox) -> NotificationInfo:
    return NotificationInfo(row.id, row.event_type, row.instance_id, row.task_id, dict(row.payload or {}),
                            row.status == READ, row.created_at)


def _subscription(row: WebhookSubscription, *, with_secret: bool = False) -> SubscriptionInfo:
    return SubscriptionInfo(row.id, row.url, list(row.event_types or []), row.owner, row.active, row.created_at,
                            row.secret if with_secret else None)


def _delivery(row: Outbox) -> DeliveryInfo:
    return DeliveryInfo(row.id, row.subscription_id, row.event_type, row.status, row.attempts, row.next_attempt_at,
                        row.last_error, row.created_at, row.delivered_at)


def sign(secret: str, body: bytes) -> str:
    """The signature header value of a webhook body: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def backoff(attempts: int, base_seconds: float, cap_seconds: float = 3600.0) -> timedelta:
    """Exponential backoff after ``attempts`` failures: base, 2·base, 4·base … capped."""
    return timedelta(seconds=min(cap_seconds, base_seconds * (2 ** max(attempts - 1, 0))))


class OutboxService:
    """Notifications of the current user, webhook subscriptions, and webhook delivery."""

    def __init__(self, database: Database, clock: Clock, *, max_attempts: int = 6, backoff_seconds: float = 10.0,
                 timeout_seconds: float = 5.0, lease_seconds: float = 60.0) -> None:
        self.database = database
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.lease_seconds = lease_seconds

    # -- notifications ---------------------------------------------------------------------------
    def notifications(self, principal: Principal, *, unread_only: bool = False, offset: int = 0,
                      limit: int = 50) -> tuple[list[NotificationInfo], int, int]:
        """The caller's notifications, newest first: (page, total, unread count)."""
        with self.database.read() as session:
            mine = select(Outbox).where(Outbox.channel == NOTIFICATION, Outbox.recipient == principal.username)
            unread = session.scalar(
                select(func.count()).select_from(mine.where(Outbox.status != READ).subquery())) or 0
            if unread_only:
                mine = mine.where(Outbox.status != READ)
            total = session.scalar(select(func.count()).select_from(mine.subquery())) or 0
            rows = session.scalars(mine.order_by(Outbox.created_at.desc(), Outbox.id.desc())
                                   .offset(offset).limit(limit)).all()
            return [_notification(row) for row in rows], total, unread

    def mark_read(self, principal: Principal, notification_id: int) -> NotificationInfo:
        """Mark one of the caller's notifications read (someone else's is not found)."""
        with self.database.transaction() as session:
            row = session.get(Outbox, notification_id)
            if row is None or row.channel != NOTIFICATION or row.recipient != principal.username:
                raise NotFound(f"you have no notification {notification_id}")
            row.status = READ
            return _notification(row)

    def mark_all_read(self, principal: Principal) -> int:
        """Mark every unread notification of the caller read; returns how many."""
        with self.database.transaction() as session:
            result = session.execute(
                update(Outbox)
                .where(Outbox.channel == NOTIFICATION, Outbox.recipient == principal.username, Outbox.status != READ)
                .values(status=READ)
            )
            return result.rowcount or 0

    # -- webhook subscriptions ------------------------------------------------------------------
    def create_subscription(self, principal: Principal, url: str, event_types: list[str] | None = None,
                            secret: str | None = None) -> SubscriptionInfo:
        """Subscribe a URL to event kinds (all when empty); the secret is returned this once."""
        _require_admin(principal)
        _check_url(url)
        kinds = _check_kinds(event_types or [])
        with self.database.transaction() as session:
            row = WebhookSubscription(url=url, event_types=kinds, secret=secret or secrets.token_urlsafe(32),
                                      owner=principal.username, active=True, created_at=self.clock.now())
            session.add(row)
            session.flush()
            return _subscription(row, with_secret=True)

    def list_subscriptions(self, principal: Principal) -> list[SubscriptionInfo]:
        _require_admin(principal)
        with self.database.read() as session:
            rows = session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)).all()
            return [_subscription(row) for row in rows]

    def get_subscription(self, principal: Principal, subscription_id: int) -> SubscriptionInfo:
        _require_admin(principal)
        with self.database.read() as session:
            return _subscription(_get_subscription(session, subscription_id))

    def update_subscription(self, principal: Principal, subscription_id: int, *, url: str | None = None,
                            event_types: list[str] | None = None, active: bool | None = None,
                            secret: str | None = None) -> SubscriptionInfo:
        """Change a subscription's URL, event kinds, secret or active flag."""
        _require_admin(principal)
        with self.database.transaction() as session:
            row = _get_subscription(session, subscription_id)
            if url is not None:
                _check_url(url)
                row.url = url
            if event_types is not None:
                row.event_types = _check_kinds(event_types)
            if active is not None:
                row.active = active
            if secret is not None:
                row.secret = secret
            return _subscription(row, with_secret=secret is not None)

    def delete_subscription(self, principal: Principal, subscription_id: int) -> None:
        """Deactivate a subscription and drop its undelivered webhooks (history stays)."""
        _require_admin(principal)
        with self.database.transaction() as session:
            row = _get_subscription(session, subscription_id)
            row.active = False
            session.execute(update(Outbox).where(Outbox.subscription_id == row.id, Outbox.status == PENDING)
                            .values(status=DEAD, last_error="subscription deleted"))

    def deliveries(self, principal: Principal, subscription_id: int, *, status: str | None = None,
                   offset: int = 0, limit: int = 50) -> tuple[list[DeliveryInfo], int]:
        """The deliveries of one subscription, newest first."""
        _require_admin(principal)
        with self.database.read() as session:
            _get_subscription(session, subscription_id)
            query = select(Outbox).where(Outbox.channel == WEBHOOK, Outbox.subscription_id == subscription_id)
            if status:
                query = query.where(Outbox.status == status)
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Outbox.id.desc()).offset(offset).limit(limit)).all()
            return [_delivery(row) for row in rows], total

    # -- delivery -------------------------------------------------------------------------------
    def next_delivery_at(self) -> datetime | None:
        """When the earliest pending webhook is due (the scheduler wakes up then)."""
        with self.database.read() as session:
            return session.scalar(select(func.min(Outbox.next_attempt_at))
                                  .where(Outbox.channel == WEBHOOK, Outbox.status == PENDING))

    def deliver_webhooks(self, now: datetime | None = None, *, batch: int = 50) -> DeliveryReport:
        """Send every pending webhook that is due, each outside any database transaction.

        A delivery is claimed first (its ``next_attempt_at`` moves a lease ahead, ``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL), so two workers never send the same attempt; then it is POSTed with a
        timeout; then the outcome is written. A worker that dies mid-send leaves the row to be
        retried when the lease ends (receivers de-duplicate by the ``X-Bpmn-Delivery`` id).
        """
        report = DeliveryReport()
        while True:
            now_ = now or self.clock.now()
            claimed = self._claim(now_, batch)
            if not claimed:
                return report
            for delivery_id, url, secret, body, kind in claimed:
                error = self._post(url, secret, body, kind, delivery_id)
                outcome = self._record(delivery_id, error, now or self.clock.now())
                setattr(report, outcome, getattr(report, outcome) + 1)
            if len(claimed) < batch:
                return report

    def _claim(self, now: datetime, batch: int) -> list[tuple[int, str, str, bytes, str]]:
        lease_until = now + timedelta(seconds=self.lease_seconds)
        with self.database.transaction() as session:
            query = (select(Outbox)
                     .where(Outbox.channel == WEBHOOK, Outbox.status == PENDING, Outbox.next_attempt_at <= now)
                     .order_by(Outbox.next_attempt_at, Outbox.id).limit(batch))
            if not self.database.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=Outbox)
            claimed = []
            for row in session.scalars(query).all():
                subscription = session.get(WebhookSubscription, row.subscription_id) if row.subscription_id else None
                if subscription is None or not subscription.active:
                    row.status = DEAD
                    row.last_error = "subscription deleted or inactive"
                    continue
                row.attempts += 1
                row.next_attempt_at = lease_until
                body = json.dumps({"id": row.id, "event": row.event_type, "created_at": row.created_at.isoformat(),
                                   "instance_id": row.instance_id, "task_id": row.task_id,
                                   "data": row.payload or {}}, sort_keys=True, default=str).encode("utf-8")
                claimed.append((row.id, subscription.url, subscription.secret, body, row.event_type))
            return claimed

    def _post(self, url: str, secret: str, body: bytes, kind: str, delivery_id: int) -> str | None:
        """POST one webhook; None when the receiver answered 2xx, else what went wrong."""
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": "bpmn-server-webhook/1",
            "X-Bpmn-Event": kind,
            "X-Bpmn-Delivery": str(delivery_id),
            SIGNATURE_HEADER: sign(secret, body),
        })
        try:
            with _OPENER.open(request, timeout=self.timeout_seconds) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code} {error.reason}"
        except (TimeoutError, urllib.error.URLError, OSError) as error:
            return f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

    def _record(self, delivery_id: int, error: str | None, now: datetime) -> str:
        with self.database.transaction() as session:
            row = session.get(Outbox, delivery_id)
            if error is None:
                row.status = DELIVERED
                row.delivered_at = now
                row.next_attempt_at = None
                row.last_error = None
                return "delivered"
            row.last_error = error[:2000]
            if row.attempts >= self.max_attempts:
                row.status = DEAD
                row.next_attempt_at = None
                return "dead"
            row.next_attempt_at = now + backoff(row.attempts, self.backoff_seconds)
            return "retried"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Webhooks are not followed to other places: a redirect is a failed delivery."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("webhook subscriptions are managed by administrators")


def _get_subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound(f"there is no webhook subscription {subscription_id}")
    return row


def _check_url(url: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("a webhook URL must be an absolute http:// or https:// URL",
                           errors=[{"field": "url", "message": "expected e.g. https://example.com/hooks/bpmn"}])


def _check_kinds(kinds: list[str]) -> list[str]:
    unknown = [kind for kind in kinds if kind not in EVENT_KINDS and kind != "*"]
    if unknown:
        raise InvalidInput(f"unknown event types: {', '.join(unknown)}",
                           errors=[{"field": "event_types", "message": f"expected some of {', '.join(EVENT_KINDS)}"}])
    return list(dict.fromkeys(kinds))

