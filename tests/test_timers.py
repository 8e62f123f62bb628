"""Timers that fire on time and are never lost: firing at the due time with the manual clock,
reminders and escalations as standard BPMN, catch-up after downtime, exactly once under concurrent
sweepers, retries with backoff ending in an incident, timer start events (cycle and cron)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bpmn_server.audit import events
from bpmn_server.identity.principal import Principal
from bpmn_server.store import Database
from bpmn_server.store.models import AuditEvent, HumanTask, Incident, Outbox, ProcessInstance, Timer

from . import timer_models

ADMIN = Principal("admin", frozenset(), True)


@pytest.fixture
def runtime(services):
    """The services facade: instances, tasks, timers and the outbox wired as `serve` and `worker` have them."""
    return services


def deploy(services, source: bytes, name: str = "model.bpmn"):
    result = services.definitions.deploy(source, name, "admin")
    return result.definitions[0]


def start(services, key: str, **kwargs):
    return services.instances.start(key, principal=ADMIN, **kwargs)


def rows(database, model, *where):
    with database.read() as session:
        return session.scalars(select(model).where(*where)).all()


def status_of(database, instance_id: str) -> str:
    with database.read() as session:
        return session.get(ProcessInstance, instance_id).status


def people(services):
    services.identity.create_user("mia", password="mia-password", groups=["managers"])
    services.identity.create_user("max", password="max-password", groups=["managers"])
    services.identity.create_user("lea", password="lea-password", groups=["finance-leads"])
    services.identity.create_user("cal", password="cal-password", groups=["clerks"])


def notifications_of(services, username: str):
    return services.outbox.notifications(Principal(username, frozenset(), False))[0]


def test_two_second_timer_fires_at_its_due_time(runtime, database, clock):
    deploy(runtime, timer_models.intermediate_timer(duration="PT2S"))
    instance = start(runtime, "wait")
    [timer] = rows(database, Timer, Timer.instance_id == instance.id)
    assert timer.status == "waiting"
    assert timer.due_at == clock.now() + timedelta(seconds=2)

    clock.advance(1.9)
    assert runtime.timers.fire_due().fired == 0
    assert status_of(database, instance.id) == "waiting"

    clock.advance(0.1)
    report = runtime.timers.fire_due()
    assert report.fired == 1
    assert status_of(database, instance.id) == "completed"
    [timer] = rows(database, Timer, Timer.instance_id == instance.id)
    assert timer.status == "fired" and timer.lock_owner is None
    fired = rows(database, AuditEvent, AuditEvent.instance_id == instance.id,
                 AuditEvent.event_type == events.TIMER_FIRED)
    assert [(e.actor, e.element_id, e.timestamp) for e in fired] == [
        (events.ACTOR_TIMER, "wait_timer", timer.due_at)]
    assert runtime.timers.fire_due().fired == 0  # never twice


def test_reminder_fires_three_times_and_the_task_stays_open(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.approval(deadline="P10D"))
    instance = start(runtime, "approval")
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    for day in range(1, 6):
        clock.advance(timedelta(days=1))
        runtime.timers.fire_due()
        reminders = [n for n in notifications_of(runtime, "mia") if n.kind == "task.reminder"]
        assert len(reminders) == min(day, 3)
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    assert task.status == "open"
    assert len([n for n in notifications_of(runtime, "max") if n.kind == "task.reminder"]) == 3
    assert [n for n in notifications_of(runtime, "lea") if n.kind == "task.reminder"] == []
    fired = rows(database, AuditEvent, AuditEvent.instance_id == instance.id,
                 AuditEvent.event_type == events.TIMER_FIRED, AuditEvent.element_id == "daily_reminder")
    assert len(fired) == 3
    reminder = [n for n in notifications_of(runtime, "mia") if n.kind == "task.reminder"][0]
    assert reminder.task_id == task.id and reminder.payload["task"] == "Approve refund"


def test_reminders_stop_when_the_task_is_completed(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.approval())
    instance = start(runtime, "approval")
    clock.advance(timedelta(days=1))
    runtime.timers.fire_due()
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    runtime.tasks.complete(task.id, {}, Principal("mia", frozenset({"managers"}), False))
    assert status_of(database, instance.id) == "completed"
    clock.advance(timedelta(days=10))
    assert runtime.timers.fire_due().fired == 0
    assert len([n for n in notifications_of(runtime, "mia") if n.kind == "task.reminder"]) == 1
    assert {t.status for t in rows(database, Timer, Timer.instance_id == instance.id)} <= {"fired", "cancelled"}


def test_interrupting_deadline_withdraws_the_task_and_routes_it_on(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.approval(reminder="R3/P1D", deadline="P5D"))
    instance = start(runtime, "approval")
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    assert task.due_at == clock.now() + timedelta(days=5)  # the deadline timer is the due date

    clock.advance(timedelta(days=5))
    runtime.timers.fire_due()

    withdrawn = rows(database, HumanTask, HumanTask.id == task.id)[0]
    assert withdrawn.status == "cancelled"
    assert "Approval overdue" in withdrawn.outcome and "P5D" in withdrawn.outcome
    [escalated] = rows(database, HumanTask, HumanTask.instance_id == instance.id, HumanTask.status == "open")
    assert escalated.element_id == "escalated_approval" and escalated.candidate_groups == ["finance-leads"]
    history = rows(database, AuditEvent, AuditEvent.instance_id == instance.id)
    cancelled = [e for e in history if e.event_type == events.TASK_CANCELLED]
    assert cancelled[0].data["reason"] == withdrawn.outcome
    assert any(e.event_type == events.TASK_ESCALATED and e.element_id == "approve" for e in history)
    assert [n.kind for n in notifications_of(runtime, "mia")].count("task.escalated") == 1
    assert "task.created" in [n.kind for n in notifications_of(runtime, "lea")]
    assert len([n for n in notifications_of(runtime, "mia") if n.kind == "task.reminder"]) == 3
    clock.advance(timedelta(days=5))
    assert runtime.timers.fire_due().fired == 0  # the reminder went with the task


def test_escalation_event_withdraws_the_task_with_the_reason(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.escalation_subprocess(after="P2D"))
    instance = start(runtime, "escalating")
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    assert task.element_id == "check"
    clock.advance(timedelta(days=2))
    runtime.timers.fire_due()
    withdrawn = rows(database, HumanTask, HumanTask.id == task.id)[0]
    assert withdrawn.status == "cancelled"
    assert withdrawn.outcome == "escalated by 'Escalated to the leads'; the task was withdrawn"
    [lead] = rows(database, HumanTask, HumanTask.instance_id == instance.id, HumanTask.status == "open")
    assert lead.element_id == "lead_decides"
    assert "task.created" in [n.kind for n in notifications_of(runtime, "lea")]
    assert "task.escalated" in [n.kind for n in notifications_of(runtime, "cal")]
    escalated = rows(database, AuditEvent, AuditEvent.instance_id == instance.id,
                     AuditEvent.event_type == events.TASK_ESCALATED)
    assert [e.element_id for e in escalated] == ["check"]


def test_overdue_filter_lists_tasks_past_their_deadline(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.approval(deadline="P5D", due_date="P2D"))
    instance = start(runtime, "approval")
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    assert task.due_at == clock.now() + timedelta(days=2)  # camunda:dueDate wins over the deadline
    tasks = runtime.tasks
    mia = Principal("mia", frozenset({"managers"}), False)
    assert tasks.list(mia, overdue=True).total == 0
    clock.advance(timedelta(days=3))
    assert [t.id for t in tasks.list(mia, overdue=True).items] == [task.id]


def test_timers_that_fell_due_while_down_fire_once_after_start_up(runtime, database, clock, settings):
    deploy(runtime, timer_models.intermediate_timer(duration="PT1M"))
    instances = [start(runtime, "wait").id for _ in range(5)]
    clock.advance(timedelta(hours=1))  # "down" for an hour: nothing swept

    from bpmn_server.services import Services

    restarted = Services(settings, database=database, clock=clock)
    scheduler = restarted.start_scheduler(paused=True)
    try:
        sweep = scheduler.scheduler.get_job("bpmn-server-sweep-timers")
        assert sweep.next_run_time <= datetime.now(UTC)  # the start-up sweep runs at once
        sweep.func()
    finally:
        restarted.stop_scheduler()
    assert restarted.timers.fire_due().fired == 0
    assert {status_of(database, i) for i in instances} == {"completed"}
    with database.read() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event_type == events.TIMER_FIRED))
    assert count == 5


def test_concurrent_sweepers_fire_every_timer_exactly_once(runtime, database, clock):
    deploy(runtime, timer_models.intermediate_timer(duration="PT5S"))
    instances = [start(runtime, "wait").id for _ in range(12)]
    clock.advance(10)
    reports = []

    def sweep():
        reports.append(runtime.timers.fire_due(batch=2))

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.fired for r in reports) == 12
    assert {status_of(database, i) for i in instances} == {"completed"}
    with database.read() as session:
        per_instance = session.execute(select(AuditEvent.instance_id, func.count()).where(
            AuditEvent.event_type == events.TIMER_FIRED).group_by(AuditEvent.instance_id)).all()
    assert sorted(n for _, n in per_instance) == [1] * 12


def test_two_engines_on_postgres_fire_every_timer_exactly_once(runtime, database, clock, settings, backend):
    if backend != "postgres":
        pytest.skip("two separate engines on one database: the PostgreSQL cluster case")
    from bpmn_server.services import Services

    deploy(runtime, timer_models.intermediate_timer(duration="PT5S"))
    instances = [start(runtime, "wait").id for _ in range(12)]
    clock.advance(10)
    other_db = Database(database.url, pool_size=3)
    try:
        other = Services(settings, database=other_db, clock=clock)
        reports = []
        threads = [threading.Thread(target=lambda s=s: reports.append(s.timers.fire_due(batch=3)))
                   for s in (runtime, other, runtime, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other_db.dispose()
    assert sum(r.fired for r in reports) == 12
    assert {status_of(database, i) for i in instances} == {"completed"}
    with database.read() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event_type == events.TIMER_FIRED))
    assert count == 12


def test_failing_timer_retries_with_backoff_then_becomes_an_incident(runtime, database, clock, monkeypatch):
    runtime.identity.bootstrap_admin()
    deploy(runtime, timer_models.intermediate_timer(duration="PT1M"))
    instance = start(runtime, "wait")
    runner = runtime.instances.runner
    calls = []

    def broken(*args, **kwargs):
        calls.append(kwargs.get("now"))
        raise RuntimeError("database went away")

    monkeypatch.setattr(runner, "run", broken)
    clock.advance(timedelta(minutes=1))
    attempts = runtime.settings.timer_max_attempts
    assert runtime.timers.fire_due().retried == 1
    [timer] = rows(database, Timer, Timer.instance_id == instance.id)
    assert timer.attempts == 1 and timer.status == "waiting" and "database went away" in timer.last_error
    assert timer.next_attempt_at == clock.now() + timedelta(seconds=30)
    assert runtime.timers.fire_due().retried == 0  # backing off
    waits = []
    for _ in range(attempts - 1):
        [timer] = rows(database, Timer, Timer.instance_id == instance.id)
        waits.append(timer.next_attempt_at - clock.now())
        clock.set(timer.next_attempt_at)
        runtime.timers.fire_due()
    assert waits == [timedelta(seconds=30 * 2 ** i) for i in range(attempts - 1)]
    assert len(calls) == attempts
    assert all(now == timer.due_at for now in calls)  # each attempt fires at the due time
    [timer] = rows(database, Timer, Timer.instance_id == instance.id)
    assert timer.status == "failed"
    [incident] = rows(database, Incident, Incident.instance_id == instance.id)
    assert incident.kind == "timer" and incident.element_id == "wait_timer"
    assert "database went away" in incident.message
    admin_hears = [n for n in notifications_of(runtime, "admin") if n.kind == "timer.incident"]
    assert len(admin_hears) == 1 and admin_hears[0].instance_id == instance.id
    clock.advance(timedelta(days=1))
    assert runtime.timers.fire_due().fired == 0  # not lost: failed and visible, not retried forever

    monkeypatch.undo()
    runtime.timers.retry(ADMIN, timer.id)
    assert runtime.timers.fire_due().fired == 1
    assert status_of(database, instance.id) == "completed"
    assert rows(database, Incident, Incident.instance_id == instance.id)[0].resolved_at is not None


def test_timer_start_event_with_a_cycle_starts_an_instance_each_period(runtime, database, clock):
    deploy(runtime, timer_models.timer_start(kind="timeCycle", text="R3/PT1H"))
    runtime.timers.start_timers.sync()
    [row] = rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")
    assert row.instance_id is None and row.due_at == clock.now() + timedelta(hours=1)
    started = []
    for _ in range(5):
        clock.advance(timedelta(hours=1))
        runtime.timers.start_timers.sync()
        started += runtime.timers.fire_due().started
    assert len(started) == 3  # R3: three instances, then the schedule ends
    tasks = rows(database, HumanTask, HumanTask.instance_id.in_(started))
    assert len(tasks) == 3 and {t.element_id for t in tasks} == {"check"}
    started_at = sorted(i.started_at for i in rows(database, ProcessInstance, ProcessInstance.id.in_(started)))
    first = started_at[0]
    assert started_at == [first, first + timedelta(hours=1), first + timedelta(hours=2)]


def test_timer_start_event_with_a_quartz_cron_starts_on_weekdays_at_nine(runtime, database, clock):
    clock.set(datetime(2026, 1, 9, 10, 0, tzinfo=UTC))  # a Friday, after nine
    deploy(runtime, timer_models.timer_start(kind="timeCycle", text="0 0 9 * * MON-FRI"))
    runtime.timers.start_timers.sync()
    [row] = rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")
    assert row.due_at == datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # Monday
    clock.set(datetime(2026, 1, 13, 12, 0, tzinfo=UTC))  # Tuesday noon: Monday and Tuesday fell due
    report = runtime.timers.fire_due()
    assert len(report.started) == 1  # missed occurrences fire once, not once per period
    [row] = rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")
    assert row.due_at == datetime(2026, 1, 14, 9, 0, tzinfo=UTC)


def test_new_version_moves_the_start_schedule_and_retiring_stops_it(runtime, database, clock):
    first = deploy(runtime, timer_models.timer_start(text="R/P1D"), "v1.bpmn")
    runtime.timers.start_timers.sync()
    second = deploy(runtime, timer_models.timer_start(text="R/P1D", name="Scheduled v2"), "v2.bpmn")
    runtime.timers.start_timers.sync()
    waiting = rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")
    assert [r.definition_id for r in waiting] == [second.id]
    clock.advance(timedelta(days=1))
    [instance_id] = runtime.timers.fire_due().started
    assert rows(database, ProcessInstance, ProcessInstance.id == instance_id)[0].definition_id == second.id
    assert first.id != second.id
    runtime.definitions.retire("scheduled", second.version, ADMIN)
    runtime.timers.start_timers.sync()  # back to version 1, the latest that is not retired
    [row] = rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")
    assert row.definition_id == first.id


def test_reminders_reach_webhook_subscribers_signed_through_their_own_scheduler_lane(runtime, database, clock):
    import hashlib
    import hmac
    import json

    from .test_webhooks import Receiver

    people(runtime)
    receiver = Receiver()
    try:
        subscription = runtime.outbox.create_subscription(ADMIN, receiver.url, ["task.reminder", "task.escalated"])
        deploy(runtime, timer_models.approval())
        start(runtime, "approval")
        scheduler = runtime.start_scheduler(paused=True)
        try:
            clock.advance(timedelta(days=1))
            scheduler.timer_lane.run_pass()  # fires the reminder; webhooks have a lane of their own
            assert receiver.requests == []  # a slow receiver can never hold up a timer
            assert scheduler.webhook_lane.wake_time == clock.now() + timedelta(milliseconds=5)
            scheduler.webhook_lane.run_pass()
        finally:
            runtime.stop_scheduler()
        [(headers, body)] = receiver.requests
        assert headers["X-Bpmn-Event"] == "task.reminder"
        assert headers["X-Bpmn-Signature-256"] == "sha256=" + hmac.new(
            subscription.secret.encode(), body, hashlib.sha256).hexdigest()
        assert json.loads(body)["data"]["task"] == "Approve refund"
        assert [h.status for h in rows(database, Outbox, Outbox.channel == "webhook")] == ["delivered"]
    finally:
        receiver.close()


def test_a_failed_instance_notifies_its_starter_and_the_model_owner(runtime, database, clock):
    from .models import definitions

    people(runtime)
    runtime.definitions.deploy(definitions("""
  <bpmn:process id="fragile" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="divide" name="Divide"><bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>ratio = 1 / 0</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="divide"/>
    <bpmn:sequenceFlow id="f2" sourceRef="divide" targetRef="end"/>
  </bpmn:process>"""), "fragile.bpmn", "max")
    instance = runtime.instances.start("fragile", principal=Principal("mia", frozenset(), False))
    assert instance.status == "failed"
    for username in ("mia", "max"):
        [failed] = [n for n in notifications_of(runtime, username) if n.kind == "instance.failed"]
        assert failed.instance_id == instance.id and failed.payload["process_key"] == "fragile"
        assert "division by zero" in (failed.payload["message"] or "")
    assert notifications_of(runtime, "lea") == []

def test_scheduler_wake_up_job_follows_the_earliest_due_timer(runtime, database, clock):
    deploy(runtime, timer_models.intermediate_timer("slow", duration="PT1H"), "slow.bpmn")
    deploy(runtime, timer_models.intermediate_timer("quick", duration="PT10M"), "quick.bpmn")
    scheduler = runtime.start_scheduler(paused=True)  # jobs are set, nothing runs on its own
    try:
        assert scheduler.wake_time is None
        start(runtime, "slow")
        first_due = clock.now() + timedelta(hours=1)
        assert scheduler.wake_time == first_due + timedelta(milliseconds=5)
        start(runtime, "quick")  # an earlier timer moves the wake-up forward at commit
        assert scheduler.wake_time == clock.now() + timedelta(minutes=10, milliseconds=5)
        start(runtime, "slow")  # a later one leaves it alone
        assert scheduler.wake_time == clock.now() + timedelta(minutes=10, milliseconds=5)

        clock.advance(timedelta(minutes=10))
        scheduler.run_pass()  # what the wake-up job runs: fires the quick timer, aims at the next
        assert [status_of(database, i.id) for i in rows(database, ProcessInstance)].count("completed") == 1
        assert scheduler.wake_time == first_due + timedelta(milliseconds=5)
    finally:
        runtime.stop_scheduler()


def test_scheduler_pass_catches_up_start_timers_of_a_new_deployment(runtime, database, clock):
    scheduler = runtime.start_scheduler(paused=True)
    try:
        deploy(runtime, timer_models.timer_start(text="R/PT30M"))
        assert scheduler.wake_time == clock.now() + timedelta(milliseconds=5)  # a deploy wakes it at once
        scheduler.run_pass()  # schedules the new version's start timer
        assert scheduler.wake_time == clock.now() + timedelta(minutes=30, milliseconds=5)
        clock.advance(timedelta(minutes=30))
        scheduler.run_pass()
        assert len(rows(database, ProcessInstance)) == 1
    finally:
        runtime.stop_scheduler()


def test_failed_timers_are_listed_and_retried_through_the_api(runtime, database, clock, client, auth, monkeypatch):
    deploy(runtime, timer_models.intermediate_timer(duration="PT1M"))
    instance = start(runtime, "wait")
    monkeypatch.setattr(runtime.instances.runner, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    clock.advance(timedelta(minutes=1))
    for _ in range(runtime.settings.timer_max_attempts):
        runtime.timers.fire_due()
        clock.advance(timedelta(hours=2))
    monkeypatch.undo()
    page = client.get("/api/v1/timers?status=failed", headers=auth).get_json()
    assert page["total"] == 1
    failed = page["items"][0]
    assert failed["instance_id"] == instance.id and "disk full" in failed["last_error"]
    assert client.get("/api/v1/timers").status_code == 401
    retried = client.post(f"/api/v1/timers/{failed['id']}/retry", headers=auth)
    assert retried.status_code == 200 and retried.get_json()["status"] == "waiting"
    assert client.post(f"/api/v1/timers/{failed['id']}/retry", headers=auth).status_code == 409
    assert runtime.timers.fire_due().fired == 1
    assert status_of(database, instance.id) == "completed"


def test_assigning_a_task_notifies_the_new_assignee(runtime, database, clock):
    people(runtime)
    deploy(runtime, timer_models.approval())
    instance = start(runtime, "approval")
    [task] = rows(database, HumanTask, HumanTask.instance_id == instance.id)
    assert [n.kind for n in notifications_of(runtime, "mia")] == ["task.created"]
    runtime.tasks.assign(task.id, "max", ADMIN)
    assigned = [n for n in notifications_of(runtime, "max") if n.kind == "task.assigned"]
    assert len(assigned) == 1 and assigned[0].payload["by"] == "admin"
    assert [n.kind for n in notifications_of(runtime, "mia")] == ["task.created"]


# Fault and cluster scale (issue 4, item 6): the counts. Each timer costs a fifth of a start and
# one firing command: ~15-20 ms on SQLite, ~20-35 ms on PostgreSQL on the shared 2-core machine, and a
# second worker process adds no throughput there; measured (docs/timers.md, "Fault and cluster tests"):
# fault test 11-22 s (SQLite) and 22-35 s (PostgreSQL), cluster test 36-63 s depending on the load.
FAULT_TIMERS = 1000  # pending when a worker is kill -9'd half-way
CLUSTER_TIMERS = 2000  # due together for two worker processes on PostgreSQL
TIMERS_PER_INSTANCE = 5  # timers are made by starting N / 5 instances of a five-branch model


def start_fan_out(runtime, timers: int) -> list[str]:
    """Instances holding ``timers`` waiting timers in all, due 60-64 s after now (in-process starts)."""
    deploy(runtime, timer_models.parallel_timers("fan", TIMERS_PER_INSTANCE))
    return [start(runtime, "fan").id for _ in range(timers // TIMERS_PER_INSTANCE)]


def timer_worker(database, data_dir, now: datetime, *options: str):
    """A separate worker process (tests/timer_worker.py) firing due timers at ``now``; waits for 'ready'."""
    import subprocess
    import sys

    from .conftest import PROJECT_ROOT

    worker = subprocess.Popen([sys.executable, "-m", "tests.timer_worker", database.url, str(data_dir),
                               now.isoformat(), *options], cwd=PROJECT_ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "ready"
    return worker


def finish(workers, timeout: float = 240) -> list[int]:
    """Let --until-done workers go together; how many timers each fired (no worker outlives this)."""
    try:
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        fired = []
        for worker in workers:
            out, _ = worker.communicate(timeout=timeout)
            assert worker.returncode == 0
            fired.append(int(out.split()[0]))
        return fired
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def assert_every_timer_fired_once(runtime, database, instances: list[str]) -> None:
    """Each timer fired exactly once (one timer-fired event and one row per timer, all released), every
    instance ran to its end, and the audit chain is intact."""
    with database.read() as session:
        per_timer = session.execute(select(AuditEvent.instance_id, AuditEvent.element_id, func.count()).where(
            AuditEvent.event_type == events.TIMER_FIRED).group_by(AuditEvent.instance_id, AuditEvent.element_id)).all()
        rows_ = session.execute(select(Timer.instance_id, Timer.element_id, Timer.status, Timer.lock_owner)).all()
        statuses = dict(session.execute(select(ProcessInstance.id, ProcessInstance.status)).all())
        ended = session.execute(select(AuditEvent.instance_id, func.count()).where(
            AuditEvent.event_type == events.INSTANCE_COMPLETED).group_by(AuditEvent.instance_id)).all()
    expected = {(i, f"t{n}") for i in instances for n in range(TIMERS_PER_INSTANCE)}
    assert {(i, e): c for i, e, c in per_timer} == dict.fromkeys(expected, 1)
    assert sorted((i, e) for i, e, _, _ in rows_) == sorted(expected)  # one row per timer, none duplicated
    assert {(s, owner) for _, _, s, owner in rows_} == {("fired", None)}
    assert statuses == dict.fromkeys(instances, "completed")
    assert dict(ended) == dict.fromkeys(instances, 1)
    assert runtime.audit.verify(ADMIN).ok


@pytest.mark.slow
def test_killed_worker_loses_no_timer_and_fires_none_twice(runtime, database, clock, tmp_path):
    """kill -9 a worker process while FAULT_TIMERS timers are pending and some are mid-fire (leased,
    their command open); a restarted worker fires the rest: every timer exactly once, every instance
    consistent."""
    import os
    import signal

    instances = start_fan_out(runtime, FAULT_TIMERS)
    due = clock.now() + timedelta(minutes=2)

    def counts():
        with database.read() as session:
            left = session.scalar(select(func.count()).select_from(Timer).where(Timer.status == "waiting"))
            leased = session.scalar(select(func.count()).select_from(Timer).where(
                Timer.status == "waiting", Timer.lock_owner.is_not(None)))
        return left, leased

    worker = timer_worker(database, tmp_path / "w1", due, "--hold-after", str(FAULT_TIMERS // 4))
    try:
        assert worker.stdout.readline().strip() == "holding"  # a quarter fired, the next batch leased
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    left, leased = counts()
    assert 0 < left < FAULT_TIMERS  # it was killed half-way
    assert leased > 0  # ... holding leases on timers it was firing
    assert {status_of(database, i) for i in instances} >= {"waiting"}

    # restarted after the dead worker's leases ran out
    [fired_after] = finish([timer_worker(database, tmp_path / "w2", due + timedelta(minutes=6), "--until-done")])
    assert fired_after == left
    assert_every_timer_fired_once(runtime, database, instances)


@pytest.mark.slow
def test_two_worker_processes_on_postgres_fire_each_timer_exactly_once(runtime, database, clock, tmp_path,
                                                                       backend):
    """CLUSTER_TIMERS timers due at the moment two worker processes start sweeping one PostgreSQL
    together (FOR UPDATE SKIP LOCKED claims): both fire, and each timer fires exactly once."""
    if backend != "postgres":
        pytest.skip("worker processes sharing one database: the PostgreSQL cluster case")
    instances = start_fan_out(runtime, CLUSTER_TIMERS)
    due = clock.now() + timedelta(minutes=2)
    workers = [timer_worker(database, tmp_path / f"w{n}", due, "--until-done", "--batch", "10") for n in (1, 2)]
    fired = finish(workers)
    assert sum(fired) == CLUSTER_TIMERS and min(fired) > 0
    assert_every_timer_fired_once(runtime, database, instances)


@pytest.mark.parametrize("answer_first", [True, False])
def test_event_based_gateway_races_a_message_against_a_timer(runtime, database, clock, answer_first):
    deploy(runtime, timer_models.message_or_timeout(timeout="PT1H"))
    instance = start(runtime, "race", business_key="T-1")
    clock.advance(timedelta(minutes=59 if answer_first else 61))
    if answer_first:
        runtime.messages.correlate("customer-answer", principal=ADMIN, business_key="T-1")
        clock.advance(timedelta(hours=2))
    assert runtime.timers.fire_due().fired == (0 if answer_first else 1)
    assert status_of(database, instance.id) == "completed"
    ended = {e.element_id for e in rows(database, AuditEvent, AuditEvent.instance_id == instance.id)}
    assert ("answered" in ended) == answer_first and ("timed_out" in ended) != answer_first
    assert {t.status for t in rows(database, Timer, Timer.instance_id == instance.id)} == (
        {"cancelled"} if answer_first else {"fired"})


def test_a_timer_held_by_another_worker_is_not_due_before_its_lease_ends(runtime, database, clock):
    from bpmn_server.runtime.timers import LEASE, TimerService

    deploy(runtime, timer_models.intermediate_timer(duration="PT1M"))
    instance = start(runtime, "wait")
    clock.advance(timedelta(minutes=1))
    other = TimerService(database, clock, runtime.settings, instances=lambda: runtime.instances,
                         definitions=runtime.definitions, owner="other-node")
    [claim] = other._claim(clock.now(), 10)  # the other worker took it and then died
    assert runtime.timers.next_due_at() == clock.now() + LEASE  # the wake-up does not spin meanwhile
    assert runtime.timers.fire_due().fired == 0
    clock.advance(LEASE)
    assert runtime.timers.fire_due().fired == 1
    assert status_of(database, instance.id) == "completed"
    assert claim.instance_id == instance.id


def test_concurrent_start_timer_syncs_schedule_each_occurrence_once(runtime, database, clock):
    deploy(runtime, timer_models.timer_start(text="R/PT1H"))
    threads = [threading.Thread(target=runtime.timers.start_timers.sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rows(database, Timer, Timer.kind == "start", Timer.status == "waiting")) == 1
    clock.advance(timedelta(hours=1))
    assert len(runtime.timers.fire_due().started) == 1


def test_a_timer_row_out_of_step_with_the_instance_is_corrected_not_dropped(runtime, database, clock):
    deploy(runtime, timer_models.intermediate_timer(duration="PT1H"))
    instance = start(runtime, "wait")
    right = clock.now() + timedelta(hours=1)
    with database.transaction() as session:  # a projection gone wrong: the row says 10 minutes
        row = session.scalars(select(Timer).where(Timer.instance_id == instance.id)).one()
        row.due_at = clock.now() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=10))
    report = runtime.timers.fire_due()
    assert (report.fired, report.skipped) == (0, 1)
    [row] = rows(database, Timer, Timer.instance_id == instance.id)
    assert row.status == "waiting" and row.due_at == right  # corrected from the Spiff state
    assert status_of(database, instance.id) == "waiting"
    clock.set(right)
    assert runtime.timers.fire_due().fired == 1
    assert status_of(database, instance.id) == "completed"


def test_a_failing_start_timer_ends_failed_and_visible_not_lost(runtime, database, clock, monkeypatch):
    runtime.identity.bootstrap_admin()
    deploy(runtime, timer_models.timer_start(text="R/PT1H"))
    runtime.timers.start_timers.sync()
    monkeypatch.setattr(runtime.instances.runner, "start", lambda *a, **k: (_ for _ in ()).throw(
        OSError("no space left on device")))
    clock.advance(timedelta(hours=1))
    for _ in range(runtime.settings.timer_max_attempts):
        runtime.timers.fire_due()
        clock.advance(timedelta(hours=1))
    [failed] = runtime.timers.list_timers(ADMIN, status="failed")[0]
    assert failed.kind == "start" and "no space left" in failed.last_error
    assert [n.kind for n in notifications_of(runtime, "admin")] == ["timer.incident"]
    assert rows(database, ProcessInstance) == []
    monkeypatch.undo()
    runtime.timers.retry(ADMIN, failed.id)
    assert len(runtime.timers.fire_due().started) == 1


def test_lateness_of_fired_timers_is_exported_as_a_metric(runtime, database, clock):
    from bpmn_server.metrics import REGISTRY

    def observed(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"kind": "intermediate"}) or 0.0

    count, total = observed("bpmn_server_timer_lateness_seconds_count"), observed("bpmn_server_timer_lateness_seconds_sum")
    deploy(runtime, timer_models.intermediate_timer(duration="PT1M"))
    start(runtime, "wait")
    clock.advance(timedelta(minutes=1, seconds=90))  # the worker comes 90 s late
    assert runtime.timers.fire_due().fired == 1
    assert observed("bpmn_server_timer_lateness_seconds_count") == count + 1
    assert observed("bpmn_server_timer_lateness_seconds_sum") == pytest.approx(total + 90)


def test_start_by_timer_runs_the_path_of_a_cycle_start_event(runtime, database):
    definition = deploy(runtime, timer_models.timer_start(text="R/P1D"))
    instance_id = runtime.instances.start_by_timer(definition, "tick", actor=events.ACTOR_TIMER)
    assert status_of(database, instance_id) == "running"
    assert [t.element_id for t in rows(database, HumanTask, HumanTask.instance_id == instance_id)] == ["check"]
