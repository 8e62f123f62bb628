"""``bpmn-server validate``: every problem of every file at once, one line each, exit codes for CI.

Exit codes: 0 no error-level finding; 1 at least one error (or a warning under ``--strict``;
unreadable, hostile, not-BPMN and over-limit files are errors too); 2 usage error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bpmn_server.cli import main

from .conftest import DIAGRAMS_DIR, PROJECT_ROOT
from .models import definitions, linear_process

BROKEN = definitions("""
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="ghost"/>
    <bpmn:task id="orphan" bogus="yes"/>
  </bpmn:process>""")
ONLY_WARNINGS = definitions("""
  <bpmn:process id="drafty" isExecutable="false">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:task id="orphan"/>
  </bpmn:process>""")
NOT_RUNNABLE = linear_process("odd", task="bpmn:businessRuleTask")


def line_of(source: bytes, marker: str) -> int:
    text = source.decode()
    return text.count("\n", 0, text.index(marker)) + 1


def run(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


def test_the_example_diagrams_are_clean():
    result = run(str(DIAGRAMS_DIR))
    assert result.exit_code == 0, result.output
    count = len(list(DIAGRAMS_DIR.glob("*.bpmn")))
    assert result.output.splitlines() == [f"{count} files, 0 errors, 0 warnings, 0 info"]


def test_errors_exit_1_with_file_line_element_rule_severity_and_message(tmp_path):
    path = tmp_path / "broken.bpmn"
    path.write_bytes(BROKEN)
    result = run(str(path), "--no-hints")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    flow_line, orphan_line = line_of(BROKEN, 'id="f1"'), line_of(BROKEN, 'id="orphan"')
    expected = [
        f"{path}:{flow_line}: error dangling-reference [f1] sequence flow f1 has "
        "targetRef='ghost', which does not exist",
        f"{path}:{orphan_line}: error unreachable-node [orphan] task (orphan) cannot be "
        "reached from any start event of its process",
    ]
    for line in expected:
        assert line in lines, result.output
    xsd = [line for line in lines if " error xsd [orphan] " in line]
    assert xsd and "attribute 'bogus' is not allowed" in xsd[0]
    assert lines[-1].startswith("1 files, ") and " 0 warnings" in lines[-1]


def test_hints_follow_their_finding(tmp_path):
    (tmp_path / "broken.bpmn").write_bytes(BROKEN)
    lines = run(str(tmp_path)).output.splitlines()
    index = next(i for i, line in enumerate(lines) if "dangling-reference [f1]" in line)
    assert lines[index + 1].startswith("    hint: connect the flow to an existing element")


def test_a_folder_reports_every_problem_of_every_file_at_once(tmp_path):
    (tmp_path / "a-broken.bpmn").write_bytes(BROKEN)
    (tmp_path / "b-clean.bpmn").write_bytes(linear_process())
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c-hostile.bpmn").write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>')
    (tmp_path / "nested" / "d-not-xml.bpmn").write_bytes(b"just text")
    (tmp_path / "e-warnings.bpmn").write_bytes(ONLY_WARNINGS)
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "other.xml").write_text("<config/>")  # an .xml file that is not BPMN is not ours to judge
    result = run(str(tmp_path), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    by_file = {Path(entry["file"]).name: entry["findings"] for entry in report["files"]}
    assert sorted(by_file) == ["a-broken.bpmn", "b-clean.bpmn", "c-hostile.bpmn", "d-not-xml.bpmn",
                               "e-warnings.bpmn"]
    assert {f["rule"] for f in by_file["a-broken.bpmn"]} == {"dangling-reference", "unreachable-node", "xsd"}
    assert by_file["b-clean.bpmn"] == []
    assert [(f["rule"], f["line"]) for f in by_file["c-hostile.bpmn"]] == [("hostile-xml", 2)]
    text = run(str(tmp_path / "nested"), "--no-hints").output.splitlines()
    assert text[0] == (f"{tmp_path / 'nested' / 'c-hostile.bpmn'}:2:1: error hostile-xml the file declares a DOCTYPE at "
                       "line 2; DTDs, entities and external references are refused (XXE / entity-expansion protection)")
    assert [(f["rule"], f["line"], f["column"]) for f in by_file["d-not-xml.bpmn"]] == [("not-well-formed", 1, 1)]
    assert [(f["rule"], f["severity"]) for f in by_file["e-warnings.bpmn"]] == [("unreachable-node", "warning")]
    errors = sum(f["severity"] == "error" for findings in by_file.values() for f in findings)
    assert report["summary"] == {"files": 5, "errors": errors, "warnings": 1, "info": 0}
    assert report["ok"] is False
    for findings in by_file.values():
        for finding in findings:
            assert {"rule", "severity", "message", "file"} <= set(finding)


def test_json_of_a_clean_folder_is_ok():
    result = run(str(DIAGRAMS_DIR), "--format", "json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["ok"] is True and report["summary"]["errors"] == 0
    assert all(entry["findings"] == [] for entry in report["files"])


def test_warnings_pass_unless_strict(tmp_path):
    path = tmp_path / "warnings.bpmn"
    path.write_bytes(ONLY_WARNINGS)
    assert run(str(path)).exit_code == 0
    assert run(str(path), "--strict").exit_code == 1


def test_engine_findings_are_asked_for_with_engine(tmp_path):
    path = tmp_path / "dmn.bpmn"
    path.write_bytes(NOT_RUNNABLE)
    with_engine = run(str(path), "--engine", "--no-hints")
    assert with_engine.exit_code == 1
    line = line_of(NOT_RUNNABLE, 'id="work"')
    assert f"{path}:{line}: error not-executable-element [work]" in with_engine.output
    assert run(str(path)).exit_code == 0


def test_miwg_reference_set_is_valid_bpmn(miwg_dir):
    result = run(str(miwg_dir))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("21 files, 0 errors")
    with_engine = run(str(miwg_dir), "--engine", "--format", "json")
    report = json.loads(with_engine.output)
    rules = {f["rule"] for entry in report["files"] for f in entry["findings"] if f["severity"] == "error"}
    assert rules == {"not-executable-element"}, "only what this engine cannot run is an error"


def test_an_unreadable_file_is_reported_and_the_others_still_checked(tmp_path, monkeypatch):
    locked = tmp_path / "locked.bpmn"
    locked.write_bytes(linear_process())
    (tmp_path / "fine.bpmn").write_bytes(linear_process())
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.bpmn":
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = run(str(tmp_path), "--no-hints")
    assert result.exit_code == 1
    assert f"{locked}: error unreadable cannot read the file: Permission denied" in result.output
    assert result.output.splitlines()[-1] == "2 files, 1 errors, 0 warnings, 0 info"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["does-not-exist.bpmn"], "does not exist"),
        ([], "Missing argument"),
        (["--format", "yaml", "diagrams"], "Invalid value for '--format'"),
    ],
)
def test_usage_errors_exit_2(args, message, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_folder_without_bpmn_files_is_a_usage_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert "no BPMN files" in result.output


def test_the_installed_command_runs():
    command = Path(sys.executable).with_name("bpmn-server")
    completed = subprocess.run([str(command), "validate", str(DIAGRAMS_DIR)], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert " 0 errors" in completed.stdout


def test_the_server_limits_apply_to_validate_too(tmp_path, monkeypatch):
    path = tmp_path / "simple.bpmn"
    path.write_bytes(linear_process())
    monkeypatch.setenv("BPMN_SERVER_MAX_XML_ELEMENTS", "5")
    result = run(str(path), "--no-hints")
    assert result.exit_code == 1
    assert "error too-large" in result.output and "the limit is 5" in result.output
    monkeypatch.setenv("BPMN_SERVER_MAX_XML_ELEMENTS", "many")
    refused = run(str(path))
    assert refused.exit_code == 2 and "BPMN_SERVER_MAX_XML_ELEMENTS must be a whole number" in refused.output
