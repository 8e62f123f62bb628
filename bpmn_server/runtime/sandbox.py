"""The script sandbox: script tasks and expressions run as RestrictedPython with a small set of safe
builtins, guarded attribute/item/iteration access, no imports, a per-run CPU-time budget and size
caps on every operation that can allocate a lot at once (``'a' * 10**10``, ``10**10**10``).

The CPU budget is counted by the script itself: the compiler inserts a ``_tick_()`` into every loop
body, function body, lambda and comprehension filter; every ``CHECK_EVERY`` ticks the run's ``time.thread_time()`` is compared with its deadline. No signal, no
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from ..errors import ScriptError
from ..parser.expressions import ExpressionSyntaxError, to_python

__all__ = ["BpmnError", "Limits", "Sandbox", "SandboxError", "ScriptLimitExceeded", "ThrownBpmnError"]

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
    max_alloc_bytes: int = 256 * 1024 * 1024  # estimated bytes copied/built by C-level operations per run


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


class BpmnError(Exception):  # noqa: N818 - the name BPMN authors know (Camunda's BpmnError)
    """``raise BpmnError("CODE", "message")`` in a script throws the BPMN error with that code, which
    an error boundary event or error event sub-process can catch; any other exception is an incident."""

    def __init__(self, code: Any, message: Any = None) -> None:
        super().__init__(code, message)
        self.code = str(code)[:200]
        self.message = None if message is None else str(message)[:500]


class ThrownBpmnError(Exception):  # noqa: N818 - a signal to the script engine, not a failure
    """A script raised ``BpmnError``: the engine throws it as a BPMN error event from the task."""

    def __init__(self, code: str, message: str | None, line: int | None) -> None:
        super().__init__(f"BPMN error '{code}'" + (f": {message}" if message else ""))
        self.code = code
        self.message = message
        self.line = line


class _Refused(Exception):  # noqa: N818 - raised into the script for a refused operation
    """An operation the sandbox does not allow (dunder access, unsafe method, unknown object)."""


# --------------------------------------------------------------------------- compile-time policy


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, tightened: no imports, classes, generators or async; every loop,
    function and lambda ticks the CPU budget; size-sensitive operators (+ * ** << %) call a guard."""

    _GUARDED_OPS = {ast.Add: "_add_", ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Mod: "_mod_"}

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

    def visit_While(self, node):
        node = self.node_contents_visit(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_For(self, node):
        node = super().visit_For(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_comprehension(self, node):
        node = super().visit_comprehension(node)
        tick = ast.Call(func=ast.Name("_tick_", ast.Load()), args=[ast.Constant(True)], keywords=[])
        copy_locations(tick, node.iter)
        node.ifs.insert(0, tick)
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
        guard = self._GUARDED_OPS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        copy_locations(call, node)
        return call

    _GUARDED_AUGMENTED = {ast.Add: "_iadd_", ast.Mult: "_imul_", ast.Pow: "_pow_", ast.LShift: "_lshift_",
                          ast.Mod: "_mod_"}

    def visit_AugAssign(self, node):
        """``n += 1`` stays a native in-place operation (cheap); the size-sensitive operators become
        ``n = _iadd_(n, 1)``; attribute and item targets are refused by RestrictedPython."""
        if isinstance(node.target, ast.Subscript):  # counts[k] += 1
            node = self.node_contents_visit(node)
            target = node.target
            call = ast.Call(func=ast.Name("_augitem_", ast.Load()),
                            args=[target.value, target.slice, ast.Constant(type(node.op).__name__), node.value],
                            keywords=[])
            statement = ast.Expr(call)
            copy_locations(statement, node)
            return ast.fix_missing_locations(statement)
        if not isinstance(node.target, ast.Name):
            return super().visit_AugAssign(node)
        node = self.node_contents_visit(node)
        self.check_name(node.target, node.target.id)
        guard = self._GUARDED_AUGMENTED.get(type(node.op))
        if guard is None:
            return node
        assign = ast.Assign(targets=[ast.Name(node.target.id, ast.Store())],
                            value=ast.Call(func=ast.Name(guard, ast.Load()),
                                           args=[ast.Name(node.target.id, ast.Load()), node.value], keywords=[]))
        copy_locations(assign, node)
        return ast.fix_missing_locations(assign)

    def visit_FormattedValue(self, node):
        node = self.node_contents_visit(node)
        spec = node.format_spec if node.format_spec is not None else ast.Constant("")
        call = ast.Call(func=ast.Name("_format_", ast.Load()),
                        args=[node.value, spec, ast.Constant(node.conversion)], keywords=[])
        copy_locations(call, node)
        node.value = call
        node.format_spec = None
        node.conversion = -1
        return node

    def visit_Dict(self, node):
        node = self.node_contents_visit(node)
        for index, key in enumerate(node.keys):
            if key is None:  # ``{**mapping}`` copies the mapping: charge it
                call = ast.Call(func=ast.Name("_mapping_", ast.Load()), args=[node.values[index]], keywords=[])
                copy_locations(call, node.values[index])
                node.values[index] = call
        return node

    def visit_Starred(self, node):
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            call = ast.Call(func=ast.Name("_sized_", ast.Load()), args=[node.value], keywords=[])
            copy_locations(call, node)
            node.value = call
        return node


def _tick_statement(node: ast.AST) -> ast.stmt:
    """``_tick_()`` placed (and numbered) like the first statement of a loop or function body."""
    statement = ast.Expr(ast.Call(func=ast.Name("_tick_", ast.Load()), args=[], keywords=[]))
    copy_locations(statement, node.body[0] if getattr(node, "body", None) else node)
    return ast.fix_missing_locations(statement)


# --------------------------------------------------------------------------- safe values and guards

_SCALARS = (str, int, float, bool, type(None))
_DATES = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone)
_CONTAINERS = (list, tuple, dict, set, frozenset, range)
_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_ATTR_TYPES = (*_SCALARS, bytes, *_DATES, *_CONTAINERS, *_VIEWS)
_WRITABLE = (list, dict, set)
_SEQUENCES = frozenset({str, bytes, list, tuple})
_SIZED = (list, tuple, set, frozenset, dict, str, bytes, range, *_VIEWS)
_SUBSCRIPTABLE = (str, bytes, list, tuple, dict, range)
_CLASS_ATTR_TYPES = frozenset({str, int, float, bool, list, dict, set, frozenset, tuple, bytes,
                               _dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone})
# the only attributes of the classes themselves (``datetime.fromisoformat``): unbound methods such as
# ``str.join`` would skip the size guards that bound methods get
_CLASS_ATTRIBUTES = frozenset({"fromisoformat", "strptime", "combine", "fromtimestamp", "now", "today",
                               "fromordinal", "min", "max", "resolution", "utc"})
# attributes that reach interpreter internals, format objects by attribute path, or allocate unchecked
_DENIED_ATTRIBUTES = frozenset({"format", "format_map", "mro", "translate", "maketrans", "to_bytes", "mapping"})
_DENIED_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_", "im_")
_CHARGE_BYTES = 8  # one budget unit ≈ one reference; text is charged per 8 characters
_MAX_ZIP = 32
_MAX_ROUND_DIGITS = 1000
_MAX_MESSAGE = 500  # characters of a script's exception text kept in the error

_CURRENT: ContextVar[_Guards | None] = ContextVar("bpmn_server_sandbox_run", default=None)


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
    """The CPU-time and operation budget of one run; used only by the thread that runs it."""

    __slots__ = ("_deadline", "_max_units", "_next_check", "allocated", "count", "exceeded", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.count = 0
        self.allocated = 0
        self._max_units = limits.max_alloc_bytes // _CHARGE_BYTES
        self._next_check = CHECK_EVERY
        self._deadline = time.thread_time() + limits.cpu_seconds
        self.exceeded: str | None = None

    def tick(self, value: Any = None) -> Any:
        """One loop iteration, function call or lambda; passes ``value`` through (for lambdas)."""
        self.count += 1
        if self.count >= self._next_check:
            self.check()
        return value

    def charge(self, units: int) -> None:
        """Account for memory a C-level operation is about to allocate (copies, repeats, joins)."""
        self.allocated += units
        if self.allocated > self._max_units:
            self.exceeded = self.exceeded or (
                f"the script built more than {self.limits.max_alloc_bytes // (1024 * 1024)} MiB of values")
            self._next_check = 0
            raise ScriptLimitExceeded(self.exceeded)
        self.tick()

    def check(self) -> None:
        """Compare this thread's CPU time with the deadline; once exceeded, every later tick raises."""
        self._next_check = self.count + CHECK_EVERY
        if self.exceeded is None:
            if time.thread_time() > self._deadline:
                self.exceeded = f"the script used more than {self.limits.cpu_seconds:g} s of CPU time"
        if self.exceeded is not None:
            self._next_check = 0  # from now on every tick raises, so a bare ``except:`` cannot go on
            raise ScriptLimitExceeded(self.exceeded)


class _Guards:
    """The guard functions RestrictedPython's compiled code calls, bound to one run's budget."""

    def __init__(self, limits: Limits, budget: Budget) -> None:
        self.limits = limits
        self.budget = budget
        self.output: list[str] = []
        self.output_size = 0

    # -- sizes
    def check_length(self, n: int, what: str) -> None:
        if what == "string":
            if n > self.limits.max_string_length:
                raise ScriptLimitExceeded(
                    f"a string of {n} characters is over the limit of {self.limits.max_string_length}")
            self.budget.charge(n // _CHARGE_BYTES)
        else:
            if n > self.limits.max_items:
                raise ScriptLimitExceeded(f"a {what} of {n} items is over the limit of {self.limits.max_items}")
            self.budget.charge(n)

    def check_int_bits(self, bits: int) -> None:
        if bits > self.limits.max_int_bits:
            raise ScriptLimitExceeded(
                f"an integer of about {bits} bits is over the limit of {self.limits.max_int_bits} bits")
        self.budget.charge(bits // 64)

    def measure(self, value: Any) -> None:
        """Refuse turning ``value`` into text when the text would be over the limit (a bounded walk)."""
        if isinstance(value, str | int | float | bool) or value is None:
            return
        items = _text_items(value, self.limits.max_items, self.limits.max_string_length)
        if items is None:
            raise ScriptLimitExceeded(
                f"the text of this value would be over the limit of {self.limits.max_string_length} characters")
        self.budget.charge(items)

    # -- operators (numbers take the first, cheap branch)
    def add(self, left: Any, right: Any) -> Any:
        if type(left) in _SEQUENCES and type(right) in _SEQUENCES:
            self.check_length(len(left) + len(right), "string" if isinstance(left, str | bytes) else "list")
        return left + right

    def iadd(self, left: Any, right: Any) -> Any:
        """``x += y``: the checks of ``+``, then Python's in-place add (a list is extended in place)."""
        if type(left) in _SEQUENCES and type(right) in _SEQUENCES:
            self.check_length(len(left) + len(right), "string" if isinstance(left, str | bytes) else "list")
        elif type(left) is list:
            right = list(self.sized_input(right))
            self.check_length(len(left) + len(right), "list")
        left += right
        return left

    def augitem(self, container: Any, key: Any, op: str, value: Any) -> None:
        """``container[key] op= value`` with the guards of reading, writing and the operator."""
        current = self.getitem(container, key)
        guarded = {"Add": self.iadd, "Mult": self.imul, "Pow": self.power, "LShift": self.lshift,
                   "Mod": self.mod}.get(op)
        result = guarded(current, value) if guarded is not None else _AUGMENTED[op](current, value)
        self.write(container)[key] = result

    def imul(self, left: Any, right: Any) -> Any:
        if type(left) is list:
            self._check_repeat(left, right)
            left *= right
            return left
        return self.mul(left, right)

    def mul(self, left: Any, right: Any) -> Any:
        if type(left) is int and type(right) is int:
            bits = left.bit_length() + right.bit_length()
            if bits > 1024:  # small products cost nothing worth counting
                self.check_int_bits(bits)
        elif type(left) is not float and type(right) is not float:
            self._check_repeat(left, right)
            self._check_repeat(right, left)
        return left * right

    def mod(self, left: Any, right: Any) -> Any:
        if type(left) is str or type(left) is bytes:
            self._check_percent_format(left, right)
        return left % right

    def lshift(self, left: Any, right: Any) -> Any:
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            self.check_int_bits(left.bit_length() + right)
        return left << right

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
                    raise ScriptLimitExceeded(
                        f"a format width of {part} is over the limit of {self.limits.max_format_width}")
        self.measure(args)
        self.check_length(len(text), "string")

    def format(self, value: Any, spec: Any = "", conversion: int = -1) -> str:
        """``format()``, f-string fields and their conversions, with format widths limited."""
        self.measure(value)
        if conversion == ord("r"):
            value = repr(value)
        elif conversion == ord("s"):
            value = str(value)
        elif conversion == ord("a"):
            value = ascii(value)
        spec = str(spec)
        self._check_widths(spec)
        return format(value, spec)

    def _check_widths(self, spec: str) -> None:
        for number in re.findall(r"\d+", spec):
            if int(number) > self.limits.max_format_width:
                raise ScriptLimitExceeded(
                    f"a format width of {number} is over the limit of {self.limits.max_format_width}")

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
        if type(obj) is _GuardedTypeMeta:
            obj = obj.real
        if isinstance(obj, BaseException):
            if name == "args":
                return obj.args
            raise _Refused(f"access to the attribute {name!r} of an exception is not allowed")
        if isinstance(obj, type):
            if obj not in _CLASS_ATTR_TYPES or name not in _CLASS_ATTRIBUTES:
                raise _Refused(f"access to {obj.__name__}.{name} is not allowed")
        elif not isinstance(obj, _ATTR_TYPES):
            raise _Refused(f"access to attributes of a {type(obj).__name__} object is not allowed")
        try:
            value = getattr(obj, name)
        except AttributeError:
            if isinstance(obj, dict) and name in obj:
                return obj[name]  # JUEL/Camunda ``${order.amount}`` on a map reads the key
            if default is not _Refused:
                return default
            raise
        if isinstance(obj, str | bytes) and name in _SIZED_STR_METHODS:
            return _SIZED_STR_METHODS[name](self, obj, value)
        if name == "strftime" and not isinstance(obj, type):
            return self._sized_strftime(value)
        if isinstance(obj, list | dict | set):
            if name == "extend" and isinstance(obj, list):
                return self._sized_extend(obj)
            if name == "copy":
                self.check_length(len(obj), "list")
        return value

    def hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.getattr(obj, name)
        except (AttributeError, _Refused):
            return False
        return True

    def _sized_extend(self, target: list) -> Callable[[Iterable], None]:
        def extend(items: Iterable) -> None:
            if isinstance(items, list | tuple | set | frozenset | dict | str | range):
                self.check_length(len(target) + len(items), "list")
                target.extend(items)
            else:
                for item in self.sized_input(items):
                    target.append(item)

        return extend

    def _sized_strftime(self, method: Callable) -> Callable:
        def strftime(pattern: str) -> str:
            for number in re.findall(r"%[-_0^#]*(\d+)", str(pattern)):
                if int(number) > self.limits.max_format_width:
                    raise ScriptLimitExceeded(
                        f"a format width of {number} is over the limit of {self.limits.max_format_width}")
            self.check_length(len(str(pattern)) * 4, "string")
            return method(pattern)

        return strftime

    def getitem(self, obj: Any, key: Any) -> Any:
        if not isinstance(obj, _SUBSCRIPTABLE):
            raise _Refused(f"indexing a {type(obj).__name__} object is not allowed")
        value = obj[key]
        if isinstance(key, slice):
            self.budget.charge(len(value))
        return value

    def write(self, obj: Any) -> Any:
        if isinstance(obj, _WRITABLE):
            return obj
        what = repr(obj) if isinstance(obj, _Namespace) else f"a {type(obj).__name__} object"
        raise _Refused(f"changing {what} is not allowed")

    def mapping(self, obj: Any) -> Any:
        if isinstance(obj, dict):
            self.check_length(len(obj), "dict")
        return obj

    def getiter(self, obj: Any) -> Iterable:
        """``for``/comprehension iteration: the loop bodies tick, so only ranges are checked here."""
        if type(obj) is range:
            self.check_length(len(obj), "range")
        return iter(obj)

    def _counted(self, iterator):
        tick = self.budget.tick
        for item in iterator:
            tick()
            yield item

    def sized_input(self, values: Any) -> Any:
        """An argument of a copying builtin (list(), sorted(), …): charged by size, or iterated with ticks."""
        if isinstance(values, _SIZED):
            self.check_length(len(values), "range" if isinstance(values, range) else "list")
            return values
        return self._counted(iter(values))

    def apply(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        self.budget.charge(len(args) + len(kwargs))
        return function(*args, **kwargs)

    def round(self, number: Any, ndigits: Any = None) -> Any:
        if ndigits is None:
            return round(number)
        if isinstance(ndigits, int) and abs(ndigits) > _MAX_ROUND_DIGITS:
            raise ScriptLimitExceeded(f"round() to more than {_MAX_ROUND_DIGITS} digits is not allowed")
        return round(number, ndigits)

    # -- builtins with limits
    def range(self, *args: int) -> range:
        value = range(*args)
        self.check_length(len(value), "range")
        return value

    def sum(self, values: Iterable, start: Any = 0) -> Any:
        if not isinstance(start, int | float):
            raise _Refused("sum() adds numbers only; use ''.join() for text and a comprehension for lists")
        return sum(values, start)  # a number plus a list or text raises TypeError at once

    def zip(self, *iterables: Iterable, **kwargs: Any) -> Iterable:
        if len(iterables) > _MAX_ZIP:
            raise ScriptLimitExceeded(f"zip() of more than {_MAX_ZIP} sequences is not allowed")
        return zip(*iterables, **kwargs)  # noqa: B905 - zip() as scripts know it

    def text(self, value: Any = "", *args: Any) -> str:
        if args:
            return str(value, *args)
        self.measure(value)
        result = str(value)
        self.check_length(len(result), "string")
        return result

    def repr(self, value: Any) -> str:
        self.measure(value)
        return repr(value)

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **_ignored: Any) -> None:
        text = str(sep).join(self.text(o) for o in objects) + str(end)
        if self.output_size + len(text) <= self.limits.max_output_bytes:
            self.output.append(text)
            self.output_size += len(text)


def _sized_join(guards: _Guards, sep: Any, method: Callable) -> Callable:
    def join(items: Iterable) -> Any:
        items = list(guards.sized_input(items))
        total = len(sep) * max(len(items) - 1, 0) + sum(len(i) for i in items if isinstance(i, str | bytes))
        guards.check_length(total, "string")
        return method(items)

    return join


def _sized_split(guards: _Guards, text: Any, method: Callable) -> Callable:
    def split(sep: Any = None, maxsplit: int = -1) -> Any:
        parts = text.count(sep) + 1 if sep else len(text) // 2 + 1
        if maxsplit >= 0:
            parts = min(parts, maxsplit + 1)
        guards.check_length(parts, "list")
        return method(sep, maxsplit)

    return split


_LINE_BREAKS = ("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _sized_splitlines(guards: _Guards, text: Any, method: Callable) -> Callable:
    def splitlines(keepends: bool = False) -> Any:
        breaks = _LINE_BREAKS if isinstance(text, str) else (b"\n", b"\r")
        guards.check_length(sum(text.count(b) for b in breaks) + 1, "list")
        return method(keepends)

    return splitlines


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
        tabs = text.count("\t" if isinstance(text, str) else b"\t")
        guards.check_length(len(text) + tabs * max(tabsize, 0), "string")
        return method(tabsize)

    return expandtabs


_AUGMENTED = {"Sub": operator.isub, "Div": operator.itruediv, "FloorDiv": operator.ifloordiv,
              "RShift": operator.irshift, "BitAnd": operator.iand, "BitOr": operator.ior, "BitXor": operator.ixor,
              "MatMult": operator.imatmul}

_SIZED_STR_METHODS = {"join": _sized_join, "replace": _sized_replace, "ljust": _sized_pad, "rjust": _sized_pad,
                      "center": _sized_pad, "zfill": _sized_pad, "expandtabs": _sized_expandtabs,
                      "split": _sized_split, "rsplit": _sized_split, "splitlines": _sized_splitlines}


def _text_items(value: Any, limit_items: int, limit_chars: int) -> int | None:
    """How many values ``str(value)`` would render, or None when its text would be over the limits.
    Shared references count every time they are rendered, as ``str`` renders them."""
    items, chars = 0, 0
    stack = [value]
    while stack:
        item = stack.pop()
        items += 1
        if isinstance(item, str | bytes):
            chars += len(item) + 2
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset, *_VIEWS)):
            stack.extend(item)
        elif isinstance(item, BaseException):
            stack.extend(item.args)
        else:
            chars += 24
        if items > limit_items or chars > limit_chars:
            return None
    return items


# --------------------------------------------------------------------------- builtins


def _current() -> _Guards:
    guards = _CURRENT.get()
    if guards is None:
        raise _Refused("this helper works only inside a script")
    return guards


class _GuardedTypeMeta(type):
    """A stand-in for a builtin type: ``isinstance(x, list)`` works, ``list(x)`` is charged."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.real)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.construct(_current(), *args, **kwargs)

    def __repr__(cls) -> str:
        return repr(cls.real)


class _GuardedType(metaclass=_GuardedTypeMeta):
    real: type = object

    @staticmethod
    def construct(guards: _Guards, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def _guarded_type(real: type, construct: Callable[..., Any]) -> type:
    return _GuardedTypeMeta(real.__name__, (_GuardedType,), {"real": real, "construct": staticmethod(construct),
                                                               "__slots__": ()})


def _copying(real: type) -> Callable[..., Any]:
    def construct(guards: _Guards, *args: Any, **kwargs: Any) -> Any:
        guards.budget.charge(len(kwargs))
        if args:
            args = (guards.sized_input(args[0]), *args[1:])
        return real(*args, **kwargs)

    return construct


def _sorted(values: Iterable, *, key: Callable | None = None, reverse: bool = False) -> list:
    return sorted(_current().sized_input(values), key=key, reverse=reverse)


_GUARDED_TYPES = {
    "str": _guarded_type(str, lambda guards, *args: guards.text(*args)),
    "list": _guarded_type(list, _copying(list)),
    "tuple": _guarded_type(tuple, _copying(tuple)),
    "set": _guarded_type(set, _copying(set)),
    "frozenset": _guarded_type(frozenset, _copying(frozenset)),
    "dict": _guarded_type(dict, _copying(dict)),
}

_MATH = _Namespace("math", {name: getattr(math, name) for name in (
    "ceil", "floor", "trunc", "sqrt", "fabs", "exp", "log", "log10", "log2", "isclose", "isfinite",
    "isnan", "isinf", "pi", "e", "inf", "nan", "fsum", "copysign", "hypot")})

_PLAIN_BUILTINS: dict[str, Any] = {
    "None": None, "True": True, "False": False,
    "abs": abs, "all": all, "any": any, "bool": bool, "chr": chr, "divmod": divmod,
    "enumerate": enumerate, "filter": filter, "float": float, "int": int,
    "isinstance": isinstance, "len": len, "map": map, "max": max, "min": min, "ord": ord,
    "reversed": reversed, "sorted": _sorted,
    "Exception": Exception, "ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError,
    "IndexError": IndexError, "LookupError": LookupError, "ArithmeticError": ArithmeticError,
    "ZeroDivisionError": ZeroDivisionError, "AssertionError": AssertionError, "RuntimeError": RuntimeError,
    "NameError": NameError, "AttributeError": AttributeError, "BpmnError": BpmnError,
    **_GUARDED_TYPES,
}


def _helpers(now: Callable[[], _dt.datetime]) -> dict[str, Any]:
    """Date/time and math helpers every script and expression sees; ``now`` is the server clock."""

    def today() -> _dt.date:
        return now().date()

    def parse_datetime(text: str) -> _dt.datetime:
        """An ISO date-time; without an offset it is UTC (never local time)."""
        value = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)

    def parse_date(text: str) -> _dt.date:
        return _dt.date.fromisoformat(str(text))

    return {"now": now, "today": today, "parse_datetime": parse_datetime, "parse_date": parse_date,
            "datetime": _dt.datetime, "date": _dt.date, "timedelta": _dt.timedelta, "timezone": _dt.timezone,
            "UTC": _dt.UTC, "math": _MATH}


# --------------------------------------------------------------------------- the sandbox


@dataclass(frozen=True)
class _Compiled:
    code: Any
    source: str  # the Python that runs (for an expression: the translation of what the model says)
    filename: str
    written: str | None = None  # an expression as written in the model (JUEL or Python)


class Sandbox:
    """Compiles (with a cache) and runs scripts and expressions under the limits; thread-safe."""

    def __init__(self, limits: Limits | None = None, *, now: Callable[[], _dt.datetime] | None = None,
                 max_data_bytes: int | None = 4 * 1024 * 1024, cache_size: int = 2048) -> None:
        self.limits = limits or Limits()
        self.max_data_bytes = max_data_bytes
        self._now = now or (lambda: _dt.datetime.now(_dt.UTC))
        self._names = _helpers(self._now)
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
        try:
            compiled = replace(self._compile(source, "eval", EXPRESSION_FILENAME), written=expression.strip())
        except SandboxError as error:
            error.source_line = expression.strip()
            raise
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
        scope, guards = self._scope(data, external)
        return self._run(compiled, scope, guards, _evaluate_to_value)

    def execute(self, script: str, data: dict[str, Any], external: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a script over ``data`` and update ``data`` in place with the variables it leaves.

        Functions and other non-data values the script defines are dropped; values that are not
        JSON-like (or dates) are refused, as is a result over the size limit. Returns ``data``.
        """
        compiled = self.compile_script(script)
        scope, guards = self._scope(data, external)
        self._run(compiled, scope, guards, exec)
        reserved = self._names
        external = external or {}
        updated: dict[str, Any] = {k: v for k, v in data.items() if isinstance(k, str) and k.startswith("_")}
        counter = _NodeCounter(self.limits.max_items)
        for name, value in scope.items():
            if name.startswith("_") or (name in reserved and value is reserved[name]):
                continue
            if name in external and name not in data and value is external[name]:
                continue
            if callable(value) or isinstance(value, _Namespace):
                continue  # functions the script defined are not data (as in Spiff)
            updated[name] = _to_data(name, value, counter)
        self._check_data_size(updated)
        data.clear()
        data.update(updated)
        return data

    def _scope(self, data: Mapping[str, Any] | None,
               external: Mapping[str, Any] | None) -> tuple[dict[str, Any], _Guards]:
        budget = Budget(self.limits)
        guards = _Guards(self.limits, budget)
        builtins = dict(_PLAIN_BUILTINS)
        builtins.update(range=guards.range, sum=guards.sum, pow=guards.power, format=guards.format,
                        getattr=guards.getattr, hasattr=guards.hasattr, repr=guards.repr, zip=guards.zip,
                        round=guards.round)
        scope: dict[str, Any] = {
            "__builtins__": builtins, "__name__": "script",
            "_getattr_": guards.getattr, "_getitem_": guards.getitem, "_getiter_": guards.getiter,
            "_write_": guards.write, "_apply_": guards.apply,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence, "_unpack_sequence_": guarded_unpack_sequence,
            "_add_": guards.add, "_mul_": guards.mul, "_iadd_": guards.iadd, "_imul_": guards.imul,
            "_augitem_": guards.augitem, "_pow_": guards.power, "_lshift_": guards.lshift,
            "_mod_": guards.mod, "_sized_": guards.sized_input, "_format_": guards.format, "_mapping_": guards.mapping, "_tick_": budget.tick,
            "_print_": lambda _getattr=None: _Printer(guards),
        }
        scope.update(self._names)
        # names starting with "_" are the guards' (and unreachable from a script anyway): data never
        # replaces them
        for source in (external, data):
            if source:
                scope.update((k, v) for k, v in source.items() if not (isinstance(k, str) and k.startswith("_")))
        return scope, guards

    def _run(self, compiled: _Compiled, scope: dict[str, Any], guards: _Guards, runner: Callable) -> Any:
        token = _CURRENT.set(guards)
        try:
            result = runner(compiled.code, scope)
            if guards.budget.exceeded:  # the script caught the limit error with a bare except
                raise ScriptLimitExceeded(guards.budget.exceeded)
            return result
        except ScriptLimitExceeded as error:
            raise self._error(compiled, error, "LimitExceeded", str(error), scope) from None
        except BpmnError as error:
            raise ThrownBpmnError(error.code, error.message, _error_line(compiled.filename, error)) from None
        except _Refused as error:
            raise self._error(compiled, error, "Refused", str(error), scope) from None
        except MemoryError as error:
            raise self._error(compiled, error, "LimitExceeded", "the script ran out of memory", scope) from None
        except RecursionError as error:
            raise self._error(compiled, error, "RecursionError", "too deep recursion", scope) from None
        except Exception as error:  # noqa: BLE001 - any failure in user code is reported, never re-raised
            raise self._error(compiled, error, type(error).__name__, _describe(error), scope) from None
        finally:
            _CURRENT.reset(token)

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
        if compiled.written is not None:
            source_line = compiled.written
        else:
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


class _NodeCounter:
    """Counts the values copied out of a script so shared references cannot multiply the data."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def add(self, name: str) -> None:
        self.count += 1
        if self.count > self.limit:
            raise SandboxError(f"the variable '{name}' holds more than {self.limit} values", kind="LimitExceeded")


def _to_data(name: str, value: Any, counter: _NodeCounter, depth: int = 0) -> Any:
    """A JSON-like copy of a value a script left in the data; tuples and sets become lists."""
    counter.add(name)
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if depth > 100:
        raise SandboxError(f"the variable '{name}' is nested too deeply", kind="InvalidData")
    if isinstance(value, _SCALARS) or isinstance(value, _dt.timedelta):
        if isinstance(value, float) and not math.isfinite(value):
            raise SandboxError(f"the variable '{name}' is {value}, which is not a storable number", kind="InvalidData")
        return value
    if isinstance(value, _dt.datetime):  # stored as a datetime (Spiff's serializer knows it); naive means UTC
        return value if value.tzinfo is not None else value.replace(tzinfo=_dt.UTC)
    if isinstance(value, _dt.date | _dt.time):  # no stored form of its own: ISO text, e.g. "2026-03-01"
        return value.isoformat()
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if isinstance(key, int | float | bool) or key is None:
                    key = json.dumps(key)
                else:
                    raise SandboxError(f"the variable '{name}' has a key of type {type(key).__name__}",
                                       kind="InvalidData")
            result[key] = _to_data(name, item, counter, depth + 1)
        return result
    if isinstance(value, list | tuple | set | frozenset):
        items = [_to_data(name, item, counter, depth + 1) for item in value]
        if isinstance(value, set | frozenset) and all(type(i) in (str, int, float, bool) for i in items):
            items.sort(key=lambda i: (type(i).__name__, i))  # a stable order for sets of plain values
        return items
    raise SandboxError(f"the variable '{name}' holds a {type(value).__name__}, which cannot be stored "
                       "(use text, numbers, booleans, lists, dicts, datetimes or timedeltas)", kind="InvalidData")


def _evaluate_to_value(code: Any, scope: dict[str, Any]) -> Any:
    """An expression's value, with lazy iterators (generators, ``map``…) read while the budget still
    runs — Spiff iterates a multi-instance collection after the run — and functions refused."""
    value = eval(code, scope)  # noqa: S307 - restricted code compiled by _SandboxPolicy
    if isinstance(value, Iterator):
        return list(_current().sized_input(value))
    if callable(value) and not isinstance(value, type):
        raise _Refused("an expression must give a value, not a function")
    _current().measure(value)  # callers may print or store it: refuse a value whose text is huge
    return value


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
    if _text_items(error, 10_000, 100_000) is None:
        return f"{type(error).__name__} (its message is too long to show)"
    try:
        detail = str(error)
    except Exception:  # noqa: BLE001 - an exception whose text cannot be made still gets reported
        detail = ""
    if len(detail) > _MAX_MESSAGE:
        detail = detail[:_MAX_MESSAGE] + "…"
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
