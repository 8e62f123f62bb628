"""The command runner through the services: every step is a separate command that restores the
instance from the database; races end with exactly one winner; script errors become incidents."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bpmn_server.errors import Conflict, InvalidInput, NotExecutable, PreconditionFailed
from bpmn_server.store.models import AuditEvent, HumanTask, Incident, ProcessInstance, Timer

from .models import linear_process
from .runtime_helpers import (
    ADMIN,
    CLERK,
    MANAGER,
    REVIEW,
    approval_process,
    deploy_refund,
    race,
    script_process,
)


def deploy(services, source: bytes, name: str = "model.bpmn") -> None:
    services.definitions.deploy(source, name, "admin")


def open_task(services, principal, **filters):
    page = services.tasks.list(principal, **filters)
    assert page.total == 1, [t.name for t in page.items]
    return page.items[0]


def audit_count(services) -> int:
    with services.database.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_gateway_takes_the_juel_branch_and_instance_completes(services):
    deploy(services, approval_process())
    big = services.instances.start("approval", principal=CLERK, variables={"note": "big"})
    small = services.instances.start("approval", principal=CLERK)
    for instance, amount in ((big, 800), (small, 20)):
        task = open_task(services, CLERK, instance_id=instance.id)
        services.tasks.complete(task.id, {"amount": amount}, CLERK)
    assert services.instances.get(small.id).status == "completed"
    approval = open_task(services, MANAGER)
    assert approval.instance_id == big.id and approval.element_id == "approve"
    services.tasks.complete(approval.id, {}, MANAGER)
    done = services.instances.get(big.id)
    assert done.status == "completed"
    assert done.variables == {"note": "big", "amount": 800}


def test_invalid_form_changes_nothing(services):
    deploy(services, approval_process())
    instance = services.instances.start("approval", principal=CLERK)
    task = open_task(services, CLERK)
    before = (services.instances.get(instance.id).row_version, audit_count(services))
    with pytest.raises(InvalidInput) as error:
        services.tasks.complete(task.id, {"amount": "12x", "extra": 1}, CLERK)
    assert {e["field"] for e in error.value.extra["errors"]} == {"amount", "extra"}
    assert (services.instances.get(instance.id).row_version, audit_count(services)) == before
    assert services.tasks.get(task.id, CLERK).status == "open"


def test_two_concurrent_completions_exactly_one_wins(services):
    deploy(services, approval_process())
    instance = services.instances.start("approval", principal=CLERK)
    task = open_task(services, CLERK)
    results = race([lambda: services.tasks.complete(task.id, {"amount": 10}, CLERK),
                    lambda: services.tasks.complete(task.id, {"amount": 900}, CLERK)])
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], Conflict)
    # the instance is consistent with the winner's data only
    final = services.instances.get(instance.id)
    expected_amount = 10 if final.status == "completed" else 900
    assert final.variables["amount"] == expected_amount
    with services.database.read() as session:
        completions = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event_type == "task-completed"))
    assert completions == 1


def test_claim_race_has_one_winner(services):
    deploy(services, approval_process())
    services.instances.start("approval", principal=CLERK)
    task = open_task(services, CLERK)
    other = CLERK.__class__("clerk2", frozenset({"clerks"}))
    results = race([lambda: services.tasks.claim(task.id, CLERK), lambda: services.tasks.claim(task.id, other)])
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and isinstance([r for r in results if isinstance(r, Exception)][0], Conflict)
    assert services.tasks.get(task.id, ADMIN).assignee == winners[0].assignee


def test_stale_row_version_is_refused(services):
    deploy(services, approval_process())
    instance = services.instances.start("approval", principal=CLERK)
    services.instances.update_variables(instance.id, principal=CLERK, set={"a": 1},
                                        expected_version=instance.row_version)
    with pytest.raises(PreconditionFailed):
        services.instances.update_variables(instance.id, principal=CLERK, set={"a": 2},
                                            expected_version=instance.row_version)
    assert services.instances.variables(instance.id)[0]["a"] == 1


def test_script_error_fails_with_incident_then_retry_continues(services):
    deploy(services, script_process("total = price * quantity"))
    instance = services.instances.start("scripted", principal=CLERK, variables={"price": 4})
    failed = services.instances.get(instance.id)
    assert failed.status == "failed"
    [incident] = failed.incidents
    assert incident.element_id == "compute" and incident.kind == "script"
    assert "quantity" in incident.message and incident.line == 1
    assert [a.state for a in failed.activities if a.element_id == "compute"] == ["failed"]
    with pytest.raises(Conflict):  # a failed instance takes no other command than fixes
        services.instances.apply(instance.id, lambda workflow: None, actor="system:timer")

    services.instances.update_variables(instance.id, principal=CLERK, set={"quantity": 3})
    retried = services.instances.retry(instance.id, principal=CLERK)
    assert retried.status == "running"
    assert services.instances.get(instance.id).variables["total"] == 12
    assert services.instances.get(instance.id).incidents[0].resolved_by == "clerk"
    history = [e["event_type"] for e in services.instances.history(instance.id)]
    assert history.index("instance-failed") < history.index("variables-changed") < history.index("instance-retried")


def test_retry_that_fails_again_opens_a_new_incident(services):
    deploy(services, script_process("total = 1 / divisor"))
    instance = services.instances.start("scripted", principal=CLERK, variables={"divisor": 0})
    again = services.instances.retry(instance.id, principal=ADMIN)
    assert again.status == "failed"
    incidents = services.instances.get(instance.id).incidents
    assert len(incidents) == 2 and incidents[0].resolved_at is not None and incidents[1].resolved_at is None
    fixed = services.instances.retry(instance.id, principal=ADMIN, variables={"divisor": 4})
    assert fixed.status == "running"
    assert services.instances.variables(instance.id)[0]["total"] == 0.25


def test_terminate_suspend_resume(services):
    deploy_refund(services)
    instance = services.instances.start("refund_request", principal=CLERK, business_key="A-9")
    review = open_task(services, CLERK)
    services.tasks.complete(review.id, REVIEW, CLERK)
    approval = open_task(services, MANAGER)

    suspended = services.instances.suspend(instance.id, principal=CLERK)
    assert suspended.status == "suspended"
    with pytest.raises(Conflict):
        services.tasks.complete(approval.id, {"approved": True}, MANAGER)
    with pytest.raises(Conflict):
        services.tasks.claim(approval.id, MANAGER)
    with services.database.read() as session:
        assert {t.status for t in session.scalars(select(Timer))} == {"suspended"}
    assert services.instances.list(status="suspended").total == 1

    resumed = services.instances.resume(instance.id, principal=ADMIN)
    assert resumed.status == "running"
    with services.database.read() as session:
        assert {t.status for t in session.scalars(select(Timer))} == {"waiting"}

    with pytest.raises(Exception) as denied:
        services.instances.terminate(instance.id, principal=MANAGER)
    assert type(denied.value).__name__ == "Forbidden"
    refusals = [e for e in services.instances.history(instance.id) if e["event_type"] == "permission-denied"]
    assert [(e["actor"], e["data"]["action"]) for e in refusals] == [("manager", "instance.terminate")]
    ended = services.instances.terminate(instance.id, principal=CLERK, reason="customer withdrew")
    assert ended.status == "terminated"
    with services.database.read() as session:
        task = session.get(HumanTask, approval.id)
        assert task.status == "cancelled" and "terminated" in task.outcome
        assert {t.status for t in session.scalars(select(Timer))} == {"cancelled"}
        assert session.get(ProcessInstance, instance.id).ended_at is not None
    assert services.tasks.list(MANAGER).total == 0
    with pytest.raises(Conflict):
        services.instances.resume(instance.id, principal=CLERK)


def test_escalation_timer_withdraws_approval_and_reminder_repeats(services, clock):
    deploy_refund(services)
    instance = services.instances.start("refund_request", principal=CLERK)
    services.tasks.complete(open_task(services, CLERK).id, REVIEW, CLERK)
    approval = open_task(services, MANAGER)
    services.tasks.claim(approval.id, MANAGER)
    with services.database.read() as session:
        timers = {t.element_id: t for t in session.scalars(select(Timer))}
    assert timers["daily_reminder"].kind == "boundary-non-interrupting"
    assert timers["daily_reminder"].due_at == clock.now() + timedelta(days=1)
    assert timers["approval_overdue"].kind == "boundary-interrupting"
    assert timers["approval_overdue"].due_at == clock.now() + timedelta(days=5)

    services.instances.apply(instance.id, lambda workflow: None, actor="system:timer",
                             now=timers["daily_reminder"].due_at)
    with services.database.read() as session:
        reminder = session.scalars(select(Timer).where(Timer.element_id == "daily_reminder")).one()
        assert (reminder.status, reminder.fire_count) == ("waiting", 1)
        assert reminder.due_at == timers["daily_reminder"].due_at + timedelta(days=1)
    assert services.tasks.get(approval.id, MANAGER).status == "claimed"

    services.instances.apply(instance.id, lambda workflow: None, actor="system:timer",
                             now=timers["approval_overdue"].due_at)
    withdrawn = services.tasks.get(approval.id, ADMIN)
    assert withdrawn.status == "cancelled"
    lead = CLERK.__class__("lead", frozenset({"finance-leads"}))
    escalated = open_task(services, lead)
    assert escalated.element_id == "escalated_refund_approval"
    events = [(e["event_type"], e["element_id"], e["transition"]) for e in services.instances.history(instance.id)]
    assert ("task-cancelled", "approve_refund", "ate_abort") in events
    assert ("timer-fired", "approval_overdue", "complete") in events
    assert sum(1 for e in events if e[:2] == ("timer-fired", "daily_reminder")) >= 1


def test_start_refuses_what_cannot_run(services):
    deploy(services, linear_process("draft", executable=False))
    with pytest.raises(NotExecutable):
        services.instances.start("draft", principal=CLERK)
    with pytest.raises(InvalidInput) as bad:
        deploy(services, approval_process())
        services.instances.start("approval", principal=CLERK, variables={"1st": 1, "ok": object()})
    assert {e["field"] for e in bad.value.extra["errors"]} == {"1st", "ok"}


def test_list_filters_and_pagination(services, clock):
    deploy(services, approval_process())
    first = services.instances.start("approval", principal=CLERK, business_key="B-1")
    clock.advance(60)
    services.instances.start("approval", principal=MANAGER, business_key="B-2")
    clock.advance(60)
    services.instances.start("approval", principal=MANAGER, business_key="B-3")
    assert services.instances.list().total == 3
    assert [i.business_key for i in services.instances.list(limit=2).items] == ["B-3", "B-2"]
    assert services.instances.list(offset=2, limit=2).items[0].id == first.id
    assert services.instances.list(started_by="manager").total == 2
    assert services.instances.list(business_key="B-1").items[0].id == first.id
    assert services.instances.list(started_after=first.started_at + timedelta(seconds=1)).total == 2
    assert services.instances.list(started_before=first.started_at + timedelta(seconds=1)).total == 1
    assert services.instances.list(key="approval", version=1, status="running").total == 3


def test_task_list_pages_carry_the_total_also_past_the_end(services, clock):
    deploy(services, approval_process())
    for number in range(3):
        services.instances.start("approval", principal=CLERK, business_key=f"P-{number}")
        clock.advance(60)
    pages = [services.tasks.list(CLERK, offset=offset, limit=2) for offset in (0, 2, 4)]
    assert [len(page.items) for page in pages] == [2, 1, 0]
    assert [page.total for page in pages] == [3, 3, 3]
    assert {t.business_key for page in pages for t in page.items} == {"P-0", "P-1", "P-2"}
    assert services.tasks.list(CLERK, process_key="nothing").total == 0
    assert services.instances.list(key="nope").total == 0


def test_failed_state_is_saved_not_rolled_back(services):
    deploy(services, script_process("raise_error = undefined_name + 1"))
    instance = services.instances.start("scripted", principal=CLERK)
    with services.database.read() as session:
        row = session.get(ProcessInstance, instance.id)
        assert row.status == "failed"
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
    kinds = [e["event_type"] for e in services.instances.history(instance.id)]
    assert kinds[0] == "instance-started" and "instance-failed" in kinds


def test_statements_per_command_do_not_grow_with_the_number_of_instances(services):
    from sqlalchemy import event

    deploy(services, approval_process())
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    def measure() -> tuple[int, int]:
        statements.clear()
        instance = services.instances.start("approval", principal=CLERK)
        started = len(statements)
        task = services.tasks.list(CLERK, instance_id=instance.id).items[0]
        statements.clear()
        services.tasks.complete(task.id, {"amount": 10}, CLERK)
        return started, len(statements)

    measure()  # warm: audit head exists, spec cached
    engines = services.database.engines
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        few = measure()
        for _ in range(15):
            services.instances.start("approval", principal=CLERK)
        many = measure()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert few == many
    assert few[0] <= 20 and few[1] <= 25
