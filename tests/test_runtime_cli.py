"""The command line for scripted work: start instances, list them, list and complete tasks."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bpmn_server.cli import main

from .runtime_helpers import PEOPLE, REVIEW, deploy_refund


def test_start_list_and_complete_from_the_command_line(services, settings, monkeypatch):
    monkeypatch.setenv("BPMN_SERVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BPMN_SERVER_DATA_DIR", str(settings.data_dir))
    deploy_refund(services)
    for name, groups in PEOPLE.items():
        services.identity.create_user(name, groups=groups)
    runner = CliRunner()
    started = runner.invoke(main, ["instances", "start", "refund_request", "--business-key", "A-77",
                                   "--var", "amount=700", "--var", "note=urgent", "--as", "clerk"])
    assert started.exit_code == 0, started.output
    instance_id = started.output.split()[0]
    assert "running at: review_refund_request" in started.output
    assert services.instances.variables(instance_id)[0] == {"amount": 700, "note": "urgent"}

    listed = runner.invoke(main, ["instances", "list", "--business-key", "A-77", "--json"])
    assert json.loads(listed.output)["items"][0]["id"] == instance_id

    tasks = runner.invoke(main, ["tasks", "list", "--user", "clerk", "--json"])
    [task] = json.loads(tasks.output)["items"]
    assert runner.invoke(main, ["tasks", "list", "--user", "manager", "--json"]).output.startswith('{"total": 0')

    bad = runner.invoke(main, ["tasks", "complete", task["id"], "--data", '{"amount": "x"}', "--as", "clerk"])
    assert bad.exit_code == 1 and "amount: must be a whole number" in bad.output
    done = runner.invoke(main, ["tasks", "complete", task["id"], "--data", json.dumps(REVIEW), "--as", "clerk"])
    assert done.exit_code == 0, done.output
    assert "Review refund request" in done.output and "running" in done.output
    assert "Approve refund" in runner.invoke(main, ["tasks", "list", "--user", "manager"]).output


def test_a_start_run_again_with_its_idempotency_key_starts_nothing_new(services, settings, monkeypatch):
    monkeypatch.setenv("BPMN_SERVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BPMN_SERVER_DATA_DIR", str(settings.data_dir))
    deploy_refund(services)
    services.identity.create_user("clerk", groups=["clerks"])
    command = ["instances", "start", "refund_request", "--business-key", "A-78", "--as", "clerk",
               "--idempotency-key", "nightly-2026-12-01"]
    first, again = CliRunner().invoke(main, command), CliRunner().invoke(main, command)
    assert first.exit_code == again.exit_code == 0, (first.output, again.output)
    assert again.output.split()[0] == first.output.split()[0]
    assert "started before with this idempotency key" in again.output and "started before" not in first.output
    assert services.instances.list(business_key="A-78").total == 1
    other = CliRunner().invoke(main, [*command, "--var", "amount=1"])
    assert other.exit_code == 1 and "was used for a different request" in other.output
