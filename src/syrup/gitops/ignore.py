"""``ignoreDifferences``: fields a comparison leaves out, per app and system-wide.

Argo CD's rule shape (REFERENCE.md, "Diffing customization")::

    ignoreDifferences:
      - group: apps            # "" is the core group; omitted or "*" matches any
        kind: Deployment       # required; "*" matches any
        name: web              # optional
        namespace: prod        # optional
        jsonPointers: [/spec/replicas]
        jqPathExpressions: ['.spec.template.spec.containers[] | select(.name == "x")']
        managedFieldsManagers: [kube-controller-manager]

:func:`normalize` removes the matching fields from both the desired and the live object before
they are compared, so a difference there never makes the resource OutOfSync. JSON pointers
follow RFC 6901 (``~1`` is ``/``, ``~0`` is ``~``); a pointer to a missing field is not an
error. jq expressions run through the ``jq`` package as ``del(<expression>)``. Managers remove
every field their ``managedFields`` entry owns (``fieldsV1``'s ``f:`` and ``k:`` keys).

System-wide defaults live in a YAML file (:func:`load_defaults`) holding the same list under
``ignoreDifferences``, plus Argo CD's ``argocd-cm`` style keys
``resource.customizations.ignoreDifferences.<group_kind>`` (``all`` for every kind) whose value
is a YAML string with ``jsonPointers``/``jqPathExpressions``/``managedFieldsManagers``.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jq
import yaml

from syrup import errors

_CM_PREFIX = "resource.customizations.ignoreDifferences."


class InvalidRule(errors.InvalidInput):
    """An ignoreDifferences rule that cannot be read or compiled."""


@dataclass(frozen=True)
class Rule:
    kind: str
    group: str = "*"
    name: str = ""
    namespace: str = ""
    json_pointers: tuple[str, ...] = ()
    jq_paths: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        return (
            fnmatch.fnmatchcase(str(obj.get("kind", "")), self.kind)
            and (self.group == "*" or fnmatch.fnmatchcase(group, self.group))
            and (not self.name or self.name == meta.get("name"))
            and (not self.namespace or self.namespace == meta.get("namespace"))
        )


def _strs(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRule("expected a list of strings", where=f"{where}.{key}")
    return tuple(value)


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    return jq.compile(f"del({expression})")


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise InvalidRule("expected a map", where=where)
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InvalidRule("kind is required", where=f"{where}.kind")
    group = raw.get("group")
    rule = Rule(
        kind=kind,
        group="*" if group is None else str(group),
        name=str(raw.get("name") or ""),
        namespace=str(raw.get("namespace") or ""),
        json_pointers=_strs(raw, "jsonPointers", where),
        jq_paths=_strs(raw, "jqPathExpressions", where),
        managers=_strs(raw, "managedFieldsManagers", where),
    )
    for i, pointer in enumerate(rule.json_pointers):
        if pointer and not pointer.startswith("/"):
            raise InvalidRule(
                f"a JSON pointer starts with '/', got {pointer!r}",
                where=f"{where}.jsonPointers[{i}]",
            )
    for i, expression in enumerate(rule.jq_paths):
        try:
            _compiled(expression)
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise InvalidRule(
                f"jq expression {expression!r} does not compile: {first}",
                where=f"{where}.jqPathExpressions[{i}]",
            ) from exc
    return rule


def parse(raw: Any, *, where: str = "spec.ignoreDifferences") -> list[Rule]:
    """An app's ``ignoreDifferences`` list."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRule("expected a list", where=where)
    return [_rule(item, f"{where}[{i}]") for i, item in enumerate(raw)]


def load_defaults(path: Path) -> list[Rule]:
    """System-wide rules from a YAML file (see the module docstring for its shape)."""
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise errors.ConfigError(f"{where}: cannot read ignoreDifferences defaults: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise InvalidRule("expected a map", where=where)
    rules = parse(doc.get("ignoreDifferences"), where=f"{where}: ignoreDifferences")
    for key, value in doc.items():
        if not isinstance(key, str) or not key.startswith(_CM_PREFIX):
            continue
        group_kind = key[len(_CM_PREFIX) :]
        body = yaml.safe_load(value) if isinstance(value, str) else value
        if not isinstance(body, Mapping):
            raise InvalidRule("expected a map", where=f"{where}: {key}")
        if group_kind == "all":
            group, kind = "*", "*"
        else:
            group, _, kind = group_kind.rpartition("_")
        rules.append(_rule({**body, "group": group, "kind": kind}, f"{where}: {key}"))
    return rules


# -- removing fields ------------------------------------------------------------------------


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def remove_pointer(obj: Any, pointer: str) -> None:
    """Delete the field at an RFC 6901 pointer, in place; a missing path is ignored."""
    if not pointer:
        return
    tokens = [_unescape(t) for t in pointer.split("/")[1:]]
    node = obj
    for token in tokens[:-1]:
        if isinstance(node, Mapping):
            if token not in node:
                return
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return
    last = tokens[-1]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
        del node[int(last)]


def _item_matches(item: Any, selector: Mapping[str, Any]) -> bool:
    return isinstance(item, Mapping) and all(item.get(k) == v for k, v in selector.items())


def _remove_owned(node: Any, owned: Mapping[str, Any]) -> None:
    """Delete what a ``fieldsV1`` tree owns; a ``.`` key means the node itself."""
    for key, sub in owned.items():
        if key == ".":
            continue
        if key.startswith("f:") and isinstance(node, dict):
            name = key[2:]
            if name not in node:
                continue
            if not sub or set(sub) == {"."}:
                del node[name]
            else:
                _remove_owned(node[name], sub)
        elif key.startswith("k:") and isinstance(node, list):
            selector = json.loads(key[2:])
            for i, item in enumerate(list(node)):
                if _item_matches(item, selector):
                    # "." on a list item: the manager put the item there, so all of it goes.
                    if not sub or "." in sub:
                        node.remove(item)
                    else:
                        _remove_owned(node[i], sub)
        elif key.startswith("v:") and isinstance(node, list):
            value = json.loads(key[2:])
            if value in node:
                node.remove(value)


def _remove_managed(obj: dict[str, Any], live: Mapping[str, Any], managers: Sequence[str]) -> None:
    entries = (live.get("metadata") or {}).get("managedFields") or []
    for entry in entries:
        if entry.get("manager") in managers and isinstance(entry.get("fieldsV1"), Mapping):
            owned = {k: v for k, v in entry["fieldsV1"].items() if k != "f:metadata"}
            _remove_owned(obj, owned)


def normalize(
    obj: Mapping[str, Any], rules: Iterable[Rule], *, live: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A copy of ``obj`` without the fields the matching rules ignore.

    ``live`` supplies ``managedFields`` (the desired object has none); by default ``obj``'s own.
    """
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    for rule in rules:
        if not rule.matches(obj):
            continue
        for pointer in rule.json_pointers:
            remove_pointer(out, pointer)
        for expression in rule.jq_paths:
            result = _compiled(expression).input_value(out).first()
            out = result if isinstance(result, dict) else out
        if rule.managers:
            _remove_managed(out, live if live is not None else obj, rule.managers)
    return out


# -- keeping live values (RespectIgnoreDifferences) ------------------------------------------

_MISSING = object()


@lru_cache(maxsize=1024)
def _compiled_paths(expression: str) -> Any:
    return jq.compile(f"[path({expression})]")


def _get(node: Any, path: Sequence[Any]) -> Any:
    for step in path:
        in_map = isinstance(node, Mapping) and isinstance(step, str) and step in node
        in_list = isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)
        if not (in_map or in_list):
            return _MISSING
        node = node[step]
    return node


def _set(node: Any, path: Sequence[Any], value: Any) -> None:
    """Put ``value`` at ``path``, creating maps on the way; a missing list item is skipped."""
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict) and isinstance(step, str):
            if last:
                node[step] = copy.deepcopy(value)
                return
            if not isinstance(node.get(step), (dict, list)):
                node[step] = {} if isinstance(path[i + 1], str) else []
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            if last:
                node[step] = copy.deepcopy(value)
                return
            node = node[step]
        else:
            return


def _pointer_path(pointer: str) -> list[Any]:
    return [int(t) if t.isdigit() else _unescape(t) for t in pointer.split("/")[1:]]


def _copy_owned(dst: Any, src: Any, owned: Mapping[str, Any]) -> None:
    """Copy into ``dst`` the values of ``src`` that a ``fieldsV1`` tree owns."""
    for key, sub in owned.items():
        if key.startswith("f:") and isinstance(src, Mapping) and isinstance(dst, dict):
            name = key[2:]
            if name not in src:
                continue
            leaf = not sub or set(sub) == {"."}
            if leaf or not isinstance(dst.get(name), (dict, list)):
                dst[name] = copy.deepcopy(src[name])
            else:
                _copy_owned(dst[name], src[name], sub)
        elif key.startswith("k:") and isinstance(src, list) and isinstance(dst, list):
            selector = json.loads(key[2:])
            theirs = next((i for i in src if _item_matches(i, selector)), None)
            if theirs is None:
                continue
            index = next((n for n, i in enumerate(dst) if _item_matches(i, selector)), None)
            if index is None:
                dst.append(copy.deepcopy(theirs))
            elif not sub or "." in sub:
                dst[index] = copy.deepcopy(theirs)
            else:
                _copy_owned(dst[index], theirs, sub)
        elif key.startswith("v:") and isinstance(dst, list):
            value = json.loads(key[2:])
            if value not in dst:
                dst.append(value)


def keep_live(
    desired: Mapping[str, Any], live: Mapping[str, Any], rules: Iterable[Rule]
) -> dict[str, Any]:
    """``desired`` with every field the matching rules ignore set to its live value.

    This is Argo CD's ``RespectIgnoreDifferences=true``: a sync leaves what
    ignoreDifferences covers as the cluster has it (a field absent from the live object is
    dropped from the desired one). ``managedFieldsManagers`` needs the live object's
    ``managedFields``.
    """
    out: dict[str, Any] = copy.deepcopy(dict(desired))
    for rule in rules:
        if not rule.matches(desired):
            continue
        for pointer in rule.json_pointers:
            value = _get(live, _pointer_path(pointer))
            if value is _MISSING:
                remove_pointer(out, pointer)
            else:
                _set(out, _pointer_path(pointer), value)
        for expression in rule.jq_paths:
            theirs = _compiled_paths(expression).input_value(dict(live)).first() or []
            mine = _compiled_paths(expression).input_value(out).first() or []
            # Paths only the desired object has go (last first, so list indexes hold).
            for path in sorted((p for p in mine if p not in theirs), key=len, reverse=True):
                parent = _get(out, path[:-1])
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
                elif (
                    isinstance(parent, list)
                    and isinstance(path[-1], int)
                    and path[-1] < len(parent)
                ):
                    del parent[path[-1]]
            for path in theirs:
                _set(out, path, _get(live, path))
        if rule.managers:
            for entry in (live.get("metadata") or {}).get("managedFields") or []:
                if entry.get("manager") in rule.managers and isinstance(
                    entry.get("fieldsV1"), Mapping
                ):
                    owned = {k: v for k, v in entry["fieldsV1"].items() if k != "f:metadata"}
                    _copy_owned(out, live, owned)
    return out
