"""The tables of DESIGN.md "Storage", as SQLAlchemy 2 declarative models.

``human_task``, ``timer`` and ``message_wait`` are projections of the Spiff state, reconciled by
the runtime in the same transaction as the command that changed it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import UTCDateTime


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Deployment(Base):
    """One uploaded file, kept byte for byte."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    tool: Mapped[str | None] = mapped_column(String(255))
    deployed_by: Mapped[str] = mapped_column(String(255))
    deployed_at: Mapped[datetime]

    definitions: Mapped[list[ProcessDefinition]] = relationship(back_populates="deployment")


class ProcessDefinition(Base):
    """One process of a deployment, at one version of its key."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_definition_key_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(512))
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"), index=True)
    executable: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    findings: Mapped[list[Any]] = mapped_column(default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    sop_state: Mapped[str] = mapped_column(String(32), default="draft")
    sop_published_at: Mapped[datetime | None]
    sop_published_by: Mapped[str | None] = mapped_column(String(255))
    retired_at: Mapped[datetime | None]
    retired_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]

    deployment: Mapped[Deployment] = relationship(back_populates="definitions", lazy="joined")


class ProcessInstance(Base):
    """A running or finished case; ``state`` is Spiff's serialized workflow without the spec."""

    __tablename__ = "process_instance"
    __table_args__ = (
        Index("ix_instance_status", "status"),
        Index("ix_instance_business_key", "business_key"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    started_by: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    parent_instance_id: Mapped[str | None] = mapped_column(String(36), index=True)

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": row_version}


class Incident(Base):
    """Something that stopped an instance or a timer and needs an operator."""

    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # script, timer, message, engine
    element_id: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(255))


class HumanTask(Base):
    """One open or finished user/manual task, as a performer's task list shows it."""

    __tablename__ = "human_task"
    __table_args__ = (
        Index("ix_task_status_assignee", "status", "assignee"),
        Index("ix_task_instance", "instance_id"),
        UniqueConstraint("instance_id", "spiff_task_id", name="uq_task_spiff"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(512))
    process_key: Mapped[str] = mapped_column(String(255), index=True)
    lane: Mapped[str | None] = mapped_column(String(255))
    candidate_groups: Mapped[list[Any]] = mapped_column(default=list)
    candidate_users: Mapped[list[Any]] = mapped_column(default=list)
    assignee: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    due_at: Mapped[datetime | None]
    follow_up_at: Mapped[datetime | None]
    form: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32))  # open, claimed, completed, cancelled
    outcome: Mapped[str | None] = mapped_column(Text)  # why it was cancelled (escalated, interrupted…)
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(255))
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": row_version}


class TaskCandidateGroup(Base):
    """Index rows so that 'tasks my groups may claim' is one indexed query."""

    __tablename__ = "task_candidate_group"

    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class TaskComment(Base):
    __tablename__ = "task_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id"), index=True)
    author: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Timer(Base):
    """One waiting timer. This table, not the scheduler, is the truth about what is due."""

    __tablename__ = "timer"
    __table_args__ = (Index("ix_timer_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(ForeignKey("process_instance.id"), index=True)
    definition_id: Mapped[int | None] = mapped_column(ForeignKey("process_definition.id"), index=True)
    spiff_task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))  # boundary-interrupting, boundary-non-interrupting, intermediate, start
    expression: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32), default="waiting")  # waiting, fired, cancelled, failed
    fire_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]  # after a failed firing: not before this (backoff)
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    lock_until: Mapped[datetime | None]
    fired_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class MessageWait(Base):
    """An instance waiting for a message, so correlation is one query, not a scan of every state."""

    __tablename__ = "message_wait"
    __table_args__ = (Index("ix_message_wait_name", "message_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("process_instance.id"), index=True)
    message_name: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(255))
    correlation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    kind: Mapped[str] = mapped_column(String(16), default="message")  # message, signal
    element_id: Mapped[str | None] = mapped_column(String(255))


class AuditEvent(Base):
    """Append-only, hash-chained record of every state change (written only by ``audit.chain.record``)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # (instance, sequence): the history of one case, and the trace-by-trace XES export, in index order
        Index("ix_audit_instance", "instance_id", "sequence"),
        Index("ix_audit_actor", "actor"),
        Index("ix_audit_timestamp", "timestamp"),
    )

    sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    timestamp: Mapped[datetime]
    event_type: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    definition_key: Mapped[str | None] = mapped_column(String(255))
    definition_version: Mapped[int | None] = mapped_column(Integer)
    element_id: Mapped[str | None] = mapped_column(String(255))
    element_name: Mapped[str | None] = mapped_column(String(512))
    element_type: Mapped[str | None] = mapped_column(String(64))
    transition: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(255))
    group: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row that serializes appends to the chain (locked FOR UPDATE by each writer)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


# Append-only at the database level: UPDATE and DELETE of audit rows are refused by a trigger, so no
# code path (or stray SQL from a console) can rewrite history without first dropping the trigger —
# and the hash chain still exposes whatever was changed then. TRUNCATE stays possible on PostgreSQL
# (tests empty every table with it); against a wiped log only an anchor kept outside the database
# helps (``audit verify --anchor``, docs/audit.md).
_AUDIT_APPEND_ONLY_PG = (
    """
    CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit_event is append-only: ' || TG_OP || ' refused',
            ERRCODE = 'restrict_violation';
    END;
    $$
    """,
    """
    CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()
    """,
)
_AUDIT_APPEND_ONLY_SQLITE = (
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END
    """,
)
for _statement in _AUDIT_APPEND_ONLY_PG:
    event.listen(AuditEvent.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
for _statement in _AUDIT_APPEND_ONLY_SQLITE:
    event.listen(AuditEvent.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))

# The chain head only moves forward and is never deleted: cutting the log's tail and rewinding the
# head to match needs a trigger dropped first, like any other rewrite (audit.chain, docs/audit.md).
_AUDIT_HEAD_FORWARD_PG = (
    """
    CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR NEW.sequence < OLD.sequence THEN
            RAISE EXCEPTION USING
                MESSAGE = 'audit_head only moves forward: ' || TG_OP || ' refused',
                ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END;
    $$
    """,
    """
    CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()
    """,
)
_AUDIT_HEAD_FORWARD_SQLITE = (
    """
    CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.sequence < OLD.sequence
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: DELETE refused'); END
    """,
)
for _statement in _AUDIT_HEAD_FORWARD_PG:
    event.listen(AuditHead.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))
for _statement in _AUDIT_HEAD_FORWARD_SQLITE:
    event.listen(AuditHead.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))


class User(Base):
    __tablename__ = "user_account"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class Group(Base):
    __tablename__ = "user_group"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(255))


class Membership(Base):
    __tablename__ = "membership"

    username: Mapped[str] = mapped_column(ForeignKey("user_account.username"), primary_key=True)
    group_name: Mapped[str] = mapped_column(ForeignKey("user_group.name"), primary_key=True, index=True)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("user_account.username"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Outbox(Base):
    """Notifications for people and webhook deliveries, written in the same transaction as their cause."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "channel", "status", "next_attempt_at"),
        Index("ix_outbox_recipient", "recipient", "channel"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # notification, webhook
    event_type: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(255))  # username, or webhook subscription id
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_subscription.id"))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(36))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, read, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[Any]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class RateLimit(Base):
    """The hits counted in the current fixed window of one rate-limit bucket (``store.rate_limits``):
    one row per bucket, reused from window to window; rows whose window has ended are pruned."""

    __tablename__ = "rate_limit"
    __table_args__ = (Index("ix_rate_limit_resets_at", "resets_at"),)

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)  # e.g. api-expensive:token:<sha256>
    hits: Mapped[int] = mapped_column(Integer)
    resets_at: Mapped[datetime]  # end of the window the hits belong to


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key`` of a start or a message, kept for a day (``runtime.idempotency``):
    a retry with the same key gets the first request's answer instead of a second start or delivery."""

    __tablename__ = "idempotency_key"
    __table_args__ = (Index("ix_idempotency_key_created_at", "created_at"),)

    owner: Mapped[str] = mapped_column(String(255), primary_key=True)  # the username keys belong to
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the request, to refuse a reused key
    instance_id: Mapped[str] = mapped_column(String(36))  # the instance the request started or reached
    outcome: Mapped[str] = mapped_column(String(16))  # started | delivered
    created_at: Mapped[datetime]
