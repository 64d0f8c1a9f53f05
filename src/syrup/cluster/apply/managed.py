"""Field ownership: ``metadata.managedFields``, server-side apply and its conflicts.

This follows Kubernetes' "Server-Side Apply" documentation and the structured-merge-diff rules
behind it:

* an apply merges the applied configuration into the live object (list-maps by their keys,
  atomic lists and scalars replaced), and the manager's Apply entry becomes exactly the set of
  fields it applied;
* a field the manager applied last time but not now is removed from the object unless another
  manager still owns it;
* changing a field another manager owns is a conflict (409 naming each field and manager)
  unless ``force``, which moves the field to the applier; applying the same value shares it;
* any other write (create, update, patch, status) is an Update entry for its manager, which
  takes the fields it added or changed from everyone else; an object, map or list item the write
  created is a member itself, so the entry writes it with ``"."`` as kube-apiserver does
  (:func:`fieldsets.compare`, judging "created" against the kind's Go type).

Ownership is computed before defaulting, as in Kubernetes, so defaulted fields belong to the
writer of an update but to no one after an apply. The server-set metadata fields
(``name``, ``uid``, ``resourceVersion``...) never appear in a set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syrup.cluster import errors
from syrup.cluster.apply import fieldsets
from syrup.cluster.apply.fieldsets import MEMBER, Tree
from syrup.cluster.apply.schemas import ANY, Schema

APPLY = "Apply"
UPDATE = "Update"

_STRIPPED_META = (
    "f:name",
    "f:namespace",
    "f:creationTimestamp",
    "f:selfLink",
    "f:uid",
    "f:generation",
    "f:managedFields",
    "f:resourceVersion",
    "f:deletionTimestamp",
    "f:deletionGracePeriodSeconds",
)


class _Scope:
    """Which endpoint a write came through, deciding the paths its sets may hold."""

    __slots__ = ("status_subresource", "subresource")

    def __init__(self, *, subresource: str | None, status_subresource: bool) -> None:
        self.subresource = subresource
        self.status_subresource = status_subresource

    def strip(self, tree: Tree) -> Tree:
        return _strip(
            tree, subresource=self.subresource, status_subresource=self.status_subresource
        )


def _strip(tree: Tree, *, subresource: str | None, status_subresource: bool) -> Tree:
    """Drop the paths no manager ever owns, and those of the other endpoint."""
    tree.pop("f:apiVersion", None)
    tree.pop("f:kind", None)
    meta = tree.get("f:metadata")
    if meta is not None:
        for key in _STRIPPED_META:
            meta.pop(key, None)
        meta.pop(MEMBER, None)
        if not meta:
            del tree["f:metadata"]
    if status_subresource:
        if subresource == "status":
            return {k: v for k, v in tree.items() if k in ("f:status", "f:metadata")}
        tree.pop("f:status", None)
    return tree


def _view(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without ``managedFields``, for comparing (a shallow copy, no deep copies)."""
    if not obj:
        return {}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out = dict(obj)
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
        return out
    return obj


# -- the stored entries ------------------------------------------------------------------------


class _Entry:
    """One managedFields entry; its field set is parsed only when an operation needs it."""

    __slots__ = (
        "_dirty",
        "_fields",
        "_original",
        "api_version",
        "manager",
        "operation",
        "subresource",
        "time",
    )

    def __init__(
        self,
        *,
        manager: str,
        operation: str,
        api_version: str,
        time: str | None,
        fields: Tree | None,
        subresource: str | None,
        original: dict[str, Any] | None = None,
    ) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.time = time
        self._fields = fields
        self._original = original
        self._dirty = original is None
        self.subresource = subresource

    @property
    def fields(self) -> Tree:
        if self._fields is None:
            raw = (self._original or {}).get("fieldsV1")
            self._fields = fieldsets.from_fields_v1(raw) if raw else {}
        return self._fields

    @fields.setter
    def fields(self, value: Tree) -> None:
        self._fields = value
        self._dirty = True

    @property
    def empty(self) -> bool:
        if self._fields is None:
            return not (self._original or {}).get("fieldsV1")
        return not self._fields

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource or "")

    def to_json(self) -> dict[str, Any]:
        original = self._original
        if (
            not self._dirty
            and original is not None
            and original.get("time") == self.time
            and original.get("apiVersion") == self.api_version
        ):
            return original
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = fieldsets.to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _read_entries(obj: dict[str, Any] | None) -> dict[tuple[str, str, str], _Entry]:
    out: dict[tuple[str, str, str], _Entry] = {}
    meta = (obj or {}).get("metadata") or {}
    for raw in meta.get("managedFields") or []:
        if not isinstance(raw, dict):
            continue
        entry = _Entry(
            manager=str(raw.get("manager", "")),
            operation=str(raw.get("operation", UPDATE)),
            api_version=str(raw.get("apiVersion", "")),
            time=raw.get("time"),
            fields=None,
            subresource=raw.get("subresource") or None,
            original=raw,
        )
        out[entry.key] = entry
    return out


def _write_entries(obj: dict[str, Any], entries: Iterable[_Entry]) -> None:
    kept = [e for e in entries if not e.empty]
    # Kubernetes' order: Apply before Update, then oldest first, then by manager.
    kept.sort(
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource or "")
    )
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = [e.to_json() for e in kept]
    else:
        meta.pop("managedFields", None)


# -- update ------------------------------------------------------------------------------------


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    schema: Schema | None,
    now: str,
    subresource: str | None = None,
    status_subresource: bool = True,
) -> None:
    """Record a non-apply write of ``new`` over ``old`` in ``new``'s managedFields (in place).

    The manager takes every field it added or changed; those fields leave the other managers'
    sets, as do the fields it removed. ``new``'s incoming managedFields are ignored unless the
    client changed them on purpose (a client may reset them to ``[]`` to clear ownership).
    """
    old_view = _view(old)
    new_view = _view(new)
    entries = _read_entries(old)
    incoming = (new.get("metadata") or {}).get("managedFields")
    old_meta = (old or {}).get("metadata") or {}
    if incoming is not None and incoming != old_meta.get("managedFields"):
        # A client may overwrite managedFields; an empty list clears them all.
        entries = _read_entries(new)
        if not entries:
            _write_entries(new, [])
            return

    added, removed, modified = fieldsets.compare(old_view, new_view, schema)
    scope = _Scope(subresource=subresource, status_subresource=status_subresource)
    changed = scope.strip(fieldsets.union(added, modified))
    removed = scope.strip(removed)
    gone = fieldsets.union(changed, removed)

    api_version = str(new.get("apiVersion", ""))
    me = (manager, UPDATE, subresource or "")
    for key, entry in list(entries.items()):
        if key != me and gone:
            entry.fields = fieldsets.difference(entry.fields, gone)
    mine = entries.get(me)
    if mine is None:
        if not changed:
            _write_entries(new, entries.values())
            return
        mine = _Entry(
            manager=manager,
            operation=UPDATE,
            api_version=api_version,
            time=now,
            fields={},
            subresource=subresource,
        )
        entries[me] = mine
    if changed or removed:
        mine.fields = fieldsets.union(fieldsets.difference(mine.fields, removed), changed)
        mine.time = now
        mine.api_version = api_version
    _write_entries(new, entries.values())


# -- apply -------------------------------------------------------------------------------------


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    schema: Schema | None,
    now: str,
    subresource: str | None = None,
    status_subresource: bool = True,
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``live`` (``None``: create it).

    Raises :class:`errors.Conflict` naming each conflicting field and its manager unless
    ``force``. The result is neither defaulted nor validated; its managedFields are final.
    """
    if not isinstance(applied, dict):
        raise errors.BadRequest("the applied configuration must be an object")
    scope = _Scope(subresource=subresource, status_subresource=status_subresource)
    api_version = str(applied.get("apiVersion", ""))
    entries = _read_entries(live)
    me = (manager, APPLY, subresource or "")
    last = entries.get(me)
    last_set = last.fields if last else {}

    # The applied set is what the manager owns from now on.
    config = _view(applied)
    applied_set = scope.strip(fieldsets.from_object(config, schema))

    # Merge the configuration into the live object, then drop what the manager stopped
    # applying when no one else holds it.
    live_view = _view(live)
    merged: dict[str, Any] = merge(live_view, config, schema or ANY)
    dropped = fieldsets.difference(last_set, applied_set) if last_set else {}
    if dropped:
        owned = applied_set
        for key, entry in entries.items():
            if key != me:
                owned = fieldsets.union(owned, entry.fields)
        drop = fieldsets.difference(dropped, owned)
        if drop:
            merged = remove(merged, drop, owned, schema or ANY)

    # Conflicts: fields this apply changes that another manager owns.
    added, removed, modified = fieldsets.compare(live_view, merged, schema)
    changed = scope.strip(fieldsets.union(added, modified))
    removed = scope.strip(removed)
    conflicts: list[tuple[_Entry, Tree]] = []
    contested = fieldsets.intersection(changed, applied_set) if changed else {}
    for key, entry in entries.items():
        if key == me or not contested:
            continue
        clash = fieldsets.intersection(entry.fields, contested)
        if clash:
            conflicts.append((entry, clash))
    if conflicts and not force:
        raise _conflict_error(conflicts)

    # Ownership moves: forced fields leave their old managers, removed fields leave everyone.
    for entry, clash in conflicts:
        entry.fields = fieldsets.difference(entry.fields, clash)
    if removed:
        for key, entry in entries.items():
            if key != me:
                entry.fields = fieldsets.difference(entry.fields, removed)

    object_changed = bool(changed or removed)
    if last is None:
        last = _Entry(
            manager=manager,
            operation=APPLY,
            api_version=api_version,
            time=now,
            fields=applied_set,
            subresource=subresource,
        )
        entries[me] = last
    elif object_changed or last.fields != applied_set or last.api_version != api_version:
        last.fields = applied_set
        last.time = now
        last.api_version = api_version
    _write_entries(merged, entries.values())
    return merged


def _conflict_error(conflicts: list[tuple[_Entry, Tree]]) -> errors.Conflict:
    causes: list[errors.Cause] = []
    groups: list[tuple[str, list[str]]] = []
    for entry, clash in conflicts:
        who = f'"{entry.manager}"'
        if entry.subresource:
            who += f' with subresource "{entry.subresource}"'
        label = f"{who} using {entry.api_version}" if entry.api_version else who
        paths = sorted(fieldsets.leaf_paths(clash))
        groups.append((label, paths))
        causes.extend(
            errors.Cause(field=p, message=f"conflict with {label}", reason="FieldManagerConflict")
            for p in paths
        )
    total = len(causes)
    if total == 1:
        label, paths = groups[0]
        message = f"Apply failed with 1 conflict: conflict with {label}: {paths[0]}"
    else:
        parts = []
        for label, paths in groups:
            noun = "conflict" if len(paths) == 1 else "conflicts"
            parts.append(f"{noun} with {label}:\n" + "\n".join(f"- {p}" for p in paths))
        message = f"Apply failed with {total} conflicts: " + "\n".join(parts)
    return errors.Conflict(message, causes=causes)


# -- merging and removing values ---------------------------------------------------------------


def merge(live: Any, config: Any, schema: Schema) -> Any:
    """The applied configuration merged into the live value (the configuration wins)."""
    if isinstance(config, dict):
        if not isinstance(live, dict) or schema.map_type == "atomic":
            return config
        out = dict(live)
        props = schema.properties
        for name, value in config.items():
            if value is None:
                out.pop(name, None)
                continue
            sub = props.get(name) or schema.additional or ANY
            out[name] = merge(live.get(name), value, sub)
        return out
    if isinstance(config, list) and isinstance(live, list) and schema.list_type != "atomic":
        return _merge_list(live, config, schema)
    return config


def _merge_list(live: list[Any], config: list[Any], schema: Schema) -> list[Any]:
    items = schema.items or ANY
    live_by_key = {fieldsets.item_key(i, schema): i for i in live}
    seen: set[str] = set()
    out: list[Any] = []
    for item in config:
        key = fieldsets.item_key(item, schema)
        if key in seen:
            continue
        seen.add(key)
        if schema.list_type == "map" and key in live_by_key:
            out.append(merge(live_by_key[key], item, items))
        else:
            out.append(item)
    # Items only the live object has (owned by others) keep their place after the applied ones.
    for item in live:
        if fieldsets.item_key(item, schema) not in seen:
            out.append(item)
    return out


def remove(value: Any, drop: Tree, owned: Tree, schema: Schema) -> Any:
    """``value`` without the member paths of ``drop``, keeping anything ``owned`` lies under."""
    if isinstance(value, dict):
        out = dict(value)
        props = schema.properties
        for k, sub_drop in drop.items():
            if not k.startswith("f:"):
                continue
            name = k[2:]
            if name not in out:
                continue
            sub_owned = owned.get(k) or {}
            if MEMBER in sub_drop and not sub_owned:
                del out[name]
                continue
            sub = props.get(name) or schema.additional or ANY
            before = out[name]
            after = remove(before, sub_drop, sub_owned, sub)
            if _emptied(before, after) and not sub_owned:
                del out[name]
            else:
                out[name] = after
        return out
    if isinstance(value, list) and schema.list_type != "atomic":
        items = schema.items or ANY
        out_list = []
        for item in value:
            key = fieldsets.item_key(item, schema)
            sub_drop = drop.get(key)
            if sub_drop is None:
                out_list.append(item)
                continue
            sub_owned = owned.get(key) or {}
            if MEMBER in sub_drop and not sub_owned:
                continue
            # An item that stays keeps its key fields: they are its identity, not its content.
            sub_drop = {k: v for k, v in sub_drop.items() if k[2:] not in schema.list_keys}
            out_list.append(remove(item, sub_drop, sub_owned, items))
        return out_list
    return value


def _emptied(before: Any, after: Any) -> bool:
    return bool(before) and isinstance(after, dict | list) and not after
