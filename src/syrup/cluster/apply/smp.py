"""Strategic merge patch (``application/strategic-merge-patch+json``) for built-in kinds.

Follows the strategic-merge-patch design document of kubernetes/community: maps merge
recursively and ``null`` deletes a key; lists whose schema carries
``x-kubernetes-patch-strategy: merge`` merge by their ``x-kubernetes-patch-merge-key`` (or as
a set of scalars); other lists are replaced. The directives are:

* ``$patch: replace | delete | merge`` in a map or as a list element;
* ``$retainKeys: [...]`` on fields whose strategy includes ``retainKeys`` (keys not listed are
  cleared, so switching a Deployment's strategy type drops ``rollingUpdate``);
* ``$deleteFromPrimitiveList/<field>: [...]`` removes scalars from a merged list;
* ``$setElementOrder/<field>: [...]`` orders the merged list, which is how three-way
  ``kubectl apply`` keeps the manifest's order.

Malformed directives are 400 BadRequest, naming the field.
"""

from __future__ import annotations

import copy as _copy
from typing import Any

from syrup.cluster import errors
from syrup.cluster.apply.schemas import ANY, Schema

_PATCH = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


def strategic_merge(
    live: dict[str, Any], patch: dict[str, Any], *, schema: Schema | None
) -> dict[str, Any]:
    """``live`` with ``patch`` applied; neither argument is modified."""
    if not isinstance(patch, dict):
        raise errors.BadRequest("a strategic merge patch must be a JSON object")
    result = _merge_map(live if isinstance(live, dict) else {}, patch, schema or ANY, "")
    if result is None:
        raise errors.BadRequest("a strategic merge patch cannot delete the whole object")
    return result


def _merge_map(
    live: dict[str, Any], patch: dict[str, Any], schema: Schema, path: str
) -> dict[str, Any] | None:
    directive = patch.get(_PATCH)
    if directive is not None:
        if directive == "delete":
            return None
        if directive == "replace":
            replaced: dict[str, Any] = _clean(patch)
            return replaced
        if directive != "merge":
            raise errors.BadRequest(
                f"{path or 'the patch'}: unknown $patch directive {directive!r}"
            )

    retain = patch.get(_RETAIN)
    if retain is not None and not isinstance(retain, list):
        raise errors.BadRequest(f"{path}: $retainKeys must be a list of field names")

    out = dict(live)
    props = schema.properties
    orders: dict[str, list[Any]] = {}
    deletions: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_PATCH, _RETAIN):
            continue
        if key.startswith(_ORDER):
            if not isinstance(value, list):
                raise errors.BadRequest(f"{path}.{key}: must be a list")
            orders[key[len(_ORDER) :]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            if not isinstance(value, list):
                raise errors.BadRequest(f"{path}.{key}: must be a list")
            deletions[key[len(_DELETE_PRIMITIVE) :]] = value
            continue
        if value is None:
            out.pop(key, None)
            continue
        sub = props.get(key) or schema.additional or ANY
        merged = _merge_value(out.get(key), value, sub, f"{path}.{key}")
        if merged is _DELETED:
            out.pop(key, None)
        else:
            out[key] = merged

    for name, values in deletions.items():
        current = out.get(name)
        if isinstance(current, list):
            out[name] = [v for v in current if v not in values]

    for name, order in orders.items():
        current = out.get(name)
        if isinstance(current, list):
            sub = props.get(name) or ANY
            out[name] = _ordered(current, order, sub, live.get(name))

    if retain is not None:
        keep = set(retain)
        out = {k: v for k, v in out.items() if k in keep}
    return out


_DELETED = object()


def _merge_value(live: Any, patch: Any, schema: Schema, path: str) -> Any:
    if isinstance(patch, dict):
        if not isinstance(live, dict):
            live = {}
        if schema.map_type == "atomic" and patch.get(_PATCH) is None:
            return _clean(patch)
        merged = _merge_map(live, patch, schema, path)
        return _DELETED if merged is None else merged
    if isinstance(patch, list):
        if "merge" not in schema.patch_strategy:
            return _clean(patch)
        return _merge_list(live if isinstance(live, list) else [], patch, schema, path)
    return patch


def _merge_list(live: list[Any], patch: list[Any], schema: Schema, path: str) -> list[Any]:
    key = schema.patch_key
    items = schema.items or ANY

    # A `$patch: replace` element replaces the whole list with the other elements.
    if any(isinstance(p, dict) and p.get(_PATCH) == "replace" for p in patch):
        return [_clean(p) for p in patch if not (isinstance(p, dict) and _PATCH in p)]

    if not key:
        # A merged list of scalars: a set union that keeps the live order.
        out = list(live)
        for value in patch:
            if isinstance(value, dict) and value.get(_PATCH) == "delete":
                continue
            if value not in out:
                out.append(value)
        return out

    out = [_copy.copy(i) for i in live]
    for element in patch:
        if not isinstance(element, dict):
            raise errors.BadRequest(f"{path}: list elements must be objects with {key!r}")
        if key not in element:
            raise errors.BadRequest(f"{path}: an element is missing its merge key {key!r}")
        wanted = element[key]
        index = next(
            (i for i, item in enumerate(out) if isinstance(item, dict) and item.get(key) == wanted),
            None,
        )
        if element.get(_PATCH) == "delete":
            if index is not None:
                out = [i for i in out if not (isinstance(i, dict) and i.get(key) == wanted)]
            continue
        if index is None:
            out.append(_clean(element))
        else:
            merged = _merge_map(out[index], element, items, f"{path}[{key}={wanted}]")
            if merged is None:
                del out[index]
            else:
                out[index] = merged
    return out


def _ordered(current: list[Any], order: list[Any], schema: Schema, live: Any) -> list[Any]:
    """``current`` sorted by ``$setElementOrder``; items it does not name keep their place."""
    key = schema.patch_key

    def ident(item: Any) -> Any:
        if key and isinstance(item, dict):
            return _hashable(item.get(key))
        return _hashable(item)

    rank = {ident(o): i for i, o in enumerate(order)}
    named = sorted((i for i in current if ident(i) in rank), key=lambda i: rank[ident(i)])
    out: list[Any] = []
    it = iter(named)
    for item in current:
        out.append(next(it) if ident(item) in rank else item)
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return repr(value)
    return value


def _clean(value: Any) -> Any:
    """A patch value with its directives removed, for values that replace the live one."""
    if isinstance(value, dict):
        return {
            k: _clean(v)
            for k, v in value.items()
            if not (k in (_PATCH, _RETAIN) or k.startswith(("$setElementOrder/", "$deleteFrom")))
            and v is not None
        }
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
