"""The betsy execution conformance harness: every case of ``../shared/conformance/betsy`` run through
bpmn_server's real path, traces compared as betsy does.

    python -m conformance.betsy [--group G] [--case NAME] [--backend sqlite|postgres|spiff]

Each case gets an empty database. The harness rewrites the script tokens of the case's file into
Python (cases.py), deploys the file with ``services.definitions.deploy``, starts ``ParallelProcess``
(when the case asks for it) and the test's process with ``services.instances.start``, lets the
instances exchange messages and signals through ``services.messages``, then moves a ManualClock
forward by the case's ``delay_ms`` while firing every timer that falls due through the timer
service. The trace is read back from the server: the script tasks each instance completed (its audit
history), the error an instance ended with (its status and incident). ``--backend spiff`` runs the
same case straight on SpiffWorkflow with the server's spec builder and sandbox (a diagnostic).

One line per case (PASS/FAIL, expected vs produced trace), then
``betsy: passed N/149 cases (M/113 tests)``. The exit status is non-zero only when the harness
itself fails, or when the known-failure list is out of date (``--strict``); known failures are not
errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .cases import (
    Case,
    HarnessError,
    PreparedModel,
    Produced,
    conformance_dir,
    load_cases,
    prepare_model,
    traces_match,
)

KNOWN_FAILURES = Path(__file__).with_name("known_failures.toml")
BACKENDS = ("sqlite", "postgres", "spiff")


def load_known_failures(path: Path = KNOWN_FAILURES) -> dict[str, str]:
    """``{"Test#n": reason}`` of the cases expected to fail."""
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        return {str(k): str(v) for k, v in tomllib.load(handle).get("cases", {}).items()}


@dataclass
class CaseResult:
    case: Case
    passed: bool
    expected: list[str]
    produced: list[str]
    detail: str = ""
    known_reason: str | None = None

    @property
    def verdict(self) -> str:
        if self.passed:
            return "PASS (listed as known failure: remove it)" if self.known_reason else "PASS"
        return "FAIL (known)" if self.known_reason else "FAIL"

    def line(self) -> str:
        text = f"{self.verdict:<5} {self.case.name}: expected {self.expected} produced {self.produced}"
        if not self.passed and self.detail:
            text += f" -- {self.detail}"
        if not self.passed and self.known_reason:
            text += f" [{self.known_reason}]"
        return text


Runner = Callable[[Case, PreparedModel], Produced]


def runner_for(backend: str, **options) -> Runner:
    """The function that runs one case on ``backend``."""
    if backend == "spiff":
        from .spiff_runner import run_case

        return run_case
    if backend in ("sqlite", "postgres"):
        from .service_runner import ServiceRunner

        return ServiceRunner(backend, **options).run_case
    raise HarnessError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def run_one(case: Case, runner: Runner, known: dict[str, str]) -> CaseResult:
    """Run a case and compare its trace (sorted multisets; plain ERROR matches any error token)."""
    model = prepare_model(case.bpmn)
    produced = runner(case, model)
    trace = produced.trace(model, case.expected)
    return CaseResult(case, traces_match(case.expected, trace), sorted(case.expected), sorted(trace),
                      produced.detail, known.get(case.name))


def select(cases: Iterable[Case], group: str | None = None, name: str | None = None) -> list[Case]:
    """Cases of a group and/or of a test (``Test`` or ``Test#n``)."""
    chosen = []
    for case in cases:
        if group and case.group != group:
            continue
        if name and name not in (case.test, case.name):
            continue
        chosen.append(case)
    return chosen


def summary(results: list[CaseResult]) -> str:
    tests: dict[str, bool] = {}
    for result in results:
        tests[result.case.test] = tests.get(result.case.test, True) and result.passed
    passed = sum(r.passed for r in results)
    return (f"betsy: passed {passed}/{len(results)} cases "
            f"({sum(tests.values())}/{len(tests)} tests)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.betsy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", help="only this group (activities, basics, data, errors, events, gateways)")
    parser.add_argument("--case", help="only this test (Name) or case (Name#n)")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--postgres-url", help="PostgreSQL URL for --backend postgres "
                        "(default: BPMN_SERVER_TEST_POSTGRES_URL)")
    parser.add_argument("--dir", type=Path, help="the betsy folder (default: $BPMN_SERVER_CONFORMANCE_DIR/betsy)")
    parser.add_argument("--failures-only", action="store_true", help="print only the cases that fail")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a case fails that is not listed, or passes but is listed")
    args = parser.parse_args(argv)
    logging.getLogger("bpmn_server").setLevel(logging.ERROR)  # incidents are reported per case below
    try:
        betsy_dir = args.dir or conformance_dir() / "betsy"
        cases = select(load_cases(betsy_dir), args.group, args.case)
        if not cases:
            raise HarnessError("no case matches the selection")
        known = load_known_failures()
        options = {"postgres_url": args.postgres_url} if args.backend == "postgres" else {}
        runner = runner_for(args.backend, **options)
        results = []
        for case in cases:
            result = run_one(case, runner, known)
            results.append(result)
            if not (args.failures_only and result.passed and not result.known_reason):
                print(result.line(), flush=True)
    except HarnessError as err:
        print(f"betsy: harness error: {err}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a crash of the harness itself is reported, never a case failure
        traceback.print_exc()
        return 2
    print(summary(results))
    unexpected = [r for r in results if not r.passed and not r.known_reason]
    stale = [r for r in results if r.passed and r.known_reason]
    if unexpected:
        print(f"betsy: {len(unexpected)} failing case(s) not in {KNOWN_FAILURES.name}: "
              + ", ".join(r.case.name for r in unexpected))
    if stale:
        print(f"betsy: {len(stale)} case(s) pass but are listed in {KNOWN_FAILURES.name}: "
              + ", ".join(r.case.name for r in stale))
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 1 if args.strict and (unexpected or stale) else 0


if __name__ == "__main__":
    sys.exit(main())
