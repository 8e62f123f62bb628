"""The betsy execution conformance suite through the services (conformance/betsy.py), on SQLite with a
manual clock: every case not listed in conformance/known_failures.toml passes, every listed one still
fails (so the list stays true). One test per betsy test file, so xdist spreads them.
"""

from __future__ import annotations

import json

import pytest

from conformance.betsy import load_known_failures, run_one
from conformance.cases import load_cases
from conformance.service_runner import ServiceRunner

from .conftest import CONFORMANCE_DIR


def _test_names() -> list[str]:
    index = CONFORMANCE_DIR / "betsy" / "cases.json"
    if not index.exists():
        return ["(material missing)"]
    return [test["name"] for test in json.loads(index.read_text(encoding="utf-8"))["tests"]]


KNOWN = load_known_failures()


@pytest.mark.parametrize("test_name", _test_names())
def test_betsy_case(betsy_dir, tmp_path, test_name):
    cases = [case for case in load_cases(betsy_dir) if case.test == test_name]
    assert cases, f"no betsy test named {test_name}"
    runner = ServiceRunner("sqlite", workdir=tmp_path)
    problems = []
    for case in cases:
        result = run_one(case, runner.run_case, KNOWN)
        if result.known_reason and result.passed:
            problems.append(f"{case.name} passes now: remove it from conformance/known_failures.toml")
        elif not result.known_reason and not result.passed:
            problems.append(result.line())
    assert not problems, "\n".join(problems)


def test_known_failures_name_real_cases(betsy_dir):
    names = {case.name for case in load_cases(betsy_dir)}
    unknown = sorted(set(KNOWN) - names)
    assert not unknown, f"known_failures.toml lists cases that do not exist: {unknown}"
    assert all(reason.strip() for reason in KNOWN.values()), "every known failure needs its reason"


def test_traces_compare_as_multisets_and_plain_error_takes_any_error_token():
    from conformance.cases import traces_match

    assert traces_match(("SCRIPT_task1", "SCRIPT_task2"), ["SCRIPT_task2", "SCRIPT_task1"])
    assert not traces_match(("SCRIPT_task1", "SCRIPT_task1"), ["SCRIPT_task1"])  # counts matter
    assert traces_match(("ERROR",), ["ERROR_deployment"])
    assert traces_match(("ERROR",), ["ERROR_runtime"])
    assert not traces_match(("ERROR",), [])
    assert not traces_match(("ERROR_runtime",), ["ERROR_deployment"])
    assert traces_match((), [])


def test_script_tokens_become_python_and_conditions_stay_as_written(betsy_dir):
    from lxml import etree

    from conformance.cases import BPMN_NS, prepare_model

    model = prepare_model(betsy_dir / "bpmn" / "basics" / "SequenceFlow_Conditional.bpmn")
    root = etree.fromstring(model.source)
    scripts = [s.text for s in root.iter(f"{{{BPMN_NS}}}script")]
    assert all("SCRIPT_task" not in s or "trace = trace + [" in s for s in scripts)
    assert model.tokens == {"start": "CREATE_LOG_FILE", "ScriptTask_1": "SCRIPT_task1", "end": "SCRIPT_task2"}
    conditions = [c.text.strip() for c in root.iter(f"{{{BPMN_NS}}}conditionExpression")]
    assert conditions == ['test.contains("a")']  # evaluated by the server's own expression translation
