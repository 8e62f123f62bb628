"""Helpers for the audit tests: a realistic small log, tampering with the trigger out of the way,
and checks that an export is valid against the standards' own schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import text

from bpmn_server.audit import events as ev
from bpmn_server.audit.chain import event_hash, record
from bpmn_server.audit.query import table
from bpmn_server.clock import ManualClock
from bpmn_server.identity import Principal
from bpmn_server.store import Database

STANDARDS = Path(__file__).resolve().parent.parent.parent / "shared" / "standards"
XES_XSD = STANDARDS / "xes" / "xes-ieee-1849-2016.xsd"
OCEL_SCHEMA = STANDARDS / "ocel" / "ocel20-schema-json.json"

AUDITOR = Principal("audrey", frozenset({"auditor"}))
ADMIN = Principal("root", is_admin=True)
CLERK = Principal("clerk", frozenset({"clerks"}))

INSTANCE_A = "aaaaaaaa-0000-4000-8000-000000000001"
INSTANCE_B = "bbbbbbbb-0000-4000-8000-000000000002"


def seed_log(database: Database, clock: ManualClock) -> None:
    """Two refund cases as the runtime records them, plus model and identity events around them."""
    tick = timedelta(minutes=5)
    with database.transaction() as s:
        record(s, ev.MODEL_DEPLOYED, actor="olga", timestamp=clock.now(), definition_key="refund",
               definition_version=1, data={"deployment": 1, "file": "refund.bpmn"})
    for instance, amount, approver in ((INSTANCE_A, 800, "mia"), (INSTANCE_B, 90, None)):
        clock.advance(tick)
        case = {"instance_id": instance, "definition_key": "refund", "definition_version": 1}
        with database.transaction() as s:
            record(s, ev.INSTANCE_STARTED, actor="carl", timestamp=clock.now(), **case,
                   element_id="start", element_type="startEvent")
            record(s, ev.VARIABLES_CHANGED, actor="carl", timestamp=clock.now(), **case,
                   data=ev.variables_delta({}, {"orderId": f"A-{amount}", "amount": amount,
                                                "customer_id": 17, "note": "Ünïcödé <&> \"q\""}))
            record(s, ev.TASK_CREATED, actor="system:engine", timestamp=clock.now(), **case,
                   element_id="approve", element_name="Approve refund", element_type="userTask",
                   group="managers", data={"task_id": f"task-{amount}"})
        if approver:
            clock.advance(tick)
            with database.transaction() as s:
                record(s, ev.TASK_CLAIMED, actor=approver, timestamp=clock.now(), **case,
                       element_id="approve", element_name="Approve refund", element_type="userTask",
                       group="managers", data={"task_id": f"task-{amount}"})
            clock.advance(tick)
            with database.transaction() as s:
                record(s, ev.TASK_COMPLETED, actor=approver, timestamp=clock.now(), **case,
                       element_id="approve", element_name="Approve refund", element_type="userTask",
                       group="managers", data={"task_id": f"task-{amount}", "form": {"approved": True}})
                record(s, ev.INSTANCE_COMPLETED, actor=approver, timestamp=clock.now(), **case,
                       element_id="end", element_type="endEvent")
        else:
            clock.advance(timedelta(days=2))
            with database.transaction() as s:
                record(s, ev.TIMER_FIRED, actor=ev.ACTOR_TIMER, timestamp=clock.now(), **case,
                       element_id="remind", element_name="After 2 days", element_type="boundaryEvent")
                record(s, ev.TASK_CANCELLED, actor=ev.ACTOR_TIMER, timestamp=clock.now(), **case,
                       element_id="approve", element_name="Approve refund", element_type="userTask",
                       group="managers", data={"task_id": f"task-{amount}", "reason": "escalated"})
    clock.advance(tick)
    with database.transaction() as s:
        record(s, ev.USER_CREATED, actor="root", timestamp=clock.now(), data={"username": "mia"})


def write_events(database: Database, clock: ManualClock, count: int, *, per_transaction: int = 1) -> None:
    """``count`` plain task events, ``per_transaction`` per command."""
    written = 0
    while written < count:
        with database.transaction() as s:
            for _ in range(min(per_transaction, count - written)):
                written += 1
                clock.advance(1)
                record(s, ev.TASK_COMPLETED, actor=f"user{written % 3}", timestamp=clock.now(),
                       instance_id=INSTANCE_A, definition_key="refund", element_id=f"t{written}",
                       data={"n": written})


# -- tampering: the append-only trigger has to go first, as it would for a real attacker ----------

_SQLITE_TRIGGERS = {
    "audit_event_no_update": "BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'append-only'); END",
    "audit_event_no_delete": "BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'append-only'); END",
    "audit_head_forward_only": "BEFORE UPDATE ON audit_head WHEN NEW.sequence < OLD.sequence "
                               "BEGIN SELECT RAISE(ABORT, 'forward only'); END",
    "audit_head_no_delete": "BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, 'forward only'); END",
}
_POSTGRES_TRIGGERS = {"audit_event": "audit_event_append_only", "audit_head": "audit_head_forward_only"}


@contextmanager
def append_only_lifted(database: Database) -> Iterator[None]:
    """Drop the append-only and forward-only triggers for the block and put them back afterwards."""
    with database.engine.begin() as conn:
        if database.is_sqlite:
            for name in _SQLITE_TRIGGERS:
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for table_name, trigger in _POSTGRES_TRIGGERS.items():
                conn.execute(text(f"ALTER TABLE {table_name} DISABLE TRIGGER {trigger}"))
    try:
        yield
    finally:
        with database.engine.begin() as conn:
            if database.is_sqlite:
                for name, body in _SQLITE_TRIGGERS.items():
                    conn.execute(text(f"CREATE TRIGGER {name} {body}"))
            else:
                for table_name, trigger in _POSTGRES_TRIGGERS.items():
                    conn.execute(text(f"ALTER TABLE {table_name} ENABLE TRIGGER {trigger}"))


def tamper(database: Database, *statements: str, **params) -> None:
    """Run raw SQL against the audit tables with their triggers out of the way."""
    with append_only_lifted(database), database.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def rehash(database: Database, sequence: int) -> None:
    """Recompute one event's hash after it was edited (what a careful forger would do)."""
    with database.engine.connect() as conn:
        fields = conn.execute(table.select().where(table.c.sequence == sequence)).mappings().one()
    tamper(database, "UPDATE audit_event SET hash = :h WHERE sequence = :s",
           h=event_hash(fields["prev_hash"], fields), s=sequence)


def hash_of(database: Database, sequence: int) -> str:
    with database.engine.connect() as conn:
        return conn.execute(text("SELECT hash FROM audit_event WHERE sequence = :s"), {"s": sequence}).scalar_one()


# -- validating exports against the standards' schemas ---------------------------------------

@cache
def xes_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(XES_XSD)))


def assert_valid_xes(document: bytes):
    """Parse the XES bytes, assert the IEEE XSD accepts them, return the root element."""
    from lxml import etree

    root = etree.fromstring(document)
    schema = xes_schema()
    assert schema.validate(root), schema.error_log
    return root


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@cache
def ocel_validator():
    import jsonschema

    checker = jsonschema.FormatChecker()

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:  # jsonschema's own check needs an extra package
        return not isinstance(value, str) or bool(_RFC3339.match(value))

    schema = json.loads(OCEL_SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def assert_valid_ocel(document: bytes) -> dict:
    """Parse the OCEL JSON, assert the OCEL 2.0 schema accepts it and every reference resolves."""
    log = json.loads(document)
    errors = sorted(ocel_validator().iter_errors(log), key=str)
    assert not errors, errors[:3]
    object_ids = {o["id"] for o in log["objects"]}
    assert len(object_ids) == len(log["objects"]), "object ids repeat"
    object_types = {t["name"] for t in log["objectTypes"]}
    event_types = {t["name"] for t in log["eventTypes"]}
    assert {o["type"] for o in log["objects"]} <= object_types
    assert {e["type"] for e in log["events"]} <= event_types
    for item in log["events"] + log["objects"]:
        for relation in item.get("relationships", []):
            assert relation["objectId"] in object_ids, relation
    return log
