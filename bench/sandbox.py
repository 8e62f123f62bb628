"""Cost of the script sandbox: a gateway condition and a script task evaluated N times through the
sandboxed engine vs SpiffWorkflow's default PythonScriptEngine (plain eval/exec) in the same process.

Also measures the alternative CPU-limit mechanism we did not choose — plain exec under a per-thread
``sys.settrace`` line tracer that reads the thread's CPU clock — to show why the sandbox counts ticks
compiled into the script instead.

    .venv/bin/python bench/sandbox.py [N]
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from bpmn_server.runtime.script_engine import make_script_engine
from bpmn_server.settings import Settings

CONDITION_JUEL = "${amount > 500 && !rejected}"
CONDITION_PY = "amount > 500 and not rejected"
SCRIPT = """
total = 0
for line in lines:
    total += line['price'] * line['qty']
vat = round(total * 0.21, 2)
label = f"{customer.upper()}: {total}"
big = [n * n for n in range(50) if n % 3 == 0]
"""


def _data() -> dict:
    return {"amount": 800, "rejected": False, "customer": "acme",
            "lines": [{"price": p, "qty": q} for p, q in [(10, 2), (25, 1), (7, 9), (120, 1)]]}


def _time(fn, n: int, repeats: int = 3) -> float:
    """µs of this thread's CPU per call, best of ``repeats`` (the machine is shared: wall time is noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, (time.thread_time() - start) / n * 1e6)
    return best


def _traced_exec(source: str, data: dict, limit_seconds: float = 2.0) -> None:
    """The rejected alternative: exec with a line tracer that checks this thread's CPU time."""
    deadline = time.thread_time() + limit_seconds
    counter = [0]

    def local(frame, event, arg):
        counter[0] += 1
        if counter[0] % 1000 == 0 and time.thread_time() > deadline:
            raise TimeoutError("cpu limit")
        return local

    def global_trace(frame, event, arg):
        return local if frame.f_code.co_filename == "<traced>" else None

    sys.settrace(global_trace)
    try:
        exec(compile(source, "<traced>", "exec"), data)  # noqa: S102 - compiled per run, like Spiff's default
    finally:
        sys.settrace(None)


def main(n: int) -> None:
    sandboxed = make_script_engine(Settings())
    default = PythonScriptEngine()
    task = SimpleNamespace(data=_data(), task_spec=SimpleNamespace(bpmn_id="bench", bpmn_name="bench"))

    # warm both (compile caches, imports)
    sandboxed.evaluate(task, CONDITION_JUEL)
    sandboxed.execute(task, SCRIPT)
    task.data = _data()

    cond_default = _time(lambda: default.evaluate(task, CONDITION_PY), n)
    cond_sandbox = _time(lambda: sandboxed.evaluate(task, CONDITION_JUEL), n)
    assert sandboxed.evaluate(task, CONDITION_JUEL) is default.evaluate(task, CONDITION_PY) is True

    def run_default():
        task.data = _data()
        default.execute(task, SCRIPT)

    def run_sandbox():
        task.data = _data()
        sandboxed.execute(task, SCRIPT)

    script_default = _time(run_default, n)
    script_sandbox = _time(run_sandbox, n)
    run_default()
    expected = dict(task.data)
    run_sandbox()
    assert task.data == expected, (task.data, expected)

    script_traced = _time(lambda: _traced_exec(SCRIPT, _data()), n)

    loop = "x = 0\nfor i in range(20000):\n    x += i\n"
    loop_default = _time(lambda: default.execute(SimpleNamespace(data={}), loop), max(n // 50, 5))
    loop_sandbox = _time(lambda: sandboxed.execute(SimpleNamespace(data={}, task_spec=None), loop), max(n // 50, 5))
    loop_traced = _time(lambda: _traced_exec(loop, {}), max(n // 50, 5))

    print(f"N={n}")
    print(f"condition  default {cond_default:8.1f} µs   sandbox {cond_sandbox:8.1f} µs   "
          f"ratio {cond_sandbox / cond_default:5.2f}")
    print(f"script     default {script_default:8.1f} µs   sandbox {script_sandbox:8.1f} µs   "
          f"ratio {script_sandbox / script_default:5.2f}   (settrace budget {script_traced:8.1f} µs, "
          f"ratio {script_traced / script_default:5.2f})")
    print(f"20k loop   default {loop_default:8.1f} µs   sandbox {loop_sandbox:8.1f} µs   "
          f"ratio {loop_sandbox / loop_default:5.2f}   (settrace budget {loop_traced:8.1f} µs, "
          f"ratio {loop_traced / loop_default:5.2f})")
    print(f"RESULT sandbox ratio={script_sandbox / script_default:.2f} condition_ratio={cond_sandbox / cond_default:.2f} "
          f"loop_ratio={loop_sandbox / loop_default:.2f} settrace_loop_ratio={loop_traced / loop_default:.2f} "
          f"condition_us={cond_sandbox:.1f} script_us={script_sandbox:.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
