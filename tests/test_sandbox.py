"""The script sandbox: known CPython sandbox escapes are refused with a clear error, resource bombs
stop fast, ordinary scripts and JUEL/Python expressions work, and Spiff runs a real BPMN through it."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from bpmn_server.clock import ManualClock
from bpmn_server.errors import ScriptError
from bpmn_server.parser.document import BpmnDocument
from bpmn_server.parser.spec import build_specs
from bpmn_server.runtime.sandbox import Limits, Sandbox, SandboxError
from bpmn_server.runtime.script_engine import make_script_engine
from bpmn_server.settings import Settings

from .models import definitions
from .timer_models import intermediate_timer

FAST = Limits(cpu_seconds=0.1, max_items=200_000, max_alloc_bytes=32 * 1024 * 1024)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(FAST, now=ManualClock().now)


def refused(sandbox: Sandbox, code: str, data: dict | None = None) -> SandboxError:
    """Run ``code`` as a script and return the error it must raise."""
    with pytest.raises(SandboxError) as caught:
        sandbox.execute(code, dict(data or {}))
    return caught.value


# --------------------------------------------------------------------------- escapes

ESCAPES = {
    "subclasses walk": "x = ().__class__.__bases__[0].__subclasses__()",
    "builtins name": "x = __builtins__",
    "builtins import": "x = __builtins__['__import__']('os')",
    "import statement": "import os",
    "from import": "from os import system",
    "import in function": "def f():\n    import subprocess\nf()",
    "dunder import": "x = __import__('os')",
    "format attribute walk": "x = '{0.__class__.__mro__}'.format(1)",
    "format_map attribute walk": "x = '{a.__class__}'.format_map({'a': 1})",
    "str.format unbound": "x = str.format('{0.__class__}', 1)",
    "getattr dunder concat": "x = getattr(1, '__cl' + 'ass__')",
    "getattr bound self": "x = getattr(len, '__self__')",
    "getattr on function": "f = lambda: 1\nx = getattr(f, 'globals')",
    "generator gi_frame": "g = (i for i in [1])\nx = g.gi_frame.f_back.f_globals",
    "generator gi_frame getattr": "g = (i for i in [1])\nx = getattr(g, 'gi_' + 'frame')",
    "generator gi_code": "g = (i for i in [1])\nx = getattr(g, 'gi_code')",
    "lambda globals": "x = (lambda: 0).__globals__",
    "lambda default leak": "x = (lambda c=().__class__: c)()",
    "function code": "def f(): pass\nx = f.__code__",
    "type call": "x = type(1)('2')",
    "type three args": "x = type('X', (), {})",
    "exception traceback frame": "try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__.tb_frame",
    "exception with_traceback": "try:\n    1 / 0\nexcept Exception as e:\n    x = e.with_traceback(None)",
    "exception context": "try:\n    1 / 0\nexcept Exception as e:\n    x = getattr(e, '__context__')",
    "vars": "x = vars()",
    "globals": "x = globals()",
    "locals": "x = locals()",
    "dir": "x = dir()",
    "open file": "x = open('/etc/passwd').read()",
    "exec": "exec('x = 1')",
    "eval": "x = eval('1')",
    "compile": "x = compile('1', 'f', 'eval')",
    "breakpoint": "breakpoint()",
    "help": "help()",
    "exit": "exit()",
    "quit": "quit()",
    "input": "x = input()",
    "setattr": "setattr(math, 'floor', None)",
    "class definition": "class A:\n    pass",
    "metaclass via class": "class A(metaclass=type):\n    pass",
    "generator function": "def f():\n    yield 1",
    "async function": "async def f():\n    pass",
    "match class pattern": "match 1:\n    case int(real=r):\n        pass",
    "except star": "try:\n    pass\nexcept* ValueError:\n    pass",
    "nonlocal": "def f():\n    x = 1\n    def g():\n        nonlocal x\n    g()\nf()",
    "str mro": "x = str.mro()",
    "write helper namespace": "math.floor = None",
    "write builtin function": "len.x = 1",
    "memoryview": "x = memoryview(b'a')",
    "bytearray": "x = bytearray(10)",
    "object": "x = object.__subclasses__()",
    "print to file": "print('x', file=open('/tmp/x', 'w'))",
    "int to_bytes bomb": "x = (1).to_bytes(10**10, 'big')",
    "str translate": "x = 'a'.translate({97: 'b' * 1000})",
    "dict view mapping": "d = {'a': 1}\nx = d.keys().mapping",
    "unbound str.join skips guards": "x = str.join(',', ['a' * 1000000] * 100)",
    "unbound str.ljust skips guards": "x = str.ljust('a', 10**10)",
    "unbound list.copy": "x = list.copy([1])",
    "dict.fromkeys": "x = dict.fromkeys(range(10), 0)",
}


@pytest.mark.parametrize("code", list(ESCAPES.values()), ids=list(ESCAPES))
def test_escape_is_refused(sandbox, code):
    error = refused(sandbox, code)
    assert error.message
    assert error.kind in {"Refused", "NameError", "SyntaxError", "AttributeError", "LimitExceeded"}


def test_refusal_names_line_and_offending_code(sandbox):
    error = refused(sandbox, "a = 1\nb = 2\nx = ().__class__")
    assert error.line == 3
    assert error.source_line == "x = ().__class__"
    assert "__class__" in error.message


def test_import_refusal_is_explained(sandbox):
    error = refused(sandbox, "total = 1\nimport os")
    assert error.line == 2 and "import is not allowed" in error.message


# --------------------------------------------------------------------------- resource limits

BOMBS = {
    "string repeat": "x = 'a' * 10**10",
    "list repeat": "x = [0] * 10**10",
    "tuple repeat": "x = (0,) * 10**10",
    "power tower": "x = 10 ** 10 ** 10",
    "pow builtin": "x = pow(10, 10**10)",
    "left shift": "x = 1 << 10**10",
    "int multiply": "x = 10**19000\ny = x * x * x * x",
    "string doubling": "s = 'ab'\nfor i in range(100):\n    s = s + s",
    "augmented doubling": "s = [1]\nfor i in range(100):\n    s += s",
    "list extend doubling": "s = [1]\nfor i in range(100):\n    s.extend(s)",
    "ljust": "x = 'a'.ljust(10**10)",
    "zfill": "x = '1'.zfill(10**10)",
    "replace blowup": "s = 'a' * 1000000\nx = s.replace('', s)",
    "join blowup": "x = ','.join(['a' * 1000000] * 100)",
    "expandtabs": "x = ('\\t' * 1000).expandtabs(10**7)",
    "f-string width": "x = f'{1:>10000000000}'",
    "nested f-string width": "w = 10**10\nx = f'{1:>{w}}'",
    "format builtin width": "x = format(1, '>10000000000')",
    "percent width": "x = '%10000000000d' % 1",
    "percent star width": "x = '%*d' % (10**10, 1)",
    "strftime width": "x = datetime(2024, 1, 1).strftime('%1000000000Y')",
    "str of shared references": "x = str([[0] * 100000] * 1000)",
    "f-string of shared references": "big = [[0] * 100000] * 1000\nx = f'{big}'",
    "range": "x = list(range(10**9))",
    "sum of lists": "x = sum([[0] * 1000] * 1000, [])",
    "copies in a loop": "big = list(range(100000))\nkeep = [list(big) for _ in range(10000)]",
    "slices in a loop": "big = list(range(100000))\nkeep = [big[:] for _ in range(10000)]",
    "zip fan-out": "big = [0] * 1000\nx = list(zip(*[big] * 1000))",
    "shared references in data": "row = list(range(1000))\nx = [row] * 100000",
    "round to huge precision": "x = round(5, -10**9)",
    "set of shared tuples in data": "t = tuple(range(1000))\nx = {(t,) * 1000}",
    "str of shared dict views": "d = {i: i for i in range(100000)}\nx = str([d.items()] * 1000)",
    "str of an exception holding shared references": "x = str(ValueError([[0] * 100000] * 1000))",
    "dict unpack copies": "big = {i: i for i in range(100000)}\nkeep = [{**big} for _ in range(10000)]",
    "split blowup": "s = ' ' * 4000000\nx = s.split(' ')",
    "splitlines blowup": "s = '\\n' * 4000000\nx = s.splitlines()",
    "keyword copies": "big = {str(i): i for i in range(20000)}\nkeep = [dict(**big) for _ in range(100000)]",
}


@pytest.mark.parametrize("code", list(BOMBS.values()), ids=list(BOMBS))
def test_resource_bomb_fails_fast_with_clear_error(sandbox, code):
    error = refused(sandbox, code)
    assert error.kind in {"LimitExceeded", "Refused"}, error.message
    assert any(word in error.message for word in ("limit", "MiB", "not allowed", "numbers only", "values")), \
        error.message


INFINITE = {
    "while loop": "while True:\n    pass",
    "for over growing list": "xs = [1]\nfor x in xs:\n    xs.append(x)",
    "exponential recursion": "def f(n):\n    return 1 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)",
    "lambda recursion": "f = lambda n: 1 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)",
    "nested comprehension": "x = sum(1 for a in range(100000) for b in range(100000))",
    "bare except swallows limit": "try:\n    while True:\n        pass\nexcept:\n    pass\nx = 1",
    "except loop keeps going": "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass",
}


@pytest.mark.parametrize("code", list(INFINITE.values()), ids=list(INFINITE))
def test_endless_work_stops_at_the_cpu_limit(sandbox, code):
    error = refused(sandbox, code)
    assert error.kind == "LimitExceeded"
    assert "CPU time" in error.message or "MiB" in error.message or "items" in error.message


def test_cpu_limit_works_in_worker_threads_and_budgets_are_per_run():
    """Two endless scripts in two threads each stop at their own limit while a third thread's short
    scripts on the same sandbox keep succeeding."""
    sandbox = Sandbox(Limits(cpu_seconds=0.1))
    errors: list[SandboxError] = []
    results: list[int] = []

    def endless():
        try:
            sandbox.execute("while True:\n    pass", {})
        except SandboxError as error:
            errors.append(error)

    def short_scripts():
        for n in range(50):
            data = {"n": n}
            sandbox.execute("total = sum(i for i in range(n))", data)
            results.append(data["total"])

    threads = [threading.Thread(target=endless), threading.Thread(target=endless),
               threading.Thread(target=short_scripts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(not thread.is_alive() for thread in threads)
    assert [e.kind for e in errors] == ["LimitExceeded", "LimitExceeded"]
    assert results == [n * (n - 1) // 2 for n in range(50)]


def test_recursion_is_a_clear_error(sandbox):
    error = refused(sandbox, "def f(n):\n    return f(n + 1)\nx = f(0)")
    assert error.kind == "RecursionError"


def test_scripts_cannot_change_what_later_scripts_see(sandbox):
    refused(sandbox, "math.floor = None")
    data: dict = {}
    sandbox.execute("len = lambda x: 0\nsorted = None", data)
    assert data == {"sorted": None}  # a function is not data; None is
    fresh: dict = {"xs": [3, 1, 2]}
    sandbox.execute("n = len(xs)\nfirst = sorted(xs)[0]\nf = math.floor(2.5)", fresh)
    assert fresh == {"xs": [3, 1, 2], "n": 3, "first": 1, "f": 2}


def test_underscore_variables_cannot_replace_the_guards_and_are_kept(sandbox):
    data = {"_getattr_": "x", "__builtins__": {}, "_note": "kept", "n": 1}
    sandbox.execute("m = n + len([1, 2])\ns = 'a'.upper()", data)
    assert data == {"_getattr_": "x", "__builtins__": {}, "_note": "kept", "n": 1, "m": 3, "s": "A"}
    assert refused(sandbox, "x = ().__class__", {"_getattr_": "x"}).kind == "Refused"


def test_non_storable_values_are_refused(sandbox):
    error = refused(sandbox, "g = (i for i in [1])")
    assert error.kind == "InvalidData" and "'g'" in error.message
    assert refused(sandbox, "x = float('nan')").kind == "InvalidData"
    assert refused(sandbox, "x = {(1, 2): 3}").kind == "InvalidData"


def test_data_size_limit():
    sandbox = Sandbox(FAST, max_data_bytes=1000)
    error = refused(sandbox, "x = 'a' * 2000")
    assert error.kind == "LimitExceeded" and "1000" in error.message


# --------------------------------------------------------------------------- what scripts can do


def test_arithmetic_strings_and_comprehensions(sandbox):
    data = {"amount": 120, "name": "ada lovelace", "items": [{"price": 3, "qty": 2}, {"price": 5, "qty": 1}]}
    sandbox.execute(
        "total = sum(i['price'] * i['qty'] for i in items)\n"
        "vat = round(total * 0.21, 2)\n"
        "label = name.title() + ': ' + str(total)\n"
        "words = name.split()\n"
        "initials = ''.join(w[0].upper() for w in words)\n"
        "squares = {n: n ** 2 for n in range(4)}\n"
        "evens = [n for n in range(10) if n % 2 == 0]\n"
        "pair = (1, 2)\n"
        "summary = f'{label} ({vat:.2f} VAT) {amount:>6}'\n"
        "text = '%s owes %05.1f' % (name, amount)\n"
        "big = max(amount, 100) > 100 and isinstance(name, str) and not isinstance(name, list)\n"
        "sorted_names = sorted(['b', 'a'], key=lambda s: s, reverse=True)\n"
        "count = 0\n"
        "for key, value in squares.items():\n"
        "    count += value\n"
        "del pair\n",
        data,
    )
    assert data["total"] == 11 and data["vat"] == 2.31
    assert data["label"] == "Ada Lovelace: 11" and data["initials"] == "AL"
    assert data["squares"] == {"0": 0, "1": 1, "2": 4, "3": 9}
    assert data["evens"] == [0, 2, 4, 6, 8]
    assert data["summary"] == "Ada Lovelace: 11 (2.31 VAT)    120"
    assert data["text"] == "ada lovelace owes 120.0"
    assert data["big"] is True and data["sorted_names"] == ["b", "a"] and data["count"] == 14
    assert "pair" not in data


def test_augmented_assignment_keeps_python_semantics(sandbox):
    data = {"words": ["a", "b", "a"]}
    sandbox.execute(
        "counts = {}\n"
        "for w in words:\n"
        "    counts[w] = counts.get(w, 0)\n"
        "    counts[w] += 1\n"
        "alias = words\n"
        "words += ['c']\n"  # extends in place: alias sees it
        "n = 10\n"
        "n -= 3\n"
        "n *= 2\n"
        "grid = [[0, 0]]\n"
        "grid[0][1] += 5\n",
        data,
    )
    assert data["counts"] == {"a": 2, "b": 1}
    assert data["alias"] == ["a", "b", "a", "c"] and data["words"] == ["a", "b", "a", "c"]
    assert data["n"] == 14 and data["grid"] == [[0, 5]]
    assert refused(sandbox, "xs = ['a']\nxs[0] *= 10**10").kind == "LimitExceeded"


def test_exceptions_inside_scripts_can_be_handled(sandbox):
    data: dict = {}
    sandbox.execute("try:\n    x = 1 / 0\nexcept ZeroDivisionError as e:\n    x = 'failed: ' + str(e.args[0])", data)
    assert data == {"x": "failed: division by zero"}


def test_datetime_helpers_use_the_server_clock():
    clock = ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    sandbox = Sandbox(FAST, now=clock.now)
    data = {"submitted": "2026-02-20T08:00:00"}
    sandbox.execute(
        "due = now() + timedelta(days=2)\n"
        "age_days = (now() - parse_datetime(submitted)).days\n"
        "day = today()\n"
        "first = date(2026, 1, 1)\n"
        "iso = due.isoformat()\n"
        "weekday = due.strftime('%A')\n"
        "later = datetime(2026, 1, 1, tzinfo=UTC) < due\n",
        data,
    )
    assert data["due"] == datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert data["age_days"] == 9
    assert data["day"] == "2026-03-01" and data["first"] == "2026-01-01"  # dates are stored as ISO text
    assert data["iso"] == "2026-03-03T12:00:00+00:00" and data["weekday"] == "Tuesday" and data["later"] is True
    clock.advance(timedelta(days=1))
    assert sandbox.evaluate("today()") == date(2026, 3, 2)


def test_naive_datetimes_left_by_a_script_are_utc(sandbox):
    data: dict = {}
    sandbox.execute("meeting = datetime(2026, 5, 1, 9, 30)\nspan = timedelta(hours=2)", data)
    assert data["meeting"] == datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    assert data["span"] == timedelta(hours=2)
    assert refused(sandbox, "tz = timezone.utc").kind == "InvalidData"


def test_lazy_expression_values_are_read_inside_the_budget(sandbox):
    assert sandbox.evaluate("(x * 2 for x in items)", {"items": [1, 2]}) == [2, 4]
    assert sandbox.evaluate("map(str, items)", {"items": [1, 2]}) == ["1", "2"]
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("(x for x in range(100000) for y in range(100000))")
    assert caught.value.kind == "LimitExceeded"
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("[[0] * 100000] * 1000")  # a value whose text would be huge
    assert caught.value.kind == "LimitExceeded"
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("lambda: 1")
    assert "not a function" in caught.value.message


def test_expressions_do_not_change_the_data(sandbox):
    data = {"x": [1, 2]}
    assert sandbox.evaluate("x + [3]", data) == [1, 2, 3]
    assert data == {"x": [1, 2]}


@pytest.mark.parametrize(("juel", "python", "data", "expected"), [
    ("${amount > 500 && !rejected}", "amount > 500 and not rejected", {"amount": 600, "rejected": False}, True),
    ("${amount > 500 && !rejected}", "amount > 500 and not rejected", {"amount": 600, "rejected": True}, False),
    ("${empty items}", "items in (None, '', [], {}, ())", {"items": []}, True),
    ("${not empty items}", "items not in (None, '', [], {}, ())", {"items": [1]}, True),
    ("${status == 'approved'}", "status == 'approved'", {"status": "approved"}, True),
    ("${status eq 'approved' || amount lt 10}", "status == 'approved' or amount < 10",
     {"status": "no", "amount": 5}, True),
    ("${customer.vip}", "customer['vip']", {"customer": {"vip": True}}, True),
    ("${name.contains('x')}", "'x' in name", {"name": "max"}, True),
    ("${amount > 100 ? 'big' : 'small'}", "'big' if amount > 100 else 'small'", {"amount": 3}, "small"),
])
def test_juel_conditions_equal_their_python_form(sandbox, juel, python, data, expected):
    assert sandbox.evaluate(juel, data) == expected
    assert sandbox.evaluate(python, data) == expected


_COMPARISONS = [("==", "=="), ("!=", "!="), ("<", "<"), (">", ">"), ("<=", "<="), (">=", ">="),
                ("eq", "=="), ("ne", "!="), ("lt", "<"), ("gt", ">"), ("le", "<="), ("ge", ">=")]
_LOGIC = [("&&", "and"), ("||", "or"), ("and", "and"), ("or", "or")]
_VARIABLES = ["a", "b", "c"]


@st.composite
def _condition(draw, depth=0):
    """A random JUEL condition and the same condition written in Python."""
    if depth >= 2 or draw(st.booleans()):
        left = draw(st.sampled_from(_VARIABLES))
        right = draw(st.one_of(st.sampled_from(_VARIABLES), st.integers(-5, 5).map(str)))
        juel_op, py_op = draw(st.sampled_from(_COMPARISONS))
        juel, python = f"{left} {juel_op} {right}", f"{left} {py_op} {right}"
    else:
        left_juel, left_py = draw(_condition(depth + 1))
        right_juel, right_py = draw(_condition(depth + 1))
        juel_op, py_op = draw(st.sampled_from(_LOGIC))
        juel, python = f"({left_juel}) {juel_op} ({right_juel})", f"({left_py}) {py_op} ({right_py})"
    if draw(st.booleans()):
        juel, python = f"!({juel})", f"not ({python})"
    return juel, python


_PROPERTY_SANDBOX = Sandbox(FAST)


@hypothesis_settings(max_examples=60, deadline=None)
@given(_condition(), st.fixed_dictionaries({v: st.integers(-5, 5) for v in _VARIABLES}))
def test_random_juel_conditions_evaluate_like_python(condition, data):
    juel, python = condition
    expected = eval(python, {"__builtins__": {}}, dict(data))  # noqa: S307 - the reference, on generated text
    assert _PROPERTY_SANDBOX.evaluate("${" + juel + "}", data) == expected
    assert _PROPERTY_SANDBOX.evaluate(python, data) == expected


def test_name_error_suggests_the_near_miss(sandbox):
    error = refused(sandbox, "total = amout * 2", {"amount": 3})
    assert error.kind == "NameError" and error.suggestion == "amount"
    assert "did you mean 'amount'" in error.message
    assert error.line == 1 and error.source_line == "total = amout * 2"


def test_expression_errors_show_the_expression_as_written(sandbox):
    with pytest.raises(SandboxError) as caught:
        sandbox.evaluate("${amout > 5 && !rejected}", {"amount": 3, "rejected": False})
    assert caught.value.source_line == "${amout > 5 && !rejected}"
    assert caught.value.suggestion == "amount"


def test_long_exception_text_is_cut(sandbox):
    error = refused(sandbox, "raise ValueError('x' * 100000)")
    assert error.kind == "ValueError" and len(error.message) < 1000
    error = refused(sandbox, "t = tuple(range(100000))\nraise KeyError((t,) * 1000)")
    assert error.kind == "KeyError" and "too long" in error.message


def test_syntax_error_names_the_line(sandbox):
    error = refused(sandbox, "x = 1\ny = (2 +\n")
    assert error.kind == "SyntaxError" and error.line in (2, 3)


def test_print_output_is_kept_off_stdout(sandbox, capsys):
    data: dict = {}
    sandbox.execute("print('hello', 42)\nx = 1", data)
    assert data == {"x": 1}
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- Spiff integration

def _approval_model(script: str, condition: str) -> bytes:
    return definitions(f"""
  <bpmn:process id="approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="calc" name="Compute total" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="check" default="small"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>big</bpmn:outgoing><bpmn:outgoing>small</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:endEvent id="approvalNeeded"><bpmn:incoming>big</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="autoApproved"><bpmn:incoming>small</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="calc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="calc" targetRef="check"/>
    <bpmn:sequenceFlow id="big" sourceRef="check" targetRef="approvalNeeded">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="small" sourceRef="check" targetRef="autoApproved"/>
  </bpmn:process>""")


_TOTAL_SCRIPT = "total = sum(line['price'] * line['qty'] for line in lines)\nrejected = customer == 'blocked'"
_CONDITION = "${total &gt; 500 &amp;&amp; !rejected}"


def _run(model: bytes, data: dict) -> BpmnWorkflow:
    specs = build_specs(BpmnDocument.load(model), "approval")
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs,
                            script_engine=make_script_engine(Settings(script_cpu_seconds=0.1)))
    workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
    workflow.do_engine_steps()
    return workflow


def _reached(workflow: BpmnWorkflow) -> set[str]:
    return {t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.COMPLETED) if t.task_spec.bpmn_id}


@pytest.mark.parametrize(("lines", "customer", "end"), [
    ([{"price": 400, "qty": 2}], "acme", "approvalNeeded"),
    ([{"price": 400, "qty": 2}], "blocked", "autoApproved"),
    ([{"price": 10, "qty": 3}], "acme", "autoApproved"),
])
def test_bpmn_script_task_and_juel_gateway_run_in_the_sandbox(lines, customer, end):
    workflow = _run(_approval_model(_TOTAL_SCRIPT, _CONDITION), {"lines": lines, "customer": customer})
    assert workflow.is_completed()
    assert end in _reached(workflow)
    assert workflow.data["total"] == sum(line["price"] * line["qty"] for line in lines)


def test_bpmn_script_escape_becomes_a_script_error_naming_the_element():
    model = _approval_model("total = 1\nx = ().__class__.__bases__", _CONDITION)
    with pytest.raises(ScriptError) as caught:
        _run(model, {})
    error = caught.value
    assert error.extra["element_id"] == "calc" and error.extra["element_name"] == "Compute total"
    assert error.extra["line"] == 2 and error.extra["source_line"] == "x = ().__class__.__bases__"
    assert "calc" in error.detail and "line 2" in error.detail


def test_bpmn_name_error_suggests_the_variable():
    model = _approval_model("total = sum(line['price'] for line in line)", _CONDITION)
    with pytest.raises(ScriptError) as caught:
        _run(model, {"lines": []})
    assert caught.value.extra["suggestion"] == "lines"
    assert "did you mean 'lines'" in caught.value.detail


def test_bpmn_gateway_condition_error_names_the_gateway():
    model = _approval_model("total = 1", "${totl &gt; 5}")
    with pytest.raises(ScriptError) as caught:
        _run(model, {})
    assert caught.value.extra["element_id"] == "check"
    assert caught.value.extra["suggestion"] == "total"


def test_bpmn_endless_script_stops_at_the_cpu_limit():
    model = _approval_model("while True:\n    pass", _CONDITION)
    with pytest.raises(ScriptError) as caught:
        _run(model, {})
    assert caught.value.extra["error_type"] == "LimitExceeded"
    assert "CPU time" in caught.value.detail


def test_values_a_script_leaves_survive_the_stored_state():
    import json

    from bpmn_server.runtime.engine import Engine

    script = ("total = 1\nrejected = False\ndue = now() + timedelta(days=2)\nday = today()\n"
              "span = timedelta(hours=3)\ntags = {'b', 'a'}\npair = (1, 2)")
    model = _approval_model(script, _CONDITION)
    workflow = _run(model, {})
    engine = Engine(Settings(script_cpu_seconds=0.1), definitions=None)
    state = json.loads(json.dumps(engine.dump(workflow)))
    body = {k: v for k, v in state.items() if k not in ("format", "serializer_version")}
    restored = engine.serializer.registry.restore(body, specs=build_specs(BpmnDocument.load(model), "approval"))
    data = restored.data
    assert isinstance(data["due"], datetime) and data["due"].tzinfo is not None
    assert data["span"] == timedelta(hours=3)
    assert data["tags"] == ["a", "b"] and data["pair"] == [1, 2]
    assert isinstance(data["day"], str) and date.fromisoformat(data["day"])  # a date is stored as ISO text


def _guarded_script(script: str, error_ref: str = "") -> bytes:
    """A script task with an error boundary event (catching ``error_ref``, or every error)."""
    return definitions(f"""
  <bpmn:error id="invalid" name="Invalid amount" errorCode="INVALID_AMOUNT"/>
  <bpmn:process id="approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="calc" scriptFormat="python"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:boundaryEvent id="onError" attachedToRef="calc"><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:errorEventDefinition{f' errorRef="{error_ref}"' if error_ref else ""}/></bpmn:boundaryEvent>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="handled"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="calc"/>
    <bpmn:sequenceFlow id="f2" sourceRef="calc" targetRef="done"/>
    <bpmn:sequenceFlow id="f3" sourceRef="onError" targetRef="handled"/>
  </bpmn:process>""")


def test_a_script_exception_is_an_incident_not_a_bpmn_error():
    """An error boundary on the script task does not catch a Python exception (docs/sandbox.md)."""
    with pytest.raises(ScriptError) as caught:
        _run(_guarded_script("raise ValueError('no price')"), {})
    assert caught.value.extra["error_type"] == "ValueError"
    assert "no price" in caught.value.detail and caught.value.extra["element_id"] == "calc"


@pytest.fixture
def far_from_utc(monkeypatch):
    """The process runs in a zone far from UTC, so a naive date read as local time would be 9 h off."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("time_date", [
    "2026-01-05T10:00:00",  # literal without offset
    "${deadline}",  # JUEL expression giving naive ISO text
    "datetime(2026, 1, 5, 10, 0)",  # Python expression giving a naive datetime, evaluated in the sandbox
    "parse_datetime(deadline)",
])
def test_naive_timer_dates_are_utc_not_local_time(far_from_utc, time_date):
    model = intermediate_timer("wait", time_date).replace(b"timeDuration>", b"timeDate>")
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    specs = build_specs(BpmnDocument.load(model), "wait")
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs,
                            script_engine=make_script_engine(Settings(script_cpu_seconds=0.1), now=clock.now))
    workflow.clock = clock
    workflow.get_tasks(state=TaskState.READY)[0].data["deadline"] = "2026-01-05T10:00:00"
    workflow.do_engine_steps()
    clock.set(datetime(2026, 1, 5, 9, 59, 59, tzinfo=UTC))
    workflow.refresh_timers()
    workflow.do_engine_steps()
    assert not workflow.is_completed()
    clock.set(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))
    workflow.refresh_timers()
    workflow.do_engine_steps()
    assert workflow.is_completed()


@pytest.mark.parametrize("error_ref", ["invalid", ""])
def test_a_script_raising_bpmn_error_is_caught_by_the_error_boundary(error_ref):
    script = "if amount &lt; 0:\n    raise BpmnError('INVALID_AMOUNT', 'negative amount')\nok = True"
    workflow = _run(_guarded_script(script, error_ref), {"amount": -5})
    assert workflow.is_completed()
    assert "handled" in _reached(workflow) and "done" not in _reached(workflow)
    assert not workflow.bpmn_events


def test_a_script_bpmn_error_that_nothing_catches_stays_visible():
    script = "raise BpmnError('SOMETHING_ELSE')"
    workflow = _run(_guarded_script(script, "invalid"), {})
    assert not workflow.is_completed()
    assert [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.ERROR)] == ["calc"]
    assert [e.event_definition.code for e in workflow.bpmn_events] == ["SOMETHING_ELSE"]
