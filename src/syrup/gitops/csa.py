"""Client-side apply, as ``kubectl apply`` does it (the ``ServerSideApply=false`` option).

Syrup applies server-side by default: the server tracks each manager's fields, so a field
another controller set (an HPA's replicas) survives and nothing has to be stored in the
object. ``ServerSideApply=false`` selects the older, kubectl-compatible way, which Argo CD
uses by default and which some clusters' admission policies expect:

* the object carries ``kubectl.kubernetes.io/last-applied-configuration``, the desired
  manifest as compact JSON with sorted keys, without that annotation itself;
* a create is a POST of the manifest with the annotation;
* an update is a three-way patch computed from (last applied, live, desired): a field that
  was in the last applied manifest and is gone from the desired one is deleted, a field
  whose desired value differs from the live one is set, and a field nobody applied (set by
  another writer) is left alone. Built-in kinds get a strategic merge patch that merges lists
  by their patch merge key (``x-kubernetes-patch-merge-key``/``-patch-strategy`` of the
  Kubernetes OpenAPI definitions shipped by ``kubernetes-validate``); custom resources get a
  JSON merge patch (RFC 7386), as kubectl sends them, in which every list is replaced.

Kubernetes rejects an object whose annotations exceed 262144 bytes in total. When the
last-applied annotation would push an object over that limit, :func:`fits` says so and the
sync applies that one object server-side instead, saying so in the resource's result (a sync
that succeeds beats one that fails on bookkeeping; the object stays what Git says).

NB: hooks are still created or applied server-side: they are recreated each sync, so there is
no earlier apply for a three-way patch to remember.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Kubernetes' limit on the total size of an object's annotations (keys and values).
ANNOTATIONS_LIMIT = 262144
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"

#: The release whose definitions carry the patch strategies (the local cluster serves it too).
_KUBERNETES_VERSION = "v1.37.0"
_REF = "#/$defs/"


# -- the annotation --------------------------------------------------------------------------


def last_applied(obj: Mapping[str, Any]) -> str:
    """The annotation's value for ``obj``: compact, key-sorted JSON without the annotation."""
    body = copy.deepcopy(dict(obj))
    meta = body.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def annotated(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` carrying its last-applied annotation."""
    out = copy.deepcopy(dict(obj))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), LAST_APPLIED: last_applied(obj)}
    return out


def annotations_size(obj: Mapping[str, Any]) -> int:
    """Bytes the API server counts against :data:`ANNOTATIONS_LIMIT`."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return sum(len(str(k).encode()) + len(str(v or "").encode()) for k, v in annotations.items())


def fits(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` with its last-applied annotation stays within the annotation limit."""
    return annotations_size(annotated(obj)) <= ANNOTATIONS_LIMIT


def previous(live: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest applied last time ({} when the object never went through kubectl apply)."""
    raw = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# -- patch strategies from the OpenAPI definitions -----------------------------------------


@cache
def _definitions() -> dict[str, Any]:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = root / f"{_KUBERNETES_VERSION}-local-strict" / "_definitions.json"
    data = orjson.loads(path.read_bytes())
    defs: dict[str, Any] = data["$defs"]
    return defs


@cache
def _kinds() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) of every built-in kind → its definition name."""
    out = {}
    for name, raw in _definitions().items():
        gvks = raw.get("x-kubernetes-group-version-kind") or []
        if len(gvks) != 1:
            continue
        gvk = gvks[0]
        api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
        out[(api_version, str(gvk["kind"]))] = name
    return out


class Meta:
    """The patch strategy of one field (and, lazily, of its children)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.strategy = str(raw.get("x-kubernetes-patch-strategy") or "")
        self.merge_key = str(raw.get("x-kubernetes-patch-merge-key") or "")
        # A field's own patch annotations sit beside its $ref; the children are behind it.
        while "$ref" in raw:
            raw = _definitions().get(str(raw["$ref"]).removeprefix(_REF), {})
        self._raw = raw

    def field(self, name: str) -> Meta | None:
        props = self._raw.get("properties") or {}
        if name in props:
            return Meta(props[name])
        extra = self._raw.get("additionalProperties")
        return Meta(extra) if isinstance(extra, Mapping) else None

    def items(self) -> Meta | None:
        raw = self._raw.get("items")
        return Meta(raw) if isinstance(raw, Mapping) else None

    @property
    def merges(self) -> bool:
        return "merge" in self.strategy.split(",")

    @property
    def retains_keys(self) -> bool:
        return "retainKeys" in self.strategy.split(",")


def meta_for(api_version: str, kind: str) -> Meta | None:
    """The patch strategies of a built-in kind; None for a custom resource."""
    name = _kinds().get((api_version, kind))
    return Meta({"$ref": _REF + name}) if name is not None else None


# -- the three-way patch -------------------------------------------------------------------

_MISSING = object()


def three_way(
    original: Mapping[str, Any],
    live: Mapping[str, Any],
    desired: Mapping[str, Any],
    *,
    meta: Meta | None,
) -> dict[str, Any]:
    """The patch taking ``live`` to ``desired``, deleting only what ``original`` applied.

    With ``meta`` (a built-in kind) the result is a strategic merge patch; without it, a JSON
    merge patch. An empty dict means there is nothing to change.
    """
    return _map(original, live, desired, meta)


def _map(
    original: Mapping[str, Any],
    live: Mapping[str, Any],
    desired: Mapping[str, Any],
    meta: Meta | None,
) -> dict[str, Any]:
    patch: dict[str, Any] = {}

    # What the last apply set and the manifest no longer has goes.
    for key in original:
        if key not in desired and key in live:
            patch[key] = None

    for key, want in desired.items():
        have = live.get(key, _MISSING)
        before = original.get(key, _MISSING)
        sub = meta.field(key) if meta is not None else None
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            inner = _map(before if isinstance(before, Mapping) else {}, have, want, sub)
            if inner:
                if sub is not None and sub.retains_keys:
                    inner["$retainKeys"] = sorted(want)
                patch[key] = inner
        elif (
            meta is not None
            and sub is not None
            and sub.merges
            and isinstance(want, list)
            and isinstance(have, list)
        ):
            _list(patch, key, before if isinstance(before, list) else [], have, want, sub)
        elif have is _MISSING or have != want:
            patch[key] = copy.deepcopy(want)
    return patch


def _list(
    patch: dict[str, Any],
    key: str,
    original: list[Any],
    live: list[Any],
    desired: list[Any],
    meta: Meta,
) -> None:
    """A merged list: changed items by merge key, or added/removed scalars of a set."""
    merge_key = meta.merge_key
    if not merge_key:
        added = [v for v in desired if v not in live]
        removed = [v for v in original if v not in desired and v in live]
        if added:
            patch[key] = added
        if removed:
            patch[f"$deleteFromPrimitiveList/{key}"] = removed
        return

    def by_key(items: list[Any]) -> dict[Any, Mapping[str, Any]]:
        return {
            orjson.dumps(i.get(merge_key)): i
            for i in items
            if isinstance(i, Mapping) and merge_key in i
        }

    old, current = by_key(original), by_key(live)
    wanted = by_key(desired)
    items_meta = meta.items()
    changes: list[Any] = []
    for ident, item in wanted.items():
        have = current.get(ident)
        if have is None:
            changes.append(copy.deepcopy(dict(item)))
            continue
        inner = _map(old.get(ident) or {}, have, item, items_meta)
        if inner:
            changes.append({merge_key: item[merge_key], **inner})
    for ident, item in old.items():
        if ident not in wanted and ident in current:
            changes.append({merge_key: item[merge_key], "$patch": "delete"})
    if changes:
        patch[key] = changes
        patch[f"$setElementOrder/{key}"] = [{merge_key: i[merge_key]} for i in wanted.values()]
