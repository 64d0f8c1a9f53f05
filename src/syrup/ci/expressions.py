"""GitHub Actions expressions (``${{ ... }}``): parsing with lark and evaluation.

The language follows GitHub's documented rules ("Evaluate expressions in workflows and
actions"):

* literals ``null``, ``true``, ``false``, numbers (decimal, hex, exponent) and single-quoted
  strings where ``''`` escapes a quote;
* operators by precedence: ``( )``, ``[ ]``/``.``, ``!``, ``< <= > >=``, ``== !=``, ``&&``,
  ``||``; ``&&`` and ``||`` return one of their operands, not a boolean;
* loose equality: operands of different types are both coerced to numbers (``null`` → 0,
  booleans → 1/0, strings parsed with ``''`` → 0 and garbage → NaN, arrays and objects → NaN);
  strings compare case-insensitively; arrays and objects are equal only to themselves;
* property access is case-insensitive, a missing property is ``null``, and the ``.*`` filter
  turns an object or array into an array that later property accesses map over.

Parsed expressions are cached: the planner evaluates the same few hundred expressions many
times and parsing dominates evaluation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lark

from syrup.errors import InvalidInput

_GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr
        | or_expr "||" and_expr            -> or_
?and_expr: eq_expr
         | and_expr "&&" eq_expr           -> and_
?eq_expr: cmp_expr
        | eq_expr EQOP cmp_expr            -> compare
?cmp_expr: unary
         | cmp_expr CMPOP unary            -> compare
?unary: postfix
      | "!" unary                          -> not_
?postfix: atom
        | postfix "." NAME                 -> prop
        | postfix "." "*"                  -> star
        | postfix "[" "*" "]"              -> star
        | postfix "[" or_expr "]"          -> index
?atom: NUMBER                              -> number
     | STRING                              -> string
     | NAME "(" [or_expr ("," or_expr)*] ")" -> call
     | NAME                                -> name
     | "(" or_expr ")"

EQOP: "==" | "!="
CMPOP: "<=" | ">=" | "<" | ">"
NAME: /[A-Za-z_][A-Za-z0-9_\-]*/
NUMBER: /-?(0x[0-9a-fA-F]+|0o[0-7]+|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)/
STRING: /'([^']|'')*'/

%import common.WS
%ignore WS
"""

_PARSER = lark.Lark(_GRAMMAR, parser="lalr", maybe_placeholders=True)

_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


class Filtered(list[Any]):
    """The array a ``.*`` filter produces: later property accesses map over its items."""


@dataclass
class Status:
    """What the status functions (``success()``, ``failure()``...) see for the current step."""

    failed: bool = False
    cancelled: bool = False


@dataclass
class Scope:
    """Everything an expression can read: the contexts, the job status and the workspace."""

    contexts: dict[str, Any] = field(default_factory=dict)
    status: Status = field(default_factory=Status)
    workspace: Path | None = None


def parse(expression: str) -> lark.Tree[Any] | lark.Token:
    """Parse one expression (without ``${{ }}``); raises :class:`InvalidInput` on bad syntax."""
    return _parse_cached(expression.strip())


@functools.lru_cache(maxsize=4096)
def _parse_cached(expression: str) -> lark.Tree[Any] | lark.Token:
    try:
        return _PARSER.parse(expression)
    except lark.exceptions.LarkError as error:
        first = str(error).strip().splitlines()[0]
        raise InvalidInput(f"bad expression {expression!r}: {first}") from error


def evaluate(expression: str, scope: Scope) -> Any:
    """Evaluate one expression (without ``${{ }}``) to a JSON-like value."""
    return _Evaluator(scope).eval(parse(expression))


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def template_parts(text: str) -> list[str]:
    """The expressions embedded in a string, in order (for validation and secret scans)."""
    return [match.group(1) for match in _TEMPLATE.finditer(text)]


def interpolate(text: str, scope: Scope) -> Any:
    """Replace each ``${{ expr }}`` in ``text``.

    A string that is exactly one expression keeps the expression's type (so ``with:`` inputs
    and ``strategy.matrix`` can receive arrays and booleans); otherwise each value is
    converted to a string and spliced in.
    """
    if "${{" not in text:
        return text
    whole = _TEMPLATE.fullmatch(text.strip())
    if whole and text.strip().count("${{") == 1:
        return evaluate(whole.group(1), scope)
    return _TEMPLATE.sub(lambda match: to_string(evaluate(match.group(1), scope)), text)


def interpolate_data(value: Any, scope: Scope) -> Any:
    """Interpolate every string inside nested lists and mappings."""
    if isinstance(value, str):
        return interpolate(value, scope)
    if isinstance(value, list):
        return [interpolate_data(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: interpolate_data(item, scope) for key, item in value.items()}
    return value


def evaluate_condition(condition: Any, scope: Scope) -> bool:
    """Evaluate an ``if:`` value, adding GitHub's implicit ``success() &&``.

    GitHub wraps a condition that calls no status function in ``success() && (...)``; a
    condition may be written with or without ``${{ }}``.
    """
    if condition is None or condition == "":
        text = "success()"
    elif isinstance(condition, bool | int | float):
        text = "true" if truthy(condition) else "false"
    else:
        text = str(condition).strip()
        whole = _TEMPLATE.fullmatch(text)
        if whole:
            text = whole.group(1)
        elif "${{" in text:
            # A condition mixing literal text with expressions is a non-empty string: truthy.
            text = "'" + to_string(interpolate(text, scope)).replace("'", "''") + "'"
    if not _STATUS_CALL.search(text):
        text = f"success() && ({text})"
    return truthy(evaluate(text, scope))


_STATUS_CALL = re.compile(r"\b(success|failure|always|cancelled)\s*\(", re.IGNORECASE)


# ---- coercions -------------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    """GitHub's truthiness: null, false, 0, NaN and '' are falsy; arrays and objects truthy."""
    if value is None or value is False:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return not (value == 0 or math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def to_number(value: Any) -> float:
    """Coerce to a number the way GitHub's loose comparisons do."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _parse_number(value)
    return math.nan


def _parse_number(text: str) -> float:
    stripped = text.strip()
    if stripped == "":
        return 0.0
    try:
        if re.fullmatch(r"[+-]?0x[0-9a-fA-F]+", stripped):
            return float(int(stripped, 16))
        if re.fullmatch(r"[+-]?0o[0-7]+", stripped):
            return float(int(stripped, 8))
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", stripped):
            return float(stripped)
    except ValueError:
        return math.nan
    if stripped in ("Infinity", "+Infinity"):
        return math.inf
    if stripped == "-Infinity":
        return -math.inf
    return math.nan


def to_string(value: Any) -> str:
    """Coerce to a string: null → '', booleans → 'true'/'false', containers → JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _format_number(float(value))
    if isinstance(value, str):
        return value
    return to_json(value)


def _format_number(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def to_json(value: Any) -> str:
    """``toJSON``: pretty-printed with two-space indentation, as GitHub prints it."""
    return json.dumps(_plain(value), indent=2, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _is_primitive(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def loose_equal(left: Any, right: Any) -> bool:
    """``==``: same-type comparison, else both sides coerced to numbers."""
    if not _is_primitive(left) or not _is_primitive(right):
        return left is right
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right) or (
        isinstance(left, int | float)
        and isinstance(right, int | float)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ):
        if left is None:
            return True
        return bool(left == right)
    return to_number(left) == to_number(right)


def _loose_compare(left: Any, right: Any, op: str) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a: Any = left.casefold()
        b: Any = right.casefold()
    else:
        a, b = to_number(left), to_number(right)
        if math.isnan(a) or math.isnan(b):
            return False
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


# ---- evaluation ------------------------------------------------------------------------------


def _lookup(container: Any, key: Any) -> Any:
    """Property or index access with GitHub's rules (case-insensitive keys, null on miss)."""
    if isinstance(container, Filtered):
        results = Filtered()
        for item in container:
            found = _lookup(item, key)
            if found is not None:
                results.append(found)
        return results
    if isinstance(container, Mapping):
        if not isinstance(key, str):
            key = to_string(key)
        if key in container:
            return container[key]
        folded = key.casefold()
        for name, item in container.items():
            if isinstance(name, str) and name.casefold() == folded:
                return item
        return None
    if isinstance(container, list):
        number = to_number(key)
        if math.isnan(number) or not number.is_integer():
            return None
        position = int(number)
        return container[position] if 0 <= position < len(container) else None
    return None


def _star(container: Any) -> Filtered:
    if isinstance(container, Filtered):
        flattened = Filtered()
        for item in container:
            flattened.extend(_star(item))
        return flattened
    if isinstance(container, Mapping):
        return Filtered(container.values())
    if isinstance(container, list):
        return Filtered(container)
    return Filtered()


class _Evaluator:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def eval(self, node: lark.Tree[Any] | lark.Token) -> Any:
        if isinstance(node, lark.Token):
            raise InvalidInput(f"unexpected token {node!s}")
        handler: Callable[[lark.Tree[Any]], Any] = getattr(self, f"_{node.data}")
        return handler(node)

    def _number(self, node: lark.Tree[Any]) -> Any:
        return _parse_number(str(node.children[0]))

    def _string(self, node: lark.Tree[Any]) -> Any:
        return str(node.children[0])[1:-1].replace("''", "'")

    def _name(self, node: lark.Tree[Any]) -> Any:
        name = str(node.children[0])
        if name in _KEYWORDS:
            return _KEYWORDS[name]
        return _lookup(self.scope.contexts, name)

    def _prop(self, node: lark.Tree[Any]) -> Any:
        return _lookup(self.eval(node.children[0]), str(node.children[1]))

    def _index(self, node: lark.Tree[Any]) -> Any:
        return _lookup(self.eval(node.children[0]), self.eval(node.children[1]))

    def _star(self, node: lark.Tree[Any]) -> Any:
        return _star(self.eval(node.children[0]))

    def _not_(self, node: lark.Tree[Any]) -> Any:
        return not truthy(self.eval(node.children[0]))

    def _and_(self, node: lark.Tree[Any]) -> Any:
        left = self.eval(node.children[0])
        return self.eval(node.children[1]) if truthy(left) else left

    def _or_(self, node: lark.Tree[Any]) -> Any:
        left = self.eval(node.children[0])
        return left if truthy(left) else self.eval(node.children[1])

    def _compare(self, node: lark.Tree[Any]) -> Any:
        left = self.eval(node.children[0])
        op = str(node.children[1])
        right = self.eval(node.children[2])
        if op == "==":
            return loose_equal(left, right)
        if op == "!=":
            return not loose_equal(left, right)
        return _loose_compare(left, right, op)

    def _call(self, node: lark.Tree[Any]) -> Any:
        name = str(node.children[0]).casefold()
        raw = [child for child in node.children[1:] if child is not None]
        function = _FUNCTIONS.get(name)
        if function is None:
            raise InvalidInput(f"unknown function {node.children[0]!s}()")
        low, high = _ARITY[name]
        if not low <= len(raw) <= high:
            raise InvalidInput(f"{node.children[0]!s}() takes {low}..{high} arguments")
        return function(self.scope, [self.eval(child) for child in raw])


def _contains(_: Scope, args: list[Any]) -> bool:
    search, item = args
    if isinstance(search, list):
        return any(loose_equal(element, item) for element in search)
    return to_string(item).casefold() in to_string(search).casefold()


def _starts_with(_: Scope, args: list[Any]) -> bool:
    return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())


def _ends_with(_: Scope, args: list[Any]) -> bool:
    return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())


_FORMAT_TOKEN = re.compile(r"\{\{|\}\}|\{(\d+)\}|[{}]")


def _format(_: Scope, args: list[Any]) -> str:
    template = to_string(args[0])
    values = args[1:]

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if match.group(1) is None:
            raise InvalidInput(f"format(): unbalanced brace in {template!r}")
        position = int(match.group(1))
        if position >= len(values):
            raise InvalidInput(f"format(): no argument {{{position}}} in {template!r}")
        return to_string(values[position])

    return _FORMAT_TOKEN.sub(replace, template)


def _join(_: Scope, args: list[Any]) -> str:
    separator = to_string(args[1]) if len(args) > 1 else ","
    if isinstance(args[0], list):
        return separator.join(to_string(item) for item in args[0])
    return to_string(args[0])


def _to_json(_: Scope, args: list[Any]) -> str:
    return to_json(args[0])


def _from_json(_: Scope, args: list[Any]) -> Any:
    text = to_string(args[0])
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"fromJSON(): not JSON: {text[:60]!r}") from error


def _hash_files(scope: Scope, args: list[Any]) -> str:
    """SHA-256 over the SHA-256 of each matched file, in path order; '' when none match."""
    root = scope.workspace
    if root is None:
        return ""
    from syrup.ci import globbing

    patterns = [to_string(arg) for arg in args]
    files = globbing.match_files(root, patterns)
    if not files:
        return ""
    total = hashlib.sha256()
    for path in files:
        total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def _success(scope: Scope, _: list[Any]) -> bool:
    return not scope.status.failed and not scope.status.cancelled


def _always(_: Scope, __: list[Any]) -> bool:
    return True


def _failure(scope: Scope, _: list[Any]) -> bool:
    return scope.status.failed and not scope.status.cancelled


def _cancelled(scope: Scope, _: list[Any]) -> bool:
    return scope.status.cancelled


_FUNCTIONS: dict[str, Callable[[Scope, list[Any]], Any]] = {
    "contains": _contains,
    "startswith": _starts_with,
    "endswith": _ends_with,
    "format": _format,
    "join": _join,
    "tojson": _to_json,
    "fromjson": _from_json,
    "hashfiles": _hash_files,
    "success": _success,
    "always": _always,
    "failure": _failure,
    "cancelled": _cancelled,
}

_ARITY: dict[str, tuple[int, int]] = {
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "format": (1, 64),
    "join": (1, 2),
    "tojson": (1, 1),
    "fromjson": (1, 1),
    "hashfiles": (1, 64),
    "success": (0, 0),
    "always": (0, 0),
    "failure": (0, 0),
    "cancelled": (0, 0),
}
