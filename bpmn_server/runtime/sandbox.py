"""The script sandbox: script tasks and expressions run as RestrictedPython with a small set of safe
builtins, guarded attribute/item/iteration access, no imports, a per-run CPU-time budget and size
caps on every operation that can allocate a lot at once (``'a' * 10**10``, ``10**10**10``).

The CPU budget is counted by the script itself: the compiler inserts a ``_tick_()`` into every loop
body, function body and lambda, and every iteration through ``_getiter_`` counts too; every
``CHECK_EVERY`` ticks the run's ``time.thread_time()`` is compared with its deadline. No signal, no
``sys.settrace``, nothing global: each run has its own budget, so it works in any thread. See
docs/sandbox.md for what is allowed, the limits and what is knowingly not covered.
"""

from __future__ import annotations

import ast
import datetime as _dt
import difflib
import json
import math
import operator
import re
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from ..errors import ScriptError
from ..parser.expressions import ExpressionSyntaxError, to_python

__all__ = ["Limits", "Sandbox", "SandboxError", "ScriptLimitExceeded"]

SCRIPT_FILENAME = "<script>"
EXPRESSION_FILENAME = "<expression>"
CHECK_EVERY = 1000  # ticks between two CPU-clock reads


@dataclass(frozen=True)
class Limits:
    """What one script or expression run may use."""

    cpu_seconds: float = 2.0
    max_string_length: int = 4 * 1024 * 1024
    max_items: int = 1_000_000  # elements of one list/tuple built by * or +, and of range()
    max_int_bits: int = 64 * 1024
    max_format_width: int = 10_000
    max_output_bytes: int = 1024 * 1024  # print() output kept per run
    max_iterations: int = 50_000_000  # ticks per run, independent of the clock


class SandboxError(Exception):
    """A refused construct or a failure inside the sandbox, with the script position when known."""

    def __init__(self, message: str, *, kind: str = "error", line: int | None = None,
                 source_line: str | None = None, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.line = line
        self.source_line = source_line
        self.suggestion = suggestion


class ScriptLimitExceeded(BaseException):  # noqa: N818 - BaseException so ``except Exception`` cannot swallow it
    """A resource limit was hit; derived from BaseException and re-raised on every later tick."""


class _Refused(Exception):  # noqa: N818 - raised into the script for a refused operation
    """An operation the sandbox does not allow (dunder access, unsafe method, unknown object)."""


# --------------------------------------------------------------------------- compile-time policy


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, tightened: no imports, classes, generators or async; every loop,
    function and lambda ticks the CPU budget; size-sensitive operators go through ``_binop_``."""

    _GUARDED_OPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}

    def __init__(self, errors=None, warnings=None, used_names=None) -> None:
        super().__init__(errors, warnings, used_names)
        self.positions: list[tuple[int | None, str]] = []

    def error(self, node: ast.AST, info: str) -> None:
        super().error(node, info)
        self.positions.append((getattr(node, "lineno", None), info))

    def _refuse(self, node: ast.AST, what: str) -> ast.AST:
        self.error(node, f"{what} is not allowed in a script")
        return node

    def visit_Import(self, node):
        return self._refuse(node, "import")

    def visit_ImportFrom(self, node):
        return self._refuse(node, "import")

    def visit_ClassDef(self, node):
        return self._refuse(node, "a class definition")

    def visit_Yield(self, node):
        return self._refuse(node, "yield")

    def visit_YieldFrom(self, node):
        return self._refuse(node, "yield")

    def visit_Global(self, node):
        return self._refuse(node, "global")

    def visit_While(self, node):
        node = self.node_contents_visit(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_For(self, node):
        node = super().visit_For(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_FunctionDef(self, node):
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_Lambda(self, node):
        node = super().visit_Lambda(node)
        call = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[node.body], keywords=[])
        copy_locations(call, node.body)
        node.body = call
        return node

    def visit_BinOp(self, node):
        node = self.node_contents_visit(node)
        symbol = self._GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()),
                        args=[ast.Constant(symbol), node.left, node.right], keywords=[])
        copy_locations(call, node)
        return call

    def visit_FormattedValue(self, node):
        node = self.node_contents_visit(node)
        if node.format_spec is None:
            return node
        call = ast.Call(func=ast.Name("_format_", ast.Load()),
                        args=[node.value, node.format_spec, ast.Constant(node.conversion)], keywords=[])
        copy_locations(call, node)
        node.value = call
        node.format_spec = None
        node.conversion = -1
        return node

    def visit_Starred(self, node):
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            call = ast.Call(func=ast.Name("_getiter_", ast.Load()), args=[node.value], keywords=[])
            copy_locations(call, node)
            node.value = call
        return node


def _tick_statement(node: ast.AST) -> ast.stmt:
    statement = ast.Expr(ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[]))
    copy_locations(statement, node)
    return ast.fix_missing_locations(statement)


# --------------------------------------------------------------------------- safe values and guards

_SCALARS = (str, int, float, bool, type(None))
_DATES = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone)
_CONTAINERS = (list, tuple, dict, set, frozenset, range)
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_ATTR_TYPES = (*_SCALARS, bytes, *_DATES, *_CONTAINERS, *_VIEWS)
_WRITABLE = (list, dict, set)
_SUBSCRIPTABLE = (str, bytes, list, tuple, dict, range)
_CLASS_ATTR_TYPES = frozenset({str, int, float, bool, list, dict, set, frozenset, tuple, bytes,
                               _dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone})
# attributes that reach interpreter internals or escape the guards, whatever the object
_DENIED_ATTRIBUTES = frozenset({"format", "format_map", "mro", "translate", "maketrans", "fromkeys"})
_DENIED_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_", "im_")


class _Namespace:
    """A read-only bag of helper functions visible to scripts as ``name.attr`` (e.g. ``math.floor``)."""

    __slots__ = ("_members", "_name")

    def __init__(self, name: str, members: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_members", MappingProxyType(dict(members)))

    def __setattr__(self, key, value):  # pragma: no cover - scripts cannot reach it (_write_ refuses)
        raise AttributeError("read-only")

    def __repr__(self) -> str:
        return f"<{self._name}>"


class Budget:
    """The CPU-time and iteration budget of one run; owned by the thread that runs it."""

    __slots__ = ("_deadline", "_next_check", "count", "exceeded", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self._next_check = CHECK_EVERY
        self._deadline = time.thread_time() + limits.cpu_seconds
        self.exceeded: str | None = None

    def tick(self, value: Any = None) -> Any:
        self.count += 1
        if self.count >= self._next_check:
            self.check()
        return value

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self._next_check:
            self.check()

    def check(self) -> None:
        self._next_check = self.count + CHECK_EVERY
        if self.exceeded is None:
            if time.thread_time() > self._deadline:
                self.exceeded = f"the script used more than {self.limits.cpu_seconds:g} s of CPU time"
            elif self.count > self.limits.max_iterations:
                self.exceeded = f"the script ran more than {self.limits.max_iterations} loop iterations"
        if self.exceeded is not None:
            raise ScriptLimitExceeded(self.exceeded)


def _too_big(message: str) -> ScriptLimitExceeded:
    return ScriptLimitExceeded(message)


class _Guards:
    """The guard functions RestrictedPython's compiled code calls, bound to one run's budget."""

    def __init__(self, limits: Limits, budget: Budget) -> None:
        self.limits = limits
        self.budget = budget
        self.output: list[str] = []
        self.output_size = 0

    # -- sizes
    def check_length(self, n: int, what: str) -> None:
        if what == "string" and n > self.limits.max_string_length:
            raise _too_big(f"a string of {n} characters is over the limit of {self.limits.max_string_length}")
        if what != "string" and n > self.limits.max_items:
            raise _too_big(f"a {what} of {n} items is over the limit of {self.limits.max_items}")

    def check_sized(self, value: Any) -> None:
        if isinstance(value, str | bytes):
            self.check_length(len(value), "string")
        elif isinstance(value, list | tuple):
            self.check_length(len(value), "list")

    def check_int_bits(self, bits: int) -> None:
        if bits > self.limits.max_int_bits:
            raise _too_big(f"an integer of about {bits} bits is over the limit of {self.limits.max_int_bits} bits")

    # -- operators
    def binop(self, symbol: str, left: Any, right: Any) -> Any:
        if symbol == "*":
            self._check_repeat(left, right)
            self._check_repeat(right, left)
            if isinstance(left, int) and isinstance(right, int):
                self.check_int_bits(left.bit_length() + right.bit_length())
            return left * right
        if symbol == "+":
            if isinstance(left, str | bytes | list | tuple) and hasattr(right, "__len__"):
                self.check_length(len(left) + len(right), "string" if isinstance(left, str | bytes) else "list")
            return left + right
        if symbol == "**":
            return self.power(left, right)
        if symbol == "<<":
            if isinstance(left, int) and isinstance(right, int) and right > 0:
                self.check_int_bits(left.bit_length() + right)
            return left << right
        if symbol == "%":
            if isinstance(left, str | bytes):
                self._check_percent_format(left, right)
            return left % right
        raise _Refused(f"operator {symbol} is not supported")  # pragma: no cover - policy only emits the above

    def _check_repeat(self, sequence: Any, times: Any) -> None:
        if isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int):
            kind = "string" if isinstance(sequence, str | bytes) else "list"
            self.check_length(len(sequence) * max(times, 0), kind)

    def power(self, base: Any, exponent: Any, modulo: Any = None) -> Any:
        if modulo is not None:
            return pow(base, exponent, modulo)
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            self.check_int_bits((abs(base).bit_length() - 1) * exponent)
        return base**exponent

    def _check_percent_format(self, template: Any, args: Any) -> None:
        text = template.decode("latin-1") if isinstance(template, bytes) else template
        for match in re.finditer(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?", text):
            for part in match.groups():
                if part == "*":
                    raise _Refused("'*' widths in %-formatting are not allowed")
                if part and int(part) > self.limits.max_format_width:
                    raise _too_big(f"a format width of {part} is over the limit of {self.limits.max_format_width}")

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        symbol = op[:-1]
        if symbol in ("+", "*", "**", "<<", "%"):
            return self.binop(symbol, target, value)
        return _INPLACE[op](target, value)

    def format(self, value: Any, spec: Any = "", conversion: int = -1) -> str:
        if conversion == ord("r"):
            value = repr(value)
        elif conversion == ord("s"):
            value = str(value)
        elif conversion == ord("a"):
            value = ascii(value)
        spec = str(spec)
        for number in re.findall(r"\d+", spec):
            if int(number) > self.limits.max_format_width:
                raise _too_big(f"a format width of {number} is over the limit of {self.limits.max_format_width}")
        return format(value, spec)

    # -- access
    def getattr(self, obj: Any, name: str, default: Any = _Refused) -> Any:
        if not isinstance(name, str):
            raise _Refused("attribute names must be text")
        if name.startswith(_DENIED_PREFIXES) or name in _DENIED_ATTRIBUTES:
            raise _Refused(f"access to the attribute {name!r} is not allowed")
        if isinstance(obj, _Namespace):
            if name in obj._members:
                return obj._members[name]
            if default is not _Refused:
                return default
            raise AttributeError(f"{obj._name} has no attribute {name!r}")
        if isinstance(obj, BaseException):
            if name == "args":
                return obj.args
            raise _Refused(f"access to the attribute {name!r} of an exception is not allowed")
        if isinstance(obj, type):
            if obj not in _CLASS_ATTR_TYPES:
                raise _Refused(f"access to attributes of {obj.__name__} is not allowed")
        elif not isinstance(obj, _ATTR_TYPES):
            raise _Refused(f"access to attributes of a {type(obj).__name__} object is not allowed")
        try:
            value = getattr(obj, name)
        except AttributeError:
            if default is not _Refused:
                return default
            raise
        if isinstance(obj, str | bytes) and name in _SIZED_STR_METHODS:
            return _SIZED_STR_METHODS[name](self, obj, value)
        if isinstance(obj, list) and name == "extend":
            return self._sized_extend(obj)
        return value

    def hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.getattr(obj, name)
        except (AttributeError, _Refused):
            return False
        return True

    def _sized_extend(self, target: list) -> Callable[[Iterable], None]:
        def extend(items: Iterable) -> None:
            if hasattr(items, "__len__"):
                self.check_length(len(target) + len(items), "list")
                target.extend(items)
            else:
                for item in self.getiter(items):
                    target.append(item)

        return extend

    def getitem(self, obj: Any, key: Any) -> Any:
        if not isinstance(obj, _SUBSCRIPTABLE):
            raise _Refused(f"indexing a {type(obj).__name__} object is not allowed")
        return obj[key]

    def write(self, obj: Any) -> Any:
        if isinstance(obj, _WRITABLE):
            return obj
        raise _Refused(f"changing a {type(obj).__name__} object is not allowed")

    def getiter(self, obj: Any) -> Iterable:
        if isinstance(obj, range):
            self.check_length(len(obj), "range")
        return self._counted(iter(obj))

    def _counted(self, iterator):
        tick = self.budget.tick
        for item in iterator:
            tick()
            yield item

    def apply(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    # -- builtins with limits
    def range(self, *args: int) -> range:
        value = range(*args)
        self.check_length(len(value), "range")
        return value

    def sum(self, values: Iterable, start: Any = 0) -> Any:
        if not isinstance(start, int | float):
            raise _Refused("sum() adds numbers only; use ''.join() for text and a comprehension for lists")
        total = start
        for value in self.getiter(values):
            if not isinstance(value, int | float):
                raise TypeError(f"sum() adds numbers, not {type(value).__name__}")
            total = total + value
        return total

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **_ignored: Any) -> None:
        text = str(sep).join(str(o) for o in objects) + str(end)
        if self.output_size + len(text) <= self.limits.max_output_bytes:
            self.output.append(text)
            self.output_size += len(text)


_INPLACE = {"-=": operator.isub, "/=": operator.itruediv, "//=": operator.ifloordiv, ">>=": operator.irshift,
            "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul}


def _sized_join(guards: _Guards, sep: Any, method: Callable) -> Callable:
    def join(items: Iterable) -> Any:
        items = list(guards.getiter(items))
        total = len(sep) * max(len(items) - 1, 0) + sum(len(i) for i in items if isinstance(i, str | bytes))
        guards.check_length(total, "string")
        return method(items)

    return join


def _sized_replace(guards: _Guards, text: Any, method: Callable) -> Callable:
    def replace(old: Any, new: Any, count: int = -1) -> Any:
        occurrences = text.count(old) if old else len(text) + 1
        if count >= 0:
            occurrences = min(occurrences, count)
        guards.check_length(len(text) + occurrences * max(len(new) - len(old), 0), "string")
        return method(old, new, count)

    return replace


def _sized_pad(guards: _Guards, text: Any, method: Callable) -> Callable:
    def pad(width: int, *args: Any) -> Any:
        guards.check_length(int(width), "string")
        return method(width, *args)

    return pad


def _sized_expandtabs(guards: _Guards, text: Any, method: Callable) -> Callable:
    def expandtabs(tabsize: int = 8) -> Any:
        guards.check_length(len(text) + text.count("\t" if isinstance(text, str) else b"\t") * max(tabsize, 0),
                            "string")
        return method(tabsize)

    return expandtabs


_SIZED_STR_METHODS = {"join": _sized_join, "replace": _sized_replace, "ljust": _sized_pad, "rjust": _sized_pad,
                      "center": _sized_pad, "zfill": _sized_pad, "expandtabs": _sized_expandtabs}


def _helpers(now: Callable[[], _dt.datetime]) -> dict[str, Any]:
    """Date/time and math helpers every script and expression sees."""

    def today() -> _dt.date:
        return now().date()

    def parse_datetime(text: str) -> _dt.datetime:
        value = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)

    def parse_date(text: str) -> _dt.date:
        return _dt.date.fromisoformat(str(text))

    math_ns = _Namespace("math", {name: getattr(math, name) for name in (
        "ceil", "floor", "trunc", "sqrt", "fabs", "exp", "log", "log10", "log2", "isclose", "isfinite",
        "isnan", "isinf", "pi", "e", "inf", "nan", "fsum", "copysign", "hypot")})
    return {"now": now, "today": today, "parse_datetime": parse_datetime, "parse_date": parse_date,
            "datetime": _dt.datetime, "date": _dt.date, "timedelta": _dt.timedelta, "timezone": _dt.timezone,
            "UTC": _dt.UTC, "math": math_ns}


_PLAIN_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False,
    "abs": abs, "all": all, "any": any, "bool": bool, "chr": chr, "dict": dict, "divmod": divmod,
    "enumerate": enumerate, "filter": filter, "float": float, "frozenset": frozenset, "int": int,
    "isinstance": isinstance, "len": len, "list": list, "map": map, "max": max, "min": min, "ord": ord,
    "repr": repr, "reversed": reversed, "round": round, "set": set, "sorted": sorted, "str": str,
    "tuple": tuple, "zip": zip,
    "Exception": Exception, "ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError,
    "IndexError": IndexError, "LookupError": LookupError, "ArithmeticError": ArithmeticError,
    "ZeroDivisionError": ZeroDivisionError, "AssertionError": AssertionError, "RuntimeError": RuntimeError,
    "NameError": NameError, "AttributeError": AttributeError,
}


# --------------------------------------------------------------------------- the sandbox


@dataclass(frozen=True)
class _Compiled:
    code: Any
    source: str
    filename: str


class Sandbox:
    """Compiles (with a cache) and runs scripts and expressions under the limits; thread-safe."""

    def __init__(self, limits: Limits | None = None, *, now: Callable[[], _dt.datetime] | None = None,
                 max_data_bytes: int | None = 4 * 1024 * 1024, cache_size: int = 2048) -> None:
        self.limits = limits or Limits()
        self.max_data_bytes = max_data_bytes
        self._now = now or (lambda: _dt.datetime.now(_dt.UTC))
        self._cache: OrderedDict[tuple[str, str], _Compiled] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings, *, now: Callable[[], _dt.datetime] | None = None) -> Sandbox:
        limits = Limits(cpu_seconds=float(settings.script_cpu_seconds),
                        max_output_bytes=int(settings.script_max_output_bytes),
                        max_string_length=max(int(settings.max_variables_bytes), 1024))
        return cls(limits, now=now, max_data_bytes=int(settings.max_variables_bytes))

    # -- compiling
    def compile_expression(self, expression: str) -> _Compiled:
        """Translate (JUEL → Python) and compile an expression; raises SandboxError if refused."""
        key = ("eval", expression)
        compiled = self._cached(key)
        if compiled is not None:
            return compiled
        try:
            source = to_python(expression)
        except ExpressionSyntaxError as error:
            raise SandboxError(str(error), kind="SyntaxError", line=1, source_line=expression.strip()) from None
        compiled = self._compile(source, "eval", EXPRESSION_FILENAME)
        self._store(key, compiled)
        return compiled

    def compile_script(self, script: str) -> _Compiled:
        """Compile a script task's code; raises SandboxError if refused."""
        key = ("exec", script)
        compiled = self._cached(key)
        if compiled is None:
            compiled = self._compile(script, "exec", SCRIPT_FILENAME)
            self._store(key, compiled)
        return compiled

    def check(self, text: str, *, script: bool) -> None:
        """Raise SandboxError when the script or expression would be refused before it runs."""
        self.compile_script(text) if script else self.compile_expression(text)

    def _cached(self, key: tuple[str, str]) -> _Compiled | None:
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                self._cache.move_to_end(key)
            return compiled

    def _store(self, key: tuple[str, str], compiled: _Compiled) -> None:
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _compile(self, source: str, mode: str, filename: str) -> _Compiled:
        lines = source.splitlines()
        try:
            tree = ast.parse(source, filename, mode)
        except SyntaxError as error:
            line = error.lineno or 1
            raise SandboxError(f"syntax error: {error.msg}", kind="SyntaxError", line=line,
                               source_line=_line(lines, line)) from None
        except (ValueError, MemoryError, RecursionError) as error:
            raise SandboxError(f"cannot read the script: {error}", kind="SyntaxError") from None
        policy = _SandboxPolicy([], [], {})
        try:
            tree = policy.visit(tree)
        except RecursionError:
            raise SandboxError("the script is nested too deeply", kind="SyntaxError") from None
        if policy.positions:
            line, message = policy.positions[0]
            raise SandboxError(_plain(message), kind="Refused", line=line, source_line=_line(lines, line))
        ast.fix_missing_locations(tree)
        return _Compiled(compile(tree, filename, mode), source, filename)

    # -- running
    def evaluate(self, expression: str, data: Mapping[str, Any] | None = None,
                 external: Mapping[str, Any] | None = None) -> Any:
        """The value of an expression (JUEL or Python) over the data; the data is not changed."""
        compiled = self.compile_expression(expression)
        scope = self._scope(compiled, data, external)
        return self._run(compiled, scope, eval)

    def execute(self, script: str, data: dict[str, Any], external: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a script over ``data`` and update ``data`` in place with the variables it leaves.

        Functions and other non-data values the script defines are dropped; values that are not
        JSON-like (or dates) are refused, as is a result over the size limit. Returns ``data``.
        """
        compiled = self.compile_script(script)
        scope = self._scope(compiled, data, external)
        self._run(compiled, scope, exec)
        reserved = scope.pop("__reserved__")
        external = external or {}
        updated: dict[str, Any] = {}
        for name, value in scope.items():
            if name.startswith("_") or (name in reserved and value is reserved[name]):
                continue
            if name in external and name not in data and value is external[name]:
                continue
            if callable(value) or isinstance(value, _Namespace):
                continue  # functions the script defined are not data (as in Spiff)
            updated[name] = _to_data(name, value)
        self._check_data_size(updated)
        data.clear()
        data.update(updated)
        return data

    def _scope(self, compiled: _Compiled, data: Mapping[str, Any] | None,
               external: Mapping[str, Any] | None) -> dict[str, Any]:
        budget = Budget(self.limits)
        guards = _Guards(self.limits, budget)
        builtins = dict(_PLAIN_BUILTINS)
        builtins.update(range=guards.range, sum=guards.sum, pow=guards.power, format=guards.format,
                        getattr=guards.getattr, hasattr=guards.hasattr)
        names = _helpers(self._now)
        scope: dict[str, Any] = {
            "__builtins__": builtins, "__name__": "script",
            "_getattr_": guards.getattr, "_getitem_": guards.getitem, "_getiter_": guards.getiter,
            "_write_": guards.write, "_apply_": guards.apply, "_inplacevar_": guards.inplacevar,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence, "_unpack_sequence_": guarded_unpack_sequence,
            "_binop_": guards.binop, "_format_": guards.format, "_tick_": budget.tick,
            "_print_": lambda _getattr=None: _Printer(guards), "__guards__": guards,
        }
        scope.update(names)
        scope["__reserved__"] = dict(scope)
        if external:
            scope.update(external)
        if data:
            scope.update(data)
        return scope

    def _run(self, compiled: _Compiled, scope: dict[str, Any], runner: Callable) -> Any:
        try:
            return runner(compiled.code, scope)
        except ScriptLimitExceeded as error:
            raise self._error(compiled, error, "LimitExceeded", str(error), scope) from None
        except _Refused as error:
            raise self._error(compiled, error, "Refused", str(error), scope) from None
        except MemoryError as error:
            raise self._error(compiled, error, "LimitExceeded", "the script ran out of memory", scope) from None
        except RecursionError as error:
            raise self._error(compiled, error, "RecursionError", "too deep recursion", scope) from None
        except Exception as error:  # noqa: BLE001 - any failure in user code is reported, never re-raised
            raise self._error(compiled, error, type(error).__name__, _describe(error), scope) from None

    def _error(self, compiled: _Compiled, error: BaseException, kind: str, message: str,
               scope: Mapping[str, Any]) -> SandboxError:
        line = _error_line(compiled.filename, error)
        suggestion = None
        if isinstance(error, NameError) and getattr(error, "name", None):
            candidates = [n for n in scope if not n.startswith("_")] + list(scope["__builtins__"])
            matches = difflib.get_close_matches(error.name, candidates, n=1)
            if matches:
                suggestion = matches[0]
                message = f"{message}; did you mean '{suggestion}'?"
        source_line = _line(compiled.source.splitlines(), line) if line else None
        return SandboxError(message, kind=kind, line=line, source_line=source_line, suggestion=suggestion)

    def _check_data_size(self, data: Mapping[str, Any]) -> None:
        if self.max_data_bytes is None:
            return
        size = len(json.dumps(data, default=str))
        if size > self.max_data_bytes:
            raise SandboxError(f"the script left {size} bytes of data, over the limit of {self.max_data_bytes}",
                               kind="LimitExceeded")


class _Printer:
    """``print`` inside a script: output is kept (up to a limit) on the run's guards, never on stdout."""

    def __init__(self, guards: _Guards) -> None:
        self._guards = guards

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        self._guards.print(*objects, **kwargs)

    def __call__(self) -> str:
        return "".join(self._guards.output)


def _to_data(name: str, value: Any, depth: int = 0) -> Any:
    """A JSON-like copy of a value a script left in the data; tuples/sets become lists."""
    if depth > 100:
        raise SandboxError(f"the variable '{name}' is nested too deeply", kind="InvalidData")
    if isinstance(value, _SCALARS) or isinstance(value, _DATES):
        if isinstance(value, float) and not math.isfinite(value):
            raise SandboxError(f"the variable '{name}' is {value}, which is not a storable number", kind="InvalidData")
        return value
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if isinstance(key, int | float | bool) or key is None:
                    key = json.dumps(key)
                else:
                    raise SandboxError(f"the variable '{name}' has a key of type {type(key).__name__}",
                                       kind="InvalidData")
            result[key] = _to_data(name, item, depth + 1)
        return result
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_to_data(name, item, depth + 1) for item in items]
    raise SandboxError(f"the variable '{name}' holds a {type(value).__name__}, which cannot be stored "
                       "(use text, numbers, booleans, lists, dicts or dates)", kind="InvalidData")


def _error_line(filename: str, error: BaseException) -> int | None:
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def _line(lines: list[str], number: int | None) -> str | None:
    if number is None or not 1 <= number <= len(lines):
        return None
    return lines[number - 1].strip()


def _plain(message: str) -> str:
    return re.sub(r"^Line \d+: ", "", message)


def _describe(error: BaseException) -> str:
    detail = str(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__


def to_script_error(error: SandboxError, *, element_id: str | None = None,
                    element_name: str | None = None, what: str = "script") -> ScriptError:
    """The domain error for a failed run, naming the element, line and offending line."""
    where = f" in {element_id}" if element_id else ""
    at = f" at line {error.line}" if error.line else ""
    code = f": {error.source_line}" if error.source_line else ""
    detail = f"The {what}{where} failed{at}{code} — {error.message}"
    return ScriptError(detail, element_id=element_id, element_name=element_name, line=error.line,
                       source_line=error.source_line, error_type=error.kind, message=error.message,
                       suggestion=error.suggestion)
