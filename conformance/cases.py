"""The betsy material: test cases from ``cases.json``, the script-token mapping, trace comparison.

betsy's BPMN files are engine-neutral (SEMANTICS.md beside them): a script task holds a *token*
(``SCRIPT_task1``, ``INCREMENT_INTEGER_VARIABLE``…) instead of code. Before deployment the harness
rewrites every token into Python for the server's script sandbox; that rewriting lives here, never
in the server. Conditions are left exactly as written: they must evaluate through the server's own
expression translation.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ERROR = "ERROR"
ERROR_DEPLOYMENT = "ERROR_deployment"
ERROR_RUNTIME = "ERROR_runtime"
ERROR_THROWN_ERROR = "ERROR_thrownErrorEvent"
ERROR_THROWN_ESCALATION = "ERROR_thrownEscalationEvent"
ERROR_TOKENS = {ERROR_DEPLOYMENT, ERROR_RUNTIME, ERROR_THROWN_ERROR, ERROR_THROWN_ESCALATION}
MARKER_EXISTS = "MARKER_exists"


class HarnessError(Exception):
    """The harness itself cannot run a case (missing material, unknown token): not a conformance failure."""


def conformance_dir() -> Path:
    """The shared conformance folder: ``BPMN_SERVER_CONFORMANCE_DIR`` or ``../shared/conformance``."""
    configured = os.environ.get("BPMN_SERVER_CONFORMANCE_DIR")
    return Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "conformance"


@dataclass(frozen=True)
class Case:
    """One betsy test case: which process to start with which variables, and the trace it must leave."""

    test: str
    group: str
    construct: str
    bpmn: Path
    number: int
    inputs: dict
    expected: tuple[str, ...]
    delay_ms: int
    parallel_process: bool

    @property
    def name(self) -> str:
        return f"{self.test}#{self.number}"


def load_cases(betsy_dir: Path) -> list[Case]:
    """Every case of ``cases.json``, in file order."""
    index = betsy_dir / "cases.json"
    if not index.exists():
        raise HarnessError(f"betsy material not found: {index} (set BPMN_SERVER_CONFORMANCE_DIR)")
    tests = json.loads(index.read_text(encoding="utf-8"))["tests"]
    cases = []
    for test in tests:
        for case in test["test_cases"]:
            cases.append(Case(
                test=test["name"],
                group=test["group"],
                construct=test.get("construct", ""),
                bpmn=betsy_dir / "bpmn" / test["bpmn"],
                number=int(case["number"]),
                inputs=dict(case["inputs"]),
                expected=tuple(case["expected_trace"]),
                delay_ms=int(case.get("delay_ms") or 0),
                parallel_process=bool(case.get("parallel_process")),
            ))
    return cases


# -- script tokens ----------------------------------------------------------------------------------
def _append(*entries: str) -> str:
    items = ", ".join(repr(e) for e in entries)
    return f"trace = trace + [{items}]"


_ENSURE_TRACE = "try:\n    trace\nexcept NameError:\n    trace = []\n"

# token -> (Python for the sandbox, trace entries one execution contributes)
TOKENS: dict[str, tuple[str, tuple[str, ...]]] = {
    "CREATE_LOG_FILE": (_ENSURE_TRACE, ()),
    **{f"SCRIPT_task{n}": (_ENSURE_TRACE + _append(f"SCRIPT_task{n}"), (f"SCRIPT_task{n}",)) for n in range(1, 6)},
    "CREATE_MARKER_FILE": ("marker = True", ()),
    "INCREMENT_INTEGER_VARIABLE": ("integerVariable = integerVariable + 1", ()),
    "INCREMENT_INTEGER_VARIABLE_AND_LOG": (
        "integerVariable = integerVariable + 1\n" + _ENSURE_TRACE + _append("INCREMENT_correct"),
        ("INCREMENT_correct",),
    ),
    "SET_STRING_DATA": ('data = "String"', ()),
    # fails (an incident, so the case fails) unless `data` holds a string
    "LOG_DATA": (
        'if not isinstance(data, str):\n    raise TypeError("data is not a string")\n'
        + _ENSURE_TRACE + _append("DATA_correct"),
        ("DATA_correct",),
    ),
    # A script cannot take ten seconds on a manual clock, and branches never overlap in one engine
    # step: these log nothing, so the cases that need real waiting are known failures.
    "WAIT_TEN_SECONDS": ("waited = True", ()),
    "CREATE_TIMESTAMP_LOG_1": ("timestamp_1 = True", ()),
    "CREATE_TIMESTAMP_LOG_2": ("timestamp_2 = True", ()),
}


@dataclass
class PreparedModel:
    """A betsy file with its tokens rewritten, and the token of every script task by element id."""

    source: bytes
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def marker_elements(self) -> set[str]:
        return {element for element, token in self.tokens.items() if token == "CREATE_MARKER_FILE"}


def _with_io_names(code: str, task: etree._Element) -> str:
    """``data`` is the variable the data tokens use; a task that declares a data output (SET_STRING_DATA)
    or a data input (LOG_DATA) in its ioSpecification reads and writes that instead, as BPMN says a
    task sees data only through its inputs and outputs (the associations connect them to the object)."""
    io = task.find(f"{{{BPMN_NS}}}ioSpecification")
    if io is None:
        return code
    outputs = [e.get("id") for e in io.findall(f"{{{BPMN_NS}}}dataOutput")]
    inputs = [e.get("id") for e in io.findall(f"{{{BPMN_NS}}}dataInput")]
    if code.startswith("data =") and len(outputs) == 1:
        return f"{outputs[0]} =" + code[len("data ="):]
    if "isinstance(data," in code and len(inputs) == 1:
        return code.replace("isinstance(data,", f"isinstance({inputs[0]},")
    return code


def prepare_model(path: Path) -> PreparedModel:
    """The file's bytes with each ``<script>`` token replaced by its Python; everything else untouched."""
    if not path.exists():
        raise HarnessError(f"betsy model missing: {path}")
    tree = etree.parse(str(path))
    tokens: dict[str, str] = {}
    for script in tree.getroot().iter(f"{{{BPMN_NS}}}script"):
        token = (script.text or "").strip()
        if token not in TOKENS:
            raise HarnessError(f"{path.name}: unknown script token {token!r}")
        owner = script.getparent()
        tokens[owner.get("id")] = token
        script.text = etree.CDATA(_with_io_names(TOKENS[token][0], owner))
    source = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
    return PreparedModel(source, tokens)


# -- traces -------------------------------------------------------------------------------------------
@dataclass
class Produced:
    """What a case left behind: the script tasks that ran (element ids, in order) and how it ended."""

    executed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # ERROR_* tokens read from the instances
    statuses: list[str] = field(default_factory=list)  # final status of each instance of the case
    detail: str = ""

    def trace(self, model: PreparedModel, expected: tuple[str, ...]) -> list[str]:
        """The betsy trace: each executed script's entries, the marker, then the error tokens."""
        entries: list[str] = []
        for element in self.executed:
            token = model.tokens.get(element)
            if token is not None:
                entries.extend(TOKENS[token][1])
        if MARKER_EXISTS in expected and any(e in model.marker_elements for e in self.executed):
            entries.append(MARKER_EXISTS)
        entries.extend(dict.fromkeys(self.errors))
        return entries


def traces_match(expected: tuple[str, ...], produced: list[str]) -> bool:
    """betsy's comparison: sorted multisets equal; a plain ``ERROR`` accepts any error token."""
    want = Counter(expected)
    got = Counter(produced)
    plain_errors = want.pop(ERROR, 0)
    if plain_errors:
        produced_errors = sum(count for token, count in got.items() if token in ERROR_TOKENS)
        if produced_errors < 1:
            return False
        for token in ERROR_TOKENS:
            got.pop(token, None)
    return want == got
