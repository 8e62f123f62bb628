"""Expressions as BPMN tools write them (JUEL ``${...}`` as in Camunda, betsy's Java-like conditions,
plain Python) translated into one form: Python source that the script sandbox evaluates.

The rule, in order:

1. ``${expr}`` or ``#{expr}`` wrapping the whole text is JUEL: JUEL operators and precedence.
2. Text that parses as a Python expression is Python. Java-isms in it (``true``/``false``/``null``,
   ``x.contains(y)``, ``x.equals(y)``, ``x.size()``, ...) are rewritten; otherwise it is returned as is.
3. Text with ``${...}`` parts inside other text (``Dear ${name}``) is a template: the result is a string.
4. Anything else is read as a bare JUEL expression (``a && !b``, ``x eq 1``, ``empty list``).

Translation is pure: it never evaluates anything. Strings are tokenized, never regex-edited.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["ExpressionSyntaxError", "check_syntax", "is_template", "to_python"]

MAX_EXPRESSION_LENGTH = 20_000
_MAX_NESTING = 100


class ExpressionSyntaxError(ValueError):
    """An expression that cannot be read; ``position`` is the 0-based offset in the original text."""

    def __init__(self, message: str, expression: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where} in expression {_shorten(expression)!r}")
        self.message = message
        self.expression = expression
        self.position = position


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- public API


def to_python(expression: str) -> str:
    """The Python source for an expression written as JUEL, Java-like condition, template or Python."""
    if not isinstance(expression, str):
        raise ExpressionSyntaxError("an expression must be text", repr(expression), None)
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            f"expression longer than {MAX_EXPRESSION_LENGTH} characters", expression, MAX_EXPRESSION_LENGTH
        )
    text = expression.strip()
    offset = len(expression) - len(expression.lstrip())
    if not text:
        raise ExpressionSyntaxError("empty expression", expression, 0)
    wrapped = _whole_wrap(text)
    if wrapped is not None:
        start, inner = wrapped
        result = _inner_to_python(inner, expression, offset + start)
    else:
        python_tree = _parse_python(text)
        if python_tree is not None:
            result = _rewrite_java_isms(text, python_tree)
            if result == text and expression == text:
                return expression
        elif _has_expression_part(text):
            result = _template_to_python(text, expression, offset)
        else:
            result = _Parser(text, expression, offset).parse_all()
    _ensure_python(result, expression)
    return result


def is_template(text: str) -> bool:
    """True for text with ``${...}`` parts embedded in other text, e.g. ``Dear ${name}``."""
    if not isinstance(text, str):
        return False
    stripped = text.strip()
    if _whole_wrap(stripped) is not None:
        return False
    if not _has_expression_part(stripped):
        return False
    return _parse_python(stripped) is None


def check_syntax(expression: str) -> str | None:
    """The reason an expression cannot be read, or None when it translates to valid Python."""
    try:
        to_python(expression)
    except ExpressionSyntaxError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------- helpers


def _parse_python(text: str) -> ast.Expression | None:
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _ensure_python(source: str, expression: str) -> None:
    """Every translation result must itself be valid Python (e.g. JUEL ``${lambda}`` is not)."""
    try:
        ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as error:
        detail = getattr(error, "msg", None) or str(error)
        raise ExpressionSyntaxError(f"not a valid expression ({detail})", expression, None) from None


def _inner_to_python(inner: str, expression: str, offset: int) -> str:
    """A ``${...}`` body: JUEL, or failing that a Python expression with Java-isms rewritten."""
    if not inner.strip():
        raise ExpressionSyntaxError("empty expression", expression, offset)
    try:
        return _Parser(inner, expression, offset).parse_all()
    except ExpressionSyntaxError:
        tree = _parse_python(inner.strip())
        if tree is None:
            raise
        return _rewrite_java_isms(inner.strip(), tree)


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # 'num', 'str', 'name', 'op', 'end'
    text: str
    pos: int  # offset in the original expression
    value: object = None


_OPERATORS = sorted(
    ["&&", "||", "==", "!=", "<=", ">=", "**", "//", "<", ">", "!", "+", "-", "*", "/", "%",
     "(", ")", "[", "]", "{", "}", ",", ".", "?", ":", "="],
    key=len,
    reverse=True,
)


def _tokenize(text: str, expression: str, offset: int) -> list[_Token]:
    """JUEL tokens; string literals are decoded here so nothing later can edit inside them."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "'\"":
            value, i = _read_string(text, i, expression, offset)
            tokens.append(_Token("str", text[start:i], offset + start, value))
            continue
        if ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit()):
            i = _read_number(text, i)
            tokens.append(_Token("num", text[start:i], offset + start))
            continue
        if ch.isalpha() or ch in "_$":
            while i < n and (text[i].isalnum() or text[i] in "_$"):
                i += 1
            tokens.append(_Token("name", text[start:i], offset + start))
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(_Token("op", op, offset + start))
                i += len(op)
                break
        else:
            raise ExpressionSyntaxError(f"unexpected character {ch!r}", expression, offset + start)
    tokens.append(_Token("end", "", offset + n))
    return tokens


def _read_string(text: str, i: int, expression: str, offset: int) -> tuple[str, int]:
    quote = text[i]
    start = i
    i += 1
    chars: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            chars.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt) if nxt in "\\'\"ntr" else "\\" + nxt)
            i += 2
            continue
        if ch == quote:
            return "".join(chars), i + 1
        chars.append(ch)
        i += 1
    raise ExpressionSyntaxError("unterminated string literal", expression, offset + start)


def _read_number(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isdigit():
        i += 1
    if i < n and text[i] == "." and i + 1 < n and text[i + 1].isdigit():
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            i = j
            while i < n and text[i].isdigit():
                i += 1
    return i


# --------------------------------------------------------------------------- JUEL parser

_EQUALITY = {"==": "==", "!=": "!=", "eq": "==", "ne": "!="}
_RELATIONAL = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}
_MULTIPLICATIVE = {"*": "*", "/": "/", "div": "/", "%": "%", "mod": "%", "//": "//"}
_CONSTANTS = {"true": "True", "false": "False", "null": "None", "True": "True", "False": "False", "None": "None"}
_RESERVED = {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "div", "mod", "empty", "instanceof",
             "true", "false", "null", "in", "is", "if", "else"}


def _empty(operand: str) -> str:
    """JUEL ``empty x``: null, or an empty string, list or map."""
    return f"({operand} in (None, '', [], {{}}, ()))"


def _java_method(target: str, method: str, args: list[str]) -> str | None:
    """Python for the Java/JUEL methods BPMN authors call on strings, lists and maps."""
    one = len(args) == 1
    none = not args
    if method in ("contains", "containsKey") and one:
        return f"({args[0]} in {target})"
    if method == "containsValue" and one:
        return f"({args[0]} in {target}.values())"
    if method == "equals" and one:
        return f"({target} == {args[0]})"
    if method == "equalsIgnoreCase" and one:
        return f"(str({target}).lower() == str({args[0]}).lower())"
    if method in ("size", "length") and none:
        return f"len({target})"
    if method == "isEmpty" and none:
        return _empty(target)
    if method == "startsWith" and one:
        return f"{target}.startswith({args[0]})"
    if method == "endsWith" and one:
        return f"{target}.endswith({args[0]})"
    if method == "toUpperCase" and none:
        return f"{target}.upper()"
    if method == "toLowerCase" and none:
        return f"{target}.lower()"
    if method == "trim" and none:
        return f"{target}.strip()"
    if method == "toString" and none:
        return f"str({target})"
    return None


_JAVA_METHODS = {"contains", "containsKey", "containsValue", "equals", "equalsIgnoreCase", "size", "length",
                 "isEmpty", "startsWith", "endsWith", "toUpperCase", "toLowerCase", "trim", "toString"}


class _Parser:
    """Recursive descent over JUEL's grammar (EL 2.2 precedence), emitting fully parenthesized Python."""

    def __init__(self, text: str, expression: str, offset: int) -> None:
        self.expression = expression
        self.tokens = _tokenize(text, expression, offset)
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def at(self, *texts: str) -> bool:
        tok = self.tok
        return tok.kind in ("op", "name") and tok.text in texts

    def take(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str) -> _Token:
        if not (self.tok.kind == "op" and self.tok.text == text):
            self.fail(f"expected {text!r}")
        return self.take()

    def fail(self, message: str, tok: _Token | None = None) -> None:
        tok = tok or self.tok
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        raise ExpressionSyntaxError(f"{message}, found {found}", self.expression, tok.pos)

    def nested(self) -> None:
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise ExpressionSyntaxError("expression nested too deeply", self.expression, self.tok.pos)

    # -- grammar
    def parse_all(self) -> str:
        result = self.ternary()
        if self.tok.kind != "end":
            if self.at("="):
                self.fail("'=' assigns; use '==' to compare")
            self.fail("unexpected text after the expression")
        return result

    def ternary(self) -> str:
        self.nested()
        try:
            condition = self.logical_or()
            if self.at("?"):
                self.take()
                when_true = self.ternary()
                self.expect(":")
                when_false = self.ternary()
                return f"({when_true} if {condition} else {when_false})"
            if self.tok.kind == "name" and self.tok.text == "if":
                self.take()
                test = self.logical_or()
                if not (self.tok.kind == "name" and self.tok.text == "else"):
                    self.fail("expected 'else'")
                self.take()
                other = self.ternary()
                return f"({condition} if {test} else {other})"
            return condition
        finally:
            self.depth -= 1

    def logical_or(self) -> str:
        left = self.logical_and()
        while self.at("||", "or"):
            self.take()
            left = f"({left} or {self.logical_and()})"
        return left

    def logical_and(self) -> str:
        left = self.equality()
        while self.at("&&", "and"):
            self.take()
            left = f"({left} and {self.equality()})"
        return left

    def equality(self) -> str:
        left = self.relational()
        while self.at(*_EQUALITY):
            op = _EQUALITY[self.take().text]
            left = f"({left} {op} {self.relational()})"
        return left

    def relational(self) -> str:
        left = self.additive()
        while True:
            if self.at(*_RELATIONAL):
                op = _RELATIONAL[self.take().text]
            elif self.tok.kind == "name" and self.tok.text == "in":
                self.take()
                op = "in"
            elif self.tok.kind == "name" and self.tok.text == "not" and self.peek().text == "in":
                self.take()
                self.take()
                op = "not in"
            elif self.tok.kind == "name" and self.tok.text == "is":
                self.take()
                op = "is"
                if self.tok.kind == "name" and self.tok.text == "not":
                    self.take()
                    op = "is not"
            else:
                return left
            left = f"({left} {op} {self.additive()})"

    def additive(self) -> str:
        left = self.multiplicative()
        while self.at("+", "-"):
            op = self.take().text
            left = f"({left} {op} {self.multiplicative()})"
        return left

    def multiplicative(self) -> str:
        left = self.unary()
        while self.at(*_MULTIPLICATIVE):
            op = _MULTIPLICATIVE[self.take().text]
            left = f"({left} {op} {self.unary()})"
        return left

    def unary(self) -> str:
        self.nested()
        try:
            if self.at("!", "not") and not (self.tok.text == "not" and self.peek().text == "in"):
                self.take()
                return f"(not {self.unary()})"
            if self.at("-", "+"):
                op = self.take().text
                return f"({op}{self.unary()})"
            if self.tok.kind == "name" and self.tok.text == "empty":
                self.take()
                return _empty(self.unary())
            return self.power()
        finally:
            self.depth -= 1

    def power(self) -> str:
        base = self.postfix()
        if self.at("**"):
            self.take()
            return f"({base} ** {self.unary()})"
        return base

    def postfix(self) -> str:
        value = self.primary()
        while True:
            if self.at("."):
                self.take()
                name_tok = self.tok
                if name_tok.kind != "name":
                    self.fail("expected a property or method name after '.'")
                self.take()
                name = name_tok.text
                if self.at("("):
                    args = self.arguments()
                    java = _java_method(value, name, args) if name in _JAVA_METHODS else None
                    value = java if java is not None else f"{value}.{name}({', '.join(args)})"
                    if java is None and name in _JAVA_METHODS:
                        self.fail(f"wrong number of arguments for {name}()", name_tok)
                else:
                    value = f"{value}.{name}"
            elif self.at("["):
                self.take()
                index = self.subscript()
                self.expect("]")
                value = f"{value}[{index}]"
            elif self.at("("):
                args = self.arguments()
                value = f"{value}({', '.join(args)})"
            else:
                return value

    def subscript(self) -> str:
        parts: list[str] = []
        current = "" if self.at(":") else self.ternary_no_colon()
        while self.at(":"):
            self.take()
            parts.append(current)
            current = "" if self.at(":", "]") else self.ternary_no_colon()
        parts.append(current)
        if len(parts) > 3:
            self.fail("too many ':' in a slice")
        return ":".join(parts)

    def ternary_no_colon(self) -> str:
        """Inside ``[...]`` a ':' separates a slice, so JUEL's ``?:`` must be parenthesized there."""
        return self.logical_or()

    def arguments(self) -> list[str]:
        self.expect("(")
        args: list[str] = []
        while not self.at(")"):
            if self.tok.kind == "name" and self.peek().kind == "op" and self.peek().text == "=":
                keyword = self.take().text
                self.take()
                args.append(f"{keyword}={self.ternary()}")
            else:
                args.append(self.ternary())
            if not self.at(","):
                break
            self.take()
        self.expect(")")
        return args

    def primary(self) -> str:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return _python_number(tok.text)
        if tok.kind == "str":
            self.take()
            return repr(tok.value)
        if tok.kind == "name":
            if tok.text in _CONSTANTS:
                self.take()
                return _CONSTANTS[tok.text]
            if tok.text in _RESERVED:
                self.fail("expected a value")
            if "$" in tok.text:
                self.fail("'$' is not allowed in a name", tok)
            self.take()
            return tok.text
        if self.at("("):
            self.take()
            inner = self.ternary()
            if self.at(","):
                items = [inner]
                while self.at(","):
                    self.take()
                    if self.at(")"):
                        break
                    items.append(self.ternary())
                self.expect(")")
                return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
            self.expect(")")
            return f"({inner})"
        if self.at("["):
            self.take()
            items = self.items("]")
            return "[" + ", ".join(items) + "]"
        if self.at("{"):
            return self.mapping()
        self.fail("expected a value")
        raise AssertionError("unreachable")

    def items(self, closing: str) -> list[str]:
        items: list[str] = []
        while not self.at(closing):
            items.append(self.ternary())
            if not self.at(","):
                break
            self.take()
        self.expect(closing)
        return items

    def mapping(self) -> str:
        self.expect("{")
        entries: list[str] = []
        is_set = None
        while not self.at("}"):
            key = self.logical_or()
            if self.at(":"):
                if is_set:
                    self.fail("mixed set and map entries")
                self.take()
                entries.append(f"{key}: {self.ternary()}")
                is_set = False
            else:
                if is_set is False:
                    self.fail("expected ':'")
                entries.append(key)
                is_set = True
            if not self.at(","):
                break
            self.take()
        self.expect("}")
        return "{" + ", ".join(entries) + "}"


def _python_number(text: str) -> str:
    if text.isdigit():
        return str(int(text))
    return repr(float(text))


# --------------------------------------------------------------------------- Python with Java-isms


class _JavaIsms(ast.NodeTransformer):
    """Rewrites Java/JUEL idioms that happen to parse as Python (betsy's ``test.contains("a")``)."""

    def __init__(self) -> None:
        self.changed = False
        self.wrong_arguments: list[str] = []

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in ("true", "false", "null"):
            self.changed = True
            return ast.copy_location(ast.Constant({"true": True, "false": False, "null": None}[node.id]), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in _JAVA_METHODS) or node.keywords:
            return node
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            return node
        target = ast.unparse(func.value)
        args = [ast.unparse(arg) for arg in node.args]
        replacement = _java_method(f"({target})", func.attr, [f"({a})" for a in args])
        if replacement is None:
            self.wrong_arguments.append(func.attr)
            return node
        self.changed = True
        return ast.copy_location(ast.parse(replacement, mode="eval").body, node)


def _rewrite_java_isms(text: str, tree: ast.Expression) -> str:
    rewriter = _JavaIsms()
    new_tree = rewriter.visit(tree)
    if rewriter.wrong_arguments:
        method = rewriter.wrong_arguments[0]
        raise ExpressionSyntaxError(f"wrong number of arguments for {method}()", text, text.find(method))
    if not rewriter.changed:
        return text
    return ast.unparse(ast.fix_missing_locations(new_tree))


# --------------------------------------------------------------------------- templates


def _find_close(text: str, start: int) -> int | None:
    """Index of the ``}`` closing the ``${`` at ``start``, skipping strings and nested braces."""
    depth = 0
    i = start + 2
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            quote = ch
            i += 1
            while i < len(text) and text[i] != quote:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return None


def _whole_wrap(text: str) -> tuple[int, str] | None:
    """``(start of inner text, inner text)`` when one ``${...}``/``#{...}`` wraps all of ``text``."""
    if len(text) >= 3 and text[0] in "$#" and text[1] == "{":
        close = _find_close(text, 0)
        if close == len(text) - 1:
            return 2, text[2:-1]
    return None


def _has_expression_part(text: str) -> bool:
    return "${" in text or "#{" in text


def _template_to_python(text: str, expression: str, offset: int) -> str:
    """``Dear ${name}`` as a Python expression giving the string; null parts render as ''."""
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "$#" and text.startswith("{", i + 1):
            close = _find_close(text, i)
            if close is None:
                raise ExpressionSyntaxError("'${' without a closing '}'", expression, offset + i)
            if literal:
                parts.append(repr("".join(literal)))
                literal = []
            inner = _inner_to_python(text[i + 2 : close], expression, offset + i + 2)
            parts.append(f"('' if ({inner}) is None else str({inner}))")
            i = close + 1
            continue
        if text[i] == "\\" and text.startswith("${", i + 1):
            literal.append("${")  # JUEL's escape for a literal ${
            i += 3
            continue
        literal.append(text[i])
        i += 1
    if literal:
        parts.append(repr("".join(literal)))
    return "(" + " + ".join(parts) + ")" if len(parts) > 1 else f"({parts[0]} + '')"
