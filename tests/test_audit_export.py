"""Exports of the audit log: IEEE XES and OCEL 2.0 valid against the standards' schemas, CSV that
can be re-checked offline, filters, and memory that stays flat on a 200,000-event log."""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from bpmn_server.audit import events as ev
from bpmn_server.audit.chain import GENESIS_HASH, event_hash, record, record_many
from bpmn_server.audit.service import AuditService
from bpmn_server.errors import InvalidInput
from bpmn_server.store import Database
from tests.audit_support import (
    AUDITOR,
    INSTANCE_A,
    INSTANCE_B,
    assert_valid_ocel,
    assert_valid_xes,
    seed_log,
)

XES_STANDARD_TRANSITIONS = {"schedule", "assign", "reassign", "start", "suspend", "resume", "complete",
                            "autoskip", "manualskip", "withdraw", "ate_abort", "pi_abort"}


@pytest.fixture
def audit(database, clock) -> AuditService:
    seed_log(database, clock)
    return AuditService(database, clock)


def _export(audit: AuditService, format: str, **filters) -> bytes:
    return b"".join(audit.export(AUDITOR, format, **filters))


def _attributes(element) -> dict[str, str]:
    return {child.get("key"): child.get("value") for child in element if child.get("key")}


# -- XES ----------------------------------------------------------------------------------------

def test_xes_export_is_valid_ieee_xes_with_one_trace_per_instance(audit):
    root = assert_valid_xes(_export(audit, "xes"))

    extensions = {e.get("prefix"): e.get("uri") for e in root.findall("extension")}
    assert extensions == {
        "concept": "http://www.xes-standard.org/concept.xesext",
        "lifecycle": "http://www.xes-standard.org/lifecycle.xesext",
        "org": "http://www.xes-standard.org/org.xesext",
        "time": "http://www.xes-standard.org/time.xesext",
    }
    globals_ = {g.get("scope"): set(_attributes(g)) for g in root.findall("global")}
    assert globals_["trace"] == {"concept:name"}
    assert globals_["event"] >= {"concept:name", "lifecycle:transition", "org:resource", "time:timestamp"}
    assert _attributes(root)["lifecycle:model"] == "standard"
    assert {c.get("name") for c in root.findall("classifier")} >= {"Activity"}

    traces = {_attributes(t)["concept:name"]: t for t in root.findall("trace")}
    assert set(traces) == {INSTANCE_A, INSTANCE_B}  # deployments and user admin belong to no case
    approved = [_attributes(e) for e in traces[INSTANCE_A].findall("event")]
    assert [(e["concept:name"], e["lifecycle:transition"], e["org:resource"]) for e in approved] == [
        ("instance-started", "complete", "carl"),
        ("variables-changed", "complete", "carl"),
        ("Approve refund", "schedule", "system:engine"),
        ("Approve refund", "start", "mia"),
        ("Approve refund", "complete", "mia"),
        ("instance-completed", "complete", "mia"),
    ]
    assert approved[2]["org:group"] == "managers"
    stamps = [e["time:timestamp"] for e in approved]
    assert stamps == sorted(stamps) and stamps[0] == "2026-01-05T09:05:00.000+00:00"
    escalated = [_attributes(e) for e in traces[INSTANCE_B].findall("event")]
    assert [(e["concept:name"], e["lifecycle:transition"]) for e in escalated][-2:] == [
        ("After 2 days", "complete"), ("Approve refund", "withdraw"),
    ]
    transitions = {_attributes(e)["lifecycle:transition"] for e in root.iter("event")}
    assert transitions <= XES_STANDARD_TRANSITIONS


def test_xes_stays_valid_with_text_xml_cannot_hold(database, clock):
    name = 'Check "A" & <B> ]]> \x01\x1f tab\there\nnewline'
    with database.transaction() as s:
        record(s, ev.TASK_CREATED, actor="o'neil & co", timestamp=clock.now(), instance_id=INSTANCE_A,
               element_id="t1", element_name=name, group="<admins>", data={"note": "\x02 & <x>"})
    root = assert_valid_xes(_export(AuditService(database, clock), "xes"))
    event = _attributes(root.find("trace/event"))
    assert event["concept:name"] == 'Check "A" & <B> ]]> \ufffd\ufffd tab\there\nnewline'
    assert event["org:resource"] == "o'neil & co" and event["org:group"] == "<admins>"


def test_every_event_type_maps_to_a_standard_lifecycle_transition():
    assert {kind.transition for kind in ev.EVENT_TYPES.values()} <= XES_STANDARD_TRANSITIONS
    assert ev.task_cancelled_transition(was_claimed=True) == "ate_abort"


# -- OCEL 2.0 -----------------------------------------------------------------------------------

def test_ocel_export_is_valid_ocel2_with_instances_tasks_people_and_business_objects(audit):
    log = assert_valid_ocel(_export(audit, "ocel"))

    objects = {o["id"]: o for o in log["objects"]}
    by_type: dict[str, set[str]] = {}
    for object_id, obj in objects.items():
        by_type.setdefault(obj["type"], set()).add(object_id)
    assert by_type["process_instance"] == {f"process_instance:{INSTANCE_A}", f"process_instance:{INSTANCE_B}"}
    assert by_type["task"] == {"task:task-800", "task:task-90"}
    assert by_type["user"] == {"user:carl", "user:mia", "user:olga", "user:root"}
    assert by_type["system"] == {"system:engine", "system:timer"}
    assert by_type["group"] == {"group:managers"}
    assert by_type["order"] == {"order:A-800", "order:A-90"}
    assert by_type["customer"] == {"customer:17"}
    assert objects["task:task-800"]["relationships"] == [
        {"objectId": f"process_instance:{INSTANCE_A}", "qualifier": "part of"}
    ]

    assert len(log["events"]) == 13
    completed = next(e for e in log["events"] if e["type"] == ev.TASK_COMPLETED)
    assert {(r["qualifier"], r["objectId"]) for r in completed["relationships"]} == {
        ("case", f"process_instance:{INSTANCE_A}"), ("actor", "user:mia"),
        ("task", "task:task-800"), ("group", "group:managers"),
    }
    assert completed["time"] == "2026-01-05T09:15:00.000000+00:00"
    attributes = {a["name"]: a["value"] for a in completed["attributes"]}
    assert attributes["lifecycle"] == "complete" and attributes["element_id"] == "approve"
    assert json.loads(attributes["data"])["form"] == {"approved": True}
    variables = next(e for e in log["events"] if e["type"] == ev.VARIABLES_CHANGED)
    assert {"qualifier": "sets orderId", "objectId": "order:A-800"} in variables["relationships"]


# -- CSV ----------------------------------------------------------------------------------------

def test_csv_export_carries_everything_needed_to_recheck_the_chain(audit):
    text = _export(audit, "csv").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))

    assert len(rows) == 13 and [int(r["sequence"]) for r in rows] == list(range(1, 14))
    assert rows[0]["event_type"] == ev.MODEL_DEPLOYED and rows[0]["actor"] == "olga"
    assert json.loads(rows[2]["data"])["set"]["note"] == 'Ünïcödé <&> "q"'
    previous = GENESIS_HASH
    for row in rows:
        fields = {k: (v if v != "" else None) for k, v in row.items()}
        fields["sequence"] = int(row["sequence"])
        fields["definition_version"] = int(row["definition_version"]) if row["definition_version"] else None
        fields["data"] = json.loads(row["data"])
        assert row["prev_hash"] == previous
        assert event_hash(previous, fields) == row["hash"]
        previous = row["hash"]


# -- filters ------------------------------------------------------------------------------------

def test_exports_honour_process_instance_and_time_filters(audit, clock):
    other = {"definition_key": "onboarding", "definition_version": 3}
    with audit.database.transaction() as s:
        record(s, ev.INSTANCE_STARTED, actor="hr", timestamp=clock.now(), instance_id="cccc", **other)

    refund_only = assert_valid_xes(_export(audit, "xes", process_key="refund"))
    assert len(refund_only.findall("trace")) == 2
    onboarding = assert_valid_ocel(_export(audit, "ocel", process_key="onboarding"))
    assert [e["type"] for e in onboarding["events"]] == [ev.INSTANCE_STARTED]
    assert {o["id"] for o in onboarding["objects"]} == {"process_instance:cccc", "user:hr"}

    since, until = datetime(2026, 1, 5, 9, 5, tzinfo=UTC), datetime(2026, 1, 5, 9, 15, tzinfo=UTC)
    window = _export(audit, "csv", since=since, until=until).decode()  # since inclusive, until not
    assert [r["sequence"] for r in csv.DictReader(io.StringIO(window))] == ["2", "3", "4", "5"]
    one_case = assert_valid_xes(_export(audit, "xes", instance_id=INSTANCE_B))
    assert [_attributes(t)["concept:name"] for t in one_case.findall("trace")] == [INSTANCE_B]
    empty = assert_valid_xes(_export(audit, "xes", process_key="nothing"))
    assert empty.findall("trace") == []
    assert assert_valid_ocel(_export(audit, "ocel", process_key="nothing"))["events"] == []


def test_an_unknown_format_or_an_empty_time_window_is_refused_before_streaming(audit, clock):
    with pytest.raises(InvalidInput, match="xes"):
        audit.export(AUDITOR, "pdf")
    with pytest.raises(InvalidInput, match="since must be before until"):
        audit.export(AUDITOR, "csv", since=clock.now(), until=clock.now())


# -- size ---------------------------------------------------------------------------------------

def _bulk_log(database: Database, clock, total: int, start: int = 0) -> None:
    """``total`` events as 10-event cases (with a business key each), chained by record_many."""
    base = clock.now()
    batch = []
    for n in range(start, start + total):
        case, step = divmod(n, 10)
        when = base + timedelta(seconds=n)
        instance = f"{case:08d}-0000-4000-8000-000000000000"
        common = {"actor": f"user{case % 50}", "timestamp": when, "instance_id": instance,
                  "definition_key": "bulk", "definition_version": 1}
        if step == 0:
            batch.append({"event_type": ev.INSTANCE_STARTED, **common})
        elif step == 1:
            batch.append({"event_type": ev.VARIABLES_CHANGED, **common,
                          "data": {"set": {"orderId": f"O-{case}", "amount": case}}})
        elif step == 9:
            batch.append({"event_type": ev.INSTANCE_COMPLETED, **common})
        else:
            kind = (ev.TASK_CREATED, ev.TASK_CLAIMED, ev.TASK_COMPLETED)[(step - 2) % 3]
            batch.append({"event_type": kind, **common, "element_id": f"task{(step - 2) // 3}",
                          "element_name": f"Task {(step - 2) // 3}", "group": "clerks",
                          "data": {"task_id": f"{case}-{(step - 2) // 3}"}})
        if len(batch) == 20000:
            with database.transaction() as s:
                record_many(s, batch)
            batch = []
    if batch:
        with database.transaction() as s:
            record_many(s, batch)


def _peak_while_exporting(audit: AuditService, format: str) -> tuple[int, int]:
    """(peak traced bytes, bytes produced) while the export is consumed chunk by chunk."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size = sum(len(chunk) for chunk in audit.export(AUDITOR, format))
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_exports_of_200000_events_run_in_flat_memory(tmp_path, clock):
    """Runs once, on SQLite: memory is a property of the exporters, not of the backend."""
    database = Database(f"sqlite:///{tmp_path / 'big.db'}")
    database.create_all()
    audit = AuditService(database, clock)
    started = time.monotonic()

    _bulk_log(database, clock, 20_000)
    small = {format: _peak_while_exporting(audit, format) for format in ("xes", "ocel")}
    _bulk_log(database, clock, 180_000, start=20_000)
    large = {format: _peak_while_exporting(audit, format) for format in ("xes", "ocel")}

    for format in ("xes", "ocel"):
        (small_peak, small_size), (large_peak, large_size) = small[format], large[format]
        assert large_size > 9 * small_size  # ten times the events, about ten times the output
        # the peak is the working set of one batch, not of the log: it must not grow with it
        assert large_peak < small_peak * 1.5 + 1_000_000, (format, small_peak, large_peak)
        assert large_peak < 30_000_000, (format, large_peak)
    print(f"200k events: peaks {large}, {time.monotonic() - started:.1f}s")  # noqa: T201 - context in -s runs
    database.dispose()


def test_ocel_names_each_business_object_once_however_it_was_set(database, clock):
    with database.transaction() as s:
        for instance, variables in (("i1", {"orderId": "A-1", "customer_id": 17}),
                                    ("i2", {"order_id": "A-1", "customerId": "17", "userId": "u1"}),
                                    ("i3", {"orderId": 5.5, "flagId": True, "note": "no id"})):
            record(s, ev.VARIABLES_CHANGED, actor="carl", timestamp=clock.now(), instance_id=instance,
                   data=ev.variables_delta({}, variables))
        record(s, ev.TASK_CREATED, actor="carl", timestamp=clock.now(), instance_id="i1", element_id="t")
        record(s, ev.TASK_COMPLETED, actor="carl", timestamp=clock.now(), instance_id="i1", element_id="t")
    log = assert_valid_ocel(_export(AuditService(database, clock), "ocel"))

    business = sorted(o["id"] for o in log["objects"] if o["type"] not in {"process_instance", "user", "task"})
    assert business == ["customer:17", "order:A-1", "user_object:u1"]
    assert [o["id"] for o in log["objects"] if o["type"] == "task"] == ["task:i1/t"]
    second = log["events"][1]["relationships"]
    assert {"objectId": "order:A-1", "qualifier": "sets order_id"} in second
    assert {"objectId": "customer:17", "qualifier": "sets customerId"} in second


def test_a_real_run_exports_as_one_valid_trace_with_who_did_each_step(services):
    """The approval process run through the services as people use it, then exported."""
    from tests.runtime_helpers import CLERK, MANAGER, approval_process

    services.definitions.deploy(approval_process(), "approval.bpmn", "olga")
    started = services.instances.start("approval", principal=CLERK, business_key="A-1")
    for principal, data in ((CLERK, {"amount": 700}), (MANAGER, {})):
        [task] = services.tasks.list(principal, instance_id=started.id).items
        services.tasks.claim(task.id, principal)
        services.clock.advance(60)
        services.tasks.complete(task.id, data, principal)

    root = assert_valid_xes(b"".join(services.audit.export(AUDITOR, "xes", process_key="approval")))
    [trace] = root.findall("trace")
    steps = [(e["concept:name"], e["lifecycle:transition"], e["org:resource"])
             for e in (_attributes(event) for event in trace.findall("event"))]
    assert _attributes(trace)["concept:name"] == started.id
    for step in (("Review", "schedule"), ("Review", "start", "clerk"), ("Review", "complete", "clerk"),
                 ("Approve", "schedule"), ("Approve", "start", "manager"), ("Approve", "complete", "manager")):
        assert any(s[: len(step)] == step for s in steps), (step, steps)
    assert steps[0][0] == ev.INSTANCE_STARTED and steps[0][2] == "clerk"
    assert steps[-1][0] == ev.INSTANCE_COMPLETED
    log = assert_valid_ocel(b"".join(services.audit.export(AUDITOR, "ocel", process_key="approval")))
    assert {o["type"] for o in log["objects"]} >= {"process_instance", "task", "user"}
    assert services.audit.verify(AUDITOR).ok
