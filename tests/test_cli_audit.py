"""``bpmn-server audit verify | export | list`` on the configured database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from bpmn_server.audit import events as ev
from bpmn_server.cli import main
from tests.audit_support import (
    INSTANCE_A,
    INSTANCE_B,
    assert_valid_ocel,
    assert_valid_xes,
    hash_of,
    seed_log,
    tamper,
)


@pytest.fixture
def cli(services, settings, monkeypatch):
    """Invoke ``bpmn-server`` against the test database, which holds the small refund log."""
    monkeypatch.setenv("BPMN_SERVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BPMN_SERVER_DATA_DIR", str(settings.data_dir))
    seed_log(services.database, services.clock)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["audit", *args], catch_exceptions=False)


def test_verify_reports_an_intact_log_and_the_anchor_to_keep(cli, services):
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "intact: all 13 events are intact" in result.output
    assert f"anchor: 13:{hash_of(services.database, 13)}" in result.output
    as_json = json.loads(cli("verify", "--json").output)
    assert as_json["ok"] is True and as_json["events_checked"] == 13 and as_json["event"] is None


def test_verify_exits_1_and_shows_the_first_altered_event(cli, services):
    tamper(services.database, "UPDATE audit_event SET actor = 'mallory' WHERE sequence = 5")
    result = cli("verify")
    assert result.exit_code == 1
    first, second = result.output.splitlines()[:2]
    assert first.startswith("BROKEN (altered) at event 5: event 5 was altered")
    assert second.startswith("event:") and " 5 " in second and "task-claimed/start by mallory" in second
    body = json.loads(cli("verify", "--json").output)
    assert (body["ok"], body["first_bad_sequence"], body["event"]["actor"]) == (False, 5, "mallory")


def test_verify_with_a_kept_anchor_catches_a_tail_cut_with_its_head(cli, services, tmp_path):
    anchor = cli("verify").output.splitlines()[1].removeprefix("anchor: ")
    database = services.database
    tamper(database, "DELETE FROM audit_event WHERE sequence > 10",
           "UPDATE audit_head SET sequence = 10, hash = :h", h=hash_of(database, 10))
    assert cli("verify").exit_code == 0  # consistent on its own: only the anchor knows better

    cut = cli("verify", "--anchor", anchor)
    assert cut.exit_code == 1 and cut.output.startswith("BROKEN (truncated) at event 11")
    anchors = tmp_path / "anchors"
    anchors.write_text(f"# kept by the auditor\n5:{hash_of(database, 5)}\n\n{anchor}\n")
    assert cli("verify", "--anchor-file", str(anchors)).exit_code == 1
    bad = cli("verify", "--anchor", "13:not-a-hash")
    assert bad.exit_code == 2 and "SEQUENCE:HASH" in bad.output


def test_export_writes_valid_xes_to_a_file_and_ocel_to_stdout(cli, tmp_path):
    target = tmp_path / "exports" / "refunds.xes"
    target.parent.mkdir()
    written = cli("export", "--format", "xes", "--process", "refund", "-o", str(target))
    assert written.exit_code == 0, written.output
    root = assert_valid_xes(target.read_bytes())
    assert len(root.findall("trace")) == 2
    assert [p.name for p in target.parent.iterdir()] == ["refunds.xes"]  # no temporary file left behind

    ocel = cli("export", "--format", "ocel")
    assert ocel.exit_code == 0
    assert len(assert_valid_ocel(ocel.stdout_bytes)["events"]) == 13


def test_export_csv_of_a_time_window_and_one_instance(cli):
    window = cli("export", "--format", "csv", "--since", "2026-01-05T09:05:00Z", "--until", "2026-01-05T09:15")
    assert [r["sequence"] for r in csv.DictReader(io.StringIO(window.stdout))] == ["2", "3", "4", "5"]
    one = cli("export", "--format", "csv", "--instance", INSTANCE_B)
    assert {r["instance_id"] for r in csv.DictReader(io.StringIO(one.stdout))} == {INSTANCE_B}
    bad = cli("export", "--since", "last tuesday")
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
    empty = cli("export", "--since", "2026-01-06", "--until", "2026-01-05")
    assert empty.exit_code == 1 and "since must be before until" in empty.output


def test_list_filters_by_instance_user_and_type(cli):
    history = cli("list", "--instance", INSTANCE_A)
    lines = history.stdout.splitlines()
    assert len(lines) == 6 and all(f"instance={INSTANCE_A}" in line for line in lines)
    assert "task-completed/complete by mia" in lines[4] and "element=approve" in lines[4]
    assert "(1-6 of 6 events)" in history.stderr

    by_mia = json.loads(cli("list", "--user", "mia", "--json").output)
    assert by_mia["total"] == 3 and {e["actor"] for e in by_mia["items"]} == {"mia"}
    page = json.loads(cli("list", "--limit", "2", "--offset", "2", "--json").output)
    assert (page["total"], [e["sequence"] for e in page["items"]]) == (13, [3, 4])
    timers = json.loads(cli("list", "--type", ev.TIMER_FIRED, "--json").output)
    assert [e["actor"] for e in timers["items"]] == ["system:timer"]
    unknown = cli("list", "--type", "task-exploded")
    assert unknown.exit_code == 1 and "unknown event type" in unknown.output
