"""``bpmn-server sop``: one self-contained HTML file, or clear errors with exit status 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bpmn_server.cli import main

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


def run(*args: str):
    return CliRunner().invoke(main, ["sop", *args])


def test_sop_writes_one_self_contained_file(tmp_path):
    out = tmp_path / "handbook.html"
    result = run(str(DIAGRAMS / "refund-request.bpmn"), "-p", "refund_request", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<h1>Refund request</h1>" in text and "<svg" in text and "<style>" in text
    lowered = text.lower()
    for external in ("<script", "<link", 'src="http', "@import", "url(http"):
        assert external not in lowered, external
    assert 'id="step-approve_refund"' in text


def test_sop_without_output_prints_the_page(tmp_path):
    result = run(str(DIAGRAMS / "employee-onboarding.bpmn"))
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert "Employee onboarding" in result.stdout


def test_sop_of_a_missing_file_fails_clearly(tmp_path):
    result = run(str(tmp_path / "nothing.bpmn"))
    assert result.exit_code == 1
    assert "cannot read" in result.output and "nothing.bpmn" in result.output


def test_sop_of_a_file_that_is_not_bpmn_fails_clearly(tmp_path):
    bad = tmp_path / "notes.bpmn"
    bad.write_text("<notes><note>hello</note></notes>")
    result = run(str(bad))
    assert result.exit_code == 1
    assert "not a BPMN 2.0 model" in result.output
    broken = tmp_path / "broken.bpmn"
    broken.write_text("<bpmn:definitions")
    result = run(str(broken))
    assert result.exit_code == 1 and "not well-formed" in result.output


def test_sop_of_an_unknown_process_fails_clearly():
    result = run(str(DIAGRAMS / "refund-request.bpmn"), "-p", "no_such_process")
    assert result.exit_code == 1
    assert "no process 'no_such_process'" in result.output
