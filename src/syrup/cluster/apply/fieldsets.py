"""Sets of field paths, the unit of ownership in server-side apply.

A set is kept as a tree in the shape of Kubernetes' ``FieldsV1`` format: each key is a path
element (``f:<field>``, ``k:<json key of a list-map item>``, ``v:<json value of a set item>``,
``i:<index>``) and the key ``"."`` marks that the node itself is a member. Working on the same
shape as the stored format means reading and writing ``managedFields`` is a near copy, and set
operations are plain recursive dict walks (no path objects to allocate).

The rules for which paths a value contributes follow structured-merge-diff (the library behind
Kubernetes' server-side apply): scalars, atomic lists and atomic maps are leaves; every item of
a list-map or set is a member along with its fields; struct and map fields contribute their
leaves, and an empty or null field is a member itself. That is the set of an apply. The set of
any other write is what :func:`compare` finds added or changed, where an added object is a member
along with everything below it, so Update entries carry ``"."`` on the maps, pointer structs and
list items the write created, as a real API server's do.
"""

from __future__ import annotations

from typing import Any

import orjson

from syrup.cluster.apply import zerovalues
from syrup.cluster.apply.schemas import ANY, Schema

Tree = dict[str, Any]

MEMBER = "."

#: Key fields that Kubernetes' schemas default, so an item without them still has a key.
_KEY_DEFAULTS = {"protocol": "TCP"}


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def item_key(item: Any, schema: Schema) -> str:
    """The path element of one list item: ``k:{...}`` for list-maps, ``v:...`` for sets."""
    if schema.list_type == "map" and isinstance(item, dict):
        key = {}
        for name in schema.list_keys:
            value = item.get(name)
            if value is None:
                value = _KEY_DEFAULTS.get(name)
            if value is not None:
                key[name] = value
        return "k:" + _dumps(key)
    return "v:" + _dumps(item)


def item_keys(items: list[Any], schema: Schema) -> list[str]:
    return [item_key(i, schema) for i in items]


# -- from a value ------------------------------------------------------------------------------


def from_object(value: Any, schema: Schema | None) -> Tree:
    """Every path the value sets, per the schema (``None`` schema: untyped, lists atomic)."""
    out: Tree = {}
    if isinstance(value, dict):
        _walk_map(value, schema or ANY, out)
    return out


def _walk_map(value: dict[str, Any], schema: Schema, out: Tree) -> None:
    if schema.map_type == "atomic":
        return
    props = schema.properties
    for name, child in value.items():
        sub = props.get(name) or schema.additional or ANY
        node: Tree = {}
        _walk_value(child, sub, node)
        if not node or name not in props:
            node[MEMBER] = {}
        out["f:" + name] = node


def _walk_value(value: Any, schema: Schema, out: Tree) -> None:
    if isinstance(value, dict):
        if value and schema.map_type != "atomic":
            _walk_map(value, schema, out)
    elif isinstance(value, list):
        if schema.list_type == "atomic" or not value:
            return
        items = schema.items or ANY
        for item in value:
            node: Tree = {MEMBER: {}}
            if isinstance(item, dict) and item:
                _walk_map(item, items, node)
            out[item_key(item, schema)] = node


# -- set algebra -------------------------------------------------------------------------------


def union(a: Tree, b: Tree) -> Tree:
    if not a:
        return copy(b)
    if not b:
        return copy(a)
    out = copy(a)
    _union_into(out, b)
    return out


def _union_into(a: Tree, b: Tree) -> None:
    for k, v in b.items():
        mine = a.get(k)
        if mine is None:
            a[k] = copy(v)
        elif v:
            _union_into(mine, v)


def copy(a: Tree) -> Tree:
    return {k: copy(v) if v else {} for k, v in a.items()}


def difference(a: Tree, b: Tree) -> Tree:
    """Members of ``a`` that are not members of ``b``."""
    out: Tree = {}
    for k, v in a.items():
        other = b.get(k)
        if other is None:
            out[k] = copy(v) if v else {}
        elif k == MEMBER:
            continue
        elif v:
            rest = difference(v, other)
            if rest:
                out[k] = rest
    return out


def intersection(a: Tree, b: Tree) -> Tree:
    out: Tree = {}
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    for k, v in small.items():
        other = big.get(k)
        if other is None:
            continue
        if k == MEMBER:
            out[k] = {}
            continue
        both = intersection(v, other)
        if both:
            out[k] = both
    return out


def has_descendant(a: Tree) -> bool:
    """True if any member lies strictly below this node."""
    return any(k != MEMBER for k in a)


def without(a: Tree, paths: Tree) -> Tree:
    """``a`` with whole subtrees removed where ``paths`` marks a member."""
    out: Tree = {}
    for k, v in a.items():
        cut = paths.get(k)
        if cut is None:
            out[k] = v
        elif MEMBER in cut:
            continue
        else:
            rest = without(v, cut)
            if rest:
                out[k] = rest
    return out


# -- FieldsV1 ----------------------------------------------------------------------------------


def to_fields_v1(a: Tree) -> dict[str, Any]:
    """The stored form: a member without children is ``{}``, with children it keeps ``"."``.

    ``"."`` comes first, where Kubernetes writes it.
    """
    out: dict[str, Any] = {MEMBER: {}} if MEMBER in a and len(a) > 1 else {}
    for k, v in a.items():
        if k != MEMBER:
            out[k] = to_fields_v1(v)
    return out


def from_fields_v1(d: Any) -> Tree:
    if not isinstance(d, dict):
        return {}
    if not d:
        return {MEMBER: {}}
    return {k: ({} if k == MEMBER else from_fields_v1(v)) for k, v in d.items()}


# -- paths for messages ------------------------------------------------------------------------


def leaf_paths(a: Tree, prefix: str = "") -> list[str]:
    """Members as Kubernetes prints them: ``.spec.containers[name="app"].image``."""
    out: list[str] = []
    for k, v in a.items():
        if k == MEMBER:
            out.append(prefix)
            continue
        out.extend(leaf_paths(v, prefix + _element(k)))
    return out


def _element(k: str) -> str:
    kind, _, rest = k.partition(":")
    if kind == "f":
        return "." + rest
    if kind == "k":
        try:
            fields = orjson.loads(rest)
        except orjson.JSONDecodeError:
            return f"[{rest}]"
        return "[" + ",".join(f"{n}={_dumps(v)}" for n, v in fields.items()) + "]"
    if kind == "v":
        return f"[={rest}]"
    return f"[{rest}]"


# -- comparing two values ----------------------------------------------------------------------
#
# The comparison follows structured-merge-diff's: a path absent from the old object and present
# in the new one is added, with everything below it, so a new object, map or list item with
# children is itself a member (FieldsV1 writes it with ``"."``); a path present in both is only
# a member when it is a leaf whose value changed. "Absent" is judged as a Go API server judges
# it: a field the empty Go object always holds (:mod:`.zerovalues`) is present in any object
# that exists, even where the stored JSON leaves it out.


def compare(old: Any, new: Any, schema: Schema | None) -> tuple[Tree, Tree, Tree]:
    """(added, removed, modified) paths between two objects."""
    added: Tree = {}
    removed: Tree = {}
    modified: Tree = {}
    if old != new:
        _compare_map(
            old if isinstance(old, dict) else {},
            new if isinstance(new, dict) else {},
            schema or ANY,
            added,
            removed,
            modified,
        )
    return added, removed, modified


def all_paths(value: Any, schema: Schema) -> Tree:
    """Every path of a value that a write creates: the value itself and all below it."""
    node: Tree = {MEMBER: {}}
    if isinstance(value, dict):
        if value and schema.map_type != "atomic":
            props = schema.properties
            for name, child in value.items():
                sub = props.get(name) or schema.additional or ANY
                node["f:" + name] = all_paths(child, sub)
    elif isinstance(value, list) and value and schema.list_type != "atomic":
        items = schema.items or ANY
        for item in value:
            node[item_key(item, schema)] = all_paths(item, items)
    return node


def _compare_map(
    old: dict[str, Any],
    new: dict[str, Any],
    schema: Schema,
    added: Tree,
    removed: Tree,
    modified: Tree,
) -> None:
    props = schema.properties
    for name, nv in new.items():
        sub = props.get(name) or schema.additional or ANY
        key = "f:" + name
        if name in old:
            ov = old[name]
            if ov != nv:
                _compare_child(ov, nv, sub, key, added, removed, modified)
        elif name in props and name in zerovalues.always_written(schema.ref):
            # Go decodes a null into the empty value, so only content is a change.
            zero = _zero(nv)
            if nv is not None and nv != zero:
                _compare_child(zero, nv, sub, key, added, removed, modified)
        else:
            added[key] = all_paths(nv, sub)
    for name, ov in old.items():
        if name in new:
            continue
        sub = props.get(name) or schema.additional or ANY
        key = "f:" + name
        if name in props and name in zerovalues.always_written(schema.ref):
            zero = _zero(ov)
            if ov is not None and ov != zero:
                _compare_child(ov, zero, sub, key, added, removed, modified)
        else:
            removed[key] = all_paths(ov, sub)


def _zero(value: Any) -> Any:
    """What a field the empty Go object holds looks like next to ``value``."""
    if isinstance(value, list):
        return []
    return {} if isinstance(value, dict) else value


def _compare_child(
    ov: Any,
    nv: Any,
    schema: Schema,
    key: str,
    added: Tree,
    removed: Tree,
    modified: Tree,
) -> None:
    a: Tree = {}
    r: Tree = {}
    m: Tree = {}
    _compare_value(ov, nv, schema, a, r, m)
    if a:
        added[key] = a
    if r:
        removed[key] = r
    if m:
        modified[key] = m


def _compare_value(
    ov: Any,
    nv: Any,
    schema: Schema,
    added: Tree,
    removed: Tree,
    modified: Tree,
) -> None:
    # Two objects (or null and a non-empty object) compare field by field; two empty or null
    # values compare as a leaf, which keeps the empty/null distinction.
    if schema.map_type != "atomic" and _both(ov, nv, dict):
        _compare_map(ov or {}, nv or {}, schema, added, removed, modified)
        return
    if schema.list_type != "atomic" and _both(ov, nv, list):
        _compare_list(ov or [], nv or [], schema, added, removed, modified)
        return
    # A leaf (scalar, atomic, or a change of shape): the field itself changed.
    modified[MEMBER] = {}
    old_node: Tree = {}
    new_node: Tree = {}
    _walk_value(ov, schema, old_node)
    _walk_value(nv, schema, new_node)
    if old_node or new_node:
        r = difference(old_node, new_node)
        a = difference(new_node, old_node)
        if r:
            removed.update(r)
        if a:
            added.update(a)


def _both(ov: Any, nv: Any, kind: type) -> bool:
    """Whether two values compare as containers of ``kind`` (a null stands for an empty one)."""
    if isinstance(ov, kind):
        return isinstance(nv, kind) or (nv is None and bool(ov))
    return ov is None and isinstance(nv, kind) and bool(nv)


def _compare_list(
    ov: list[Any],
    nv: list[Any],
    schema: Schema,
    added: Tree,
    removed: Tree,
    modified: Tree,
) -> None:
    items = schema.items or ANY
    old_by_key = {item_key(i, schema): i for i in ov}
    new_keys = set()
    for item in nv:
        key = item_key(item, schema)
        new_keys.add(key)
        if key not in old_by_key:
            added[key] = all_paths(item, items)
            continue
        before = old_by_key[key]
        if before == item:
            continue
        if isinstance(before, dict) and isinstance(item, dict):
            _compare_child(before, item, items, key, added, removed, modified)
        else:
            modified[key] = {MEMBER: {}}
    for key, item in old_by_key.items():
        if key not in new_keys:
            removed[key] = all_paths(item, items)
