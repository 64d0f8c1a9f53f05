"""Label and field selectors, parsed once per request and matched against stored objects.

Label selectors follow the Kubernetes grammar (``labels.Parse`` in apimachinery): equality
(``a=b``, ``a==b``, ``a!=b``), set-based (``a in (x,y)``, ``a notin (x)``), existence (``a``,
``!a``), joined by commas. Field selectors support ``=``, ``==`` and ``!=`` on dotted paths;
the server answers any path present in the object (a superset of what real kinds allow, which
only matters for error messages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from syrup.cluster import errors

Matcher = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET = re.compile(rf"^\s*(!?)\s*({_KEY})\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)\s*$")


def _split_terms(expr: str) -> list[str]:
    """Split on commas that are not inside a set's parentheses."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def _term(term: str) -> Callable[[Mapping[str, str]], bool]:
    eq = _EQ.match(term)
    if eq:
        key, op, value = eq.group(1), eq.group(2), eq.group(3)
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    st = _SET.match(term)
    if st:
        negated, key, op, values = st.group(1), st.group(2), st.group(3), st.group(4)
        if op:
            if negated:
                raise errors.BadRequest(f"unable to parse requirement: {term.strip()!r}")
            wanted = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                return lambda labels: labels.get(key) in wanted
            return lambda labels: labels.get(key) not in wanted
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise errors.BadRequest(f"unable to parse requirement: {term.strip()!r}")


def label_matcher(expr: str | None) -> Matcher | None:
    """Compile a label selector; ``None`` when it selects everything."""
    if not expr or not expr.strip():
        return None
    terms = [_term(t) for t in _split_terms(expr)]

    def match(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(t(labels) for t in terms)

    return match


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_matcher(expr: str | None) -> Matcher | None:
    """Compile a field selector; ``None`` when it selects everything."""
    if not expr or not expr.strip():
        return None
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(expr):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise errors.BadRequest(f"invalid field selector: {term.strip()!r}")
        checks.append((m.group(1), m.group(2) == "!=", m.group(3)))

    def match(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, p) == v) != neg for p, neg, v in checks)

    return match


def selector_to_string(selector: Mapping[str, Any]) -> str:
    """Render a ``LabelSelector`` object (matchLabels/matchExpressions) as selector text."""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for req in selector.get("matchExpressions") or []:
        key, op, values = req.get("key", ""), req.get("operator", ""), req.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
