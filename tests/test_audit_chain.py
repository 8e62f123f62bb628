"""The hash-chained audit log: appending, append-only storage, concurrent writers, and verify
finding exactly where the log was altered, cut, reordered or forged — on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from bpmn_server.audit import events as ev
from bpmn_server.audit.chain import GENESIS_HASH, record, record_many
from bpmn_server.audit.service import AuditService
from bpmn_server.audit.verify import verify_chain
from bpmn_server.errors import Forbidden
from bpmn_server.identity import Principal
from bpmn_server.store.models import AuditEvent, AuditHead
from tests import models
from tests.audit_support import (
    ADMIN,
    AUDITOR,
    CLERK,
    INSTANCE_A,
    hash_of,
    rehash,
    tamper,
    write_events,
)


def _verify(database, anchors=None):
    with database.read() as session:
        return verify_chain(session, anchors=anchors, batch_size=4)  # small batches: cross page edges


def _rows(database):
    with database.read() as session:
        return session.execute(
            select(AuditEvent.sequence, AuditEvent.prev_hash, AuditEvent.hash, AuditEvent.data)
            .order_by(AuditEvent.sequence)
        ).all()


# -- appending ----------------------------------------------------------------------------------

def test_events_form_one_chain_from_the_genesis_hash(database, clock):
    write_events(database, clock, 10, per_transaction=3)

    rows = _rows(database)
    assert [r.sequence for r in rows] == list(range(1, 11))
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(rows, rows[1:], strict=False))
    result = _verify(database)
    assert result.ok and result.events_checked == 10
    assert result.message.startswith("all 10 events are intact")
    assert result.head_sequence == 10 and result.head_hash == rows[-1].hash


def test_an_empty_log_is_intact(database):
    result = _verify(database)
    assert result.ok and result.events_checked == 0 and result.message.startswith("all 0 events")


def test_a_rolled_back_command_leaves_no_event_and_no_gap(database, clock):
    write_events(database, clock, 2)
    with pytest.raises(RuntimeError), database.transaction() as s:
        record(s, ev.INSTANCE_STARTED, actor="carl", timestamp=clock.now(), instance_id=INSTANCE_A)
        raise RuntimeError("the command failed after recording")
    write_events(database, clock, 1)

    assert [r.sequence for r in _rows(database)] == [1, 2, 3]
    assert _verify(database).ok


def test_a_rolled_back_savepoint_does_not_break_the_chain(database, clock):
    with database.transaction() as s:
        record(s, ev.INSTANCE_STARTED, actor="carl", timestamp=clock.now(), instance_id=INSTANCE_A)
        savepoint = s.begin_nested()
        record(s, ev.TASK_CREATED, actor="carl", timestamp=clock.now(), instance_id=INSTANCE_A)
        savepoint.rollback()
        record(s, ev.INSTANCE_COMPLETED, actor="carl", timestamp=clock.now(), instance_id=INSTANCE_A)

    with database.read() as session:
        types = session.scalars(select(AuditEvent.event_type).order_by(AuditEvent.sequence)).all()
    assert types == [ev.INSTANCE_STARTED, ev.INSTANCE_COMPLETED]
    assert _verify(database).ok


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"event_type": "task-exploded", "actor": "carl"}, "unknown audit event type"),
        ({"event_type": ev.TASK_CLAIMED, "actor": ""}, "needs an actor"),
        ({"event_type": ev.TASK_CLAIMED, "actor": "carl", "transition": "finish"}, "not an XES lifecycle"),
        ({"event_type": ev.TASK_CLAIMED, "actor": "carl", "timestamp": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_record_refuses_an_event_it_could_not_export(database, clock, arguments, complaint):
    arguments = {"timestamp": clock.now(), **arguments}
    event_type = arguments.pop("event_type")
    with pytest.raises(ValueError, match=complaint), database.transaction() as s:
        record(s, event_type, **arguments)
    assert _rows(database) == []


def test_awkward_data_is_stored_so_that_its_hash_still_recomputes(database, clock):
    data = {
        "when": datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        "day": date(2026, 3, 1),
        "amount": Decimal("12.30"),
        "tags": {"b", "a"},
        "ratio": math.nan,
        "big": 2**70,
        "tiny": 1e-300,
        "text": "naïve ✓ \x00 nul and a lone \ud800 surrogate",
        "nested": {"list": [1, 2.5, None, True], "bytes": b"\x00\xff"},
        1: "integer key",
    }
    with database.transaction() as s:
        event = record(s, ev.VARIABLES_CHANGED, actor="carl\x00", timestamp=clock.now(),
                       instance_id=INSTANCE_A, element_name="x" * 600, data=data)
        stored = dict(event.data)

    assert _verify(database).ok
    (row,) = _rows(database)
    assert row.data == stored
    assert stored["tags"] == ["a", "b"] and stored["ratio"] == "nan" and stored["1"] == "integer key"
    assert "\x00" not in stored["text"] and "\ud800" not in stored["text"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
    | st.datetimes(timezones=st.just(UTC)) | st.decimals(allow_nan=False, places=3),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)


@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.dictionaries(st.text(max_size=8), _json_values, max_size=4),
       name=st.text(max_size=40))
def test_any_data_a_command_records_still_verifies_after_the_round_trip(database, clock, data, name):
    with database.transaction() as s:
        record(s, ev.VARIABLES_CHANGED, actor="carl", timestamp=clock.now(), element_name=name or None, data=data)
    result = _verify(database)
    assert result.ok, result.message


def test_the_database_refuses_to_rewrite_events_or_rewind_the_head(database, clock):
    write_events(database, clock, 3)
    before = _rows(database)
    for statement in ("UPDATE audit_event SET actor = 'mallory' WHERE sequence = 2",
                      "DELETE FROM audit_event WHERE sequence = 3"):
        with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as conn:
            conn.execute(text(statement))
    assert _rows(database) == before
    for statement, refusal in (("UPDATE audit_head SET sequence = 1", "forward"),
                               ("DELETE FROM audit_head", "forward")):
        with pytest.raises(DBAPIError, match=refusal), database.engine.begin() as conn:
            conn.execute(text(statement))
    assert _verify(database).ok


def test_record_many_chains_like_record_and_mixes_with_it(database, clock):
    entries = [
        {"event_type": ev.ELEMENT_COMPLETED, "actor": ev.ACTOR_ENGINE, "timestamp": clock.now(),
         "instance_id": INSTANCE_A, "element_id": f"script{i}", "data": {"i": i}}
        for i in range(2500)  # more than one INSERT batch
    ]
    with database.transaction() as s:
        record(s, ev.INSTANCE_STARTED, actor="carl", timestamp=clock.now(), instance_id=INSTANCE_A)
        assert record_many(s, entries) == 2500
        record(s, ev.INSTANCE_COMPLETED, actor=ev.ACTOR_ENGINE, timestamp=clock.now(), instance_id=INSTANCE_A)
    with pytest.raises(ValueError), database.transaction() as s:
        record_many(s, [entries[0], {**entries[1], "actor": ""}])

    rows = _rows(database)
    assert [r.sequence for r in rows] == list(range(1, 2503))
    assert rows[1].data == {"i": 0} and rows[-2].data == {"i": 2499}
    result = _verify(database)
    assert result.ok and result.events_checked == 2502


# -- concurrent writers -------------------------------------------------------------------------

def test_concurrent_writers_keep_one_gapless_linear_chain(database, clock):
    threads, commands, per_command = 6, 15, 3
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            barrier.wait()
            for command in range(commands):
                with database.transaction() as s:
                    for step in range(per_command):
                        record(s, ev.ELEMENT_COMPLETED, actor=f"worker{worker}", timestamp=clock.now(),
                               data={"worker": worker, "command": command, "step": step})
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    writing = threading.Event()
    live_checks = []

    def auditor() -> None:  # verify on a live system: never a false alarm while writers commit
        try:
            while writing.is_set():
                live_checks.append(_verify(database))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    writing.set()
    checker = threading.Thread(target=auditor)
    for thread in (*pool, checker):
        thread.start()
    for thread in pool:
        thread.join()
    writing.clear()
    checker.join()

    assert not failures, failures
    assert live_checks and all(check.ok for check in live_checks), [c.message for c in live_checks if not c.ok]
    rows = _rows(database)
    total = threads * commands * per_command
    assert [r.sequence for r in rows] == list(range(1, total + 1))
    by_command: dict[tuple[int, int], list[int]] = defaultdict(list)
    for row in rows:
        by_command[row.data["worker"], row.data["command"]].append(row.sequence)
    # one command's events are contiguous: the head stays locked from its first event to its commit
    for sequences in by_command.values():
        assert sequences == list(range(sequences[0], sequences[0] + per_command))
    result = _verify(database)
    assert result.ok and result.events_checked == total
    with database.read() as session:
        assert session.get(AuditHead, 1).sequence == total


# -- tampering ----------------------------------------------------------------------------------

@pytest.fixture
def ten_events(database, clock):
    write_events(database, clock, 10, per_transaction=2)
    assert _verify(database).ok
    return database


def test_an_edited_event_is_reported_at_its_position(ten_events):
    tamper(ten_events, "UPDATE audit_event SET actor = 'mallory' WHERE sequence = 6")
    result = _verify(ten_events)
    assert (result.ok, result.problem, result.first_bad_sequence) == (False, "altered", 6)
    assert "event 6 was altered" in result.message


def test_an_edited_and_rehashed_event_is_reported_at_its_position(ten_events):
    tamper(ten_events, "UPDATE audit_event SET data = '{\"n\": 999}' WHERE sequence = 4")
    rehash(ten_events, 4)
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("altered", 4)


def test_an_edited_last_event_is_caught_by_the_head(ten_events):
    tamper(ten_events, "UPDATE audit_event SET actor = 'mallory' WHERE sequence = 10")
    rehash(ten_events, 10)
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("altered", 10)


@pytest.mark.parametrize("removed", [1, 5, 9])
def test_a_removed_event_is_reported_at_its_position(ten_events, removed):
    tamper(ten_events, "DELETE FROM audit_event WHERE sequence = :s", s=removed)
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("removed", removed)
    assert f"event {removed} is missing" in result.message


@pytest.mark.parametrize(("first", "second"), [(3, 8), (4, 5), (1, 2)])
def test_two_swapped_events_are_reported_where_the_order_breaks(ten_events, first, second):
    tamper(
        ten_events,
        "UPDATE audit_event SET sequence = -1 WHERE sequence = :a",
        "UPDATE audit_event SET sequence = :a WHERE sequence = :b",
        "UPDATE audit_event SET sequence = :b WHERE sequence = -1",
        a=first, b=second,
    )
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("reordered", first)
    assert f"belongs at position {second}" in result.message


def test_a_truncated_tail_is_reported_where_the_log_now_ends(ten_events):
    tamper(ten_events, "DELETE FROM audit_event WHERE sequence > 7")
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("truncated", 8)
    assert "events 8–10 were removed" in result.message


def test_a_tail_cut_together_with_the_head_needs_an_anchor(ten_events):
    anchor = {10: hash_of(ten_events, 10)}  # what an auditor kept from an earlier verify
    head_at_7 = hash_of(ten_events, 7)
    tamper(ten_events, "DELETE FROM audit_event WHERE sequence > 7",
           "UPDATE audit_head SET sequence = 7, hash = :h", h=head_at_7)

    alone = _verify(ten_events)
    assert alone.ok and alone.events_checked == 7  # the chain itself is consistent again
    anchored = _verify(ten_events, anchors=anchor)
    assert (anchored.ok, anchored.problem, anchored.first_bad_sequence) == (False, "truncated", 8)


def test_a_log_rewritten_from_some_event_on_fails_an_earlier_anchor(ten_events, clock):
    anchor = {8: hash_of(ten_events, 8)}
    # the forger edits event 5 and recomputes every later hash and the head: internally consistent
    tamper(ten_events, "UPDATE audit_event SET actor = 'mallory' WHERE sequence = 5")
    for sequence in range(5, 11):
        if sequence > 5:
            tamper(ten_events, "UPDATE audit_event SET prev_hash = :p WHERE sequence = :s",
                   p=hash_of(ten_events, sequence - 1), s=sequence)
        rehash(ten_events, sequence)
    tamper(ten_events, "UPDATE audit_head SET hash = :h", h=hash_of(ten_events, 10))

    assert _verify(ten_events).ok
    result = _verify(ten_events, anchors=anchor)
    assert (result.problem, result.first_bad_sequence) == ("altered", 8)
    assert "anchored hash" in result.message


def test_a_deleted_chain_head_is_reported(ten_events):
    tamper(ten_events, "DELETE FROM audit_head")
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("head-mismatch", 1)
    assert "head row is missing" in result.message


def test_an_event_slipped_in_behind_the_head_is_reported(ten_events, clock):
    from bpmn_server.audit.chain import _event_fields, event_hash

    fields = _event_fields(ev.TASK_COMPLETED, actor="mallory", timestamp=clock.now())
    fields.update(sequence=11, prev_hash=hash_of(ten_events, 10))
    fields["hash"] = event_hash(fields["prev_hash"], fields)
    with ten_events.engine.begin() as conn:  # an INSERT needs no trigger lifted
        conn.execute(AuditEvent.__table__.insert(), fields)
    result = _verify(ten_events)
    assert (result.problem, result.first_bad_sequence) == ("head-mismatch", 11)


# -- who records what ---------------------------------------------------------------------------

def test_model_and_identity_commands_record_their_events_with_the_actor(services):
    services.identity.bootstrap_admin()
    services.identity.create_user("mia", password="pw-mia-123", groups=["managers"], actor="admin")
    services.identity.add_to_group("mia", "auditor", actor="admin")
    issued = services.identity.create_token("mia", "laptop")
    services.identity.revoke_token(issued.id, Principal("mia"))
    services.definitions.deploy(models.linear_process("refund", "Refund"), "refund.bpmn", "olga")
    services.definitions.retire("refund", 1, Principal("olga"))

    page = services.audit.list_events(ADMIN, limit=100)
    seen = [(e.event_type, e.actor) for e in page.items]
    expected = [
        (ev.USER_CREATED, "system"),
        (ev.API_TOKEN_CREATED, "system"),
        (ev.USER_CREATED, "admin"),
        (ev.MEMBERSHIP_CHANGED, "admin"),
        (ev.API_TOKEN_CREATED, "mia"),
        (ev.API_TOKEN_REVOKED, "mia"),
        (ev.MODEL_DEPLOYED, "olga"),
        (ev.MODEL_RETIRED, "olga"),
    ]
    remaining = iter(seen)  # in this order; other features may record more (e.g. an SOP published)
    assert all(item in remaining for item in expected), seen
    deployed = next(e for e in page.items if e.event_type == ev.MODEL_DEPLOYED)
    assert (deployed.definition_key, deployed.definition_version) == ("refund", 1)
    assert all(e.timestamp == services.clock.now() for e in page.items)
    assert services.audit.verify(ADMIN).ok


def test_only_auditors_and_administrators_read_the_log_and_refusals_are_recorded(database, clock):
    audit = AuditService(database, clock)
    write_events(database, clock, 2)
    assert audit.list_events(AUDITOR).total == 2
    assert audit.list_events(ADMIN).total == 2

    with pytest.raises(Forbidden, match="auditor"):
        audit.list_events(CLERK)
    with pytest.raises(Forbidden):
        audit.verify(CLERK)
    with pytest.raises(Forbidden):
        audit.export(CLERK, "xes")

    denied = audit.list_events(AUDITOR, event_type=ev.PERMISSION_DENIED)
    assert [(e.actor, e.data["action"]) for e in denied.items] == [
        ("clerk", "read the audit log"), ("clerk", "verify the audit log"), ("clerk", "export the audit log"),
    ]
    assert audit.verify(AUDITOR).ok
