"""Sync and compare options, from an Application and from each resource's annotations.

Argo CD reads the same ``Key=Value`` strings in two places (REFERENCE.md, "Sync Options"):
``spec.syncPolicy.syncOptions`` (and ``operation.sync.syncOptions``) for the whole app, and the
comma-separated ``argocd.argoproj.io/sync-options`` annotation on one resource, which wins for
that resource. ``argocd.argoproj.io/compare-options`` carries ``IgnoreExtraneous`` (the resource
does not make the app OutOfSync when only it is extra) and ``ServerSideDiff``.

Every option parses into one field of :class:`SyncOptions`; a field left ``None`` was not set,
so :meth:`SyncOptions.over` layers a resource's settings on the app's. An unknown option or a
value of the wrong kind is an :class:`InvalidOption` naming the option and where it came from;
Argo CD ignores unknown options silently, which hides typos such as ``PruneLas=true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from syrup import errors

SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"


class InvalidOption(errors.InvalidInput):
    """A sync or compare option that Syrup cannot read."""


class Propagation(StrEnum):
    FOREGROUND = "foreground"
    BACKGROUND = "background"
    ORPHAN = "orphan"

    @property
    def api_value(self) -> str:
        """The ``propagationPolicy`` the Kubernetes API expects."""
        return self.value.capitalize()


class Removal(StrEnum):
    """Whether an object may be removed (``Prune=`` and ``Delete=``)."""

    ALLOW = "true"
    NEVER = "false"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class SyncOptions:
    """Every option Syrup understands; ``None`` means "not set here"."""

    prune_last: bool | None = None
    apply_out_of_sync_only: bool | None = None
    replace: bool | None = None
    server_side_apply: bool | None = None
    prune_propagation: Propagation | None = None
    respect_ignore_differences: bool | None = None
    skip_dry_run_on_missing_resource: bool | None = None
    prune: Removal | None = None
    delete: Removal | None = None
    create_namespace: bool | None = None
    validate: bool | None = None
    fail_on_shared_resource: bool | None = None
    ignore_extraneous: bool | None = None
    server_side_diff: bool | None = None

    def over(self, base: SyncOptions) -> SyncOptions:
        """These options where set, ``base``'s elsewhere (a resource's over its app's)."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in changes.items() if v is not None})

    # Effective values, with Argo CD's defaults for options left unset.

    @property
    def may_prune(self) -> bool:
        return self.prune is not Removal.NEVER

    @property
    def may_delete(self) -> bool:
        return self.delete is not Removal.NEVER

    @property
    def propagation(self) -> Propagation:
        return self.prune_propagation or Propagation.FOREGROUND

    @property
    def validates(self) -> bool:
        return self.validate is not False


def _bool(value: str, *, option: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    raise InvalidOption(f"{option} must be true or false, got {value!r}", where=where)


def _enum_reader(cls: type[StrEnum]) -> Callable[[str, str, str], Any]:
    def read(value: str, option: str, where: str) -> Any:
        try:
            return cls(value.strip().lower())
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise InvalidOption(
                f"{option} must be one of {allowed}, got {value!r}", where=where
            ) from None

    return read


def _bool_reader(value: str, option: str, where: str) -> Any:
    return _bool(value, option=option, where=where)


_SYNC_KEYS: dict[str, tuple[str, Callable[[str, str, str], Any]]] = {
    "PruneLast": ("prune_last", _bool_reader),
    "ApplyOutOfSyncOnly": ("apply_out_of_sync_only", _bool_reader),
    "Replace": ("replace", _bool_reader),
    "ServerSideApply": ("server_side_apply", _bool_reader),
    "PrunePropagationPolicy": ("prune_propagation", _enum_reader(Propagation)),
    "RespectIgnoreDifferences": ("respect_ignore_differences", _bool_reader),
    "SkipDryRunOnMissingResource": ("skip_dry_run_on_missing_resource", _bool_reader),
    "Prune": ("prune", _enum_reader(Removal)),
    "Delete": ("delete", _enum_reader(Removal)),
    "CreateNamespace": ("create_namespace", _bool_reader),
    "Validate": ("validate", _bool_reader),
    "FailOnSharedResource": ("fail_on_shared_resource", _bool_reader),
}
_COMPARE_KEYS: dict[str, tuple[str, Callable[[str, str, str], Any]]] = {
    "ServerSideDiff": ("server_side_diff", _bool_reader),
}


def _parse(
    items: Iterable[str],
    *,
    where: str,
    known: Mapping[str, tuple[str, Callable[[str, str, str], Any]]],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in known:
            hint = ", ".join(sorted(known))
            raise InvalidOption(f"unknown option {key!r} (known: {hint})", where=where)
        if not sep:
            raise InvalidOption(f"option {key!r} needs a value, as in {key}=true", where=where)
        attr, reader = known[key]
        values[attr] = reader(value, key, where)
    return values


def parse(items: Iterable[str], *, where: str = "spec.syncPolicy.syncOptions") -> SyncOptions:
    """App-level options, a list of ``Key=Value`` strings."""
    return SyncOptions(**_parse(items, where=where, known=_SYNC_KEYS))


def _where(obj: Mapping[str, Any], annotation: str) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "?"
    return f"{obj.get('kind', '?')}/{name}: annotation {annotation}"


def for_resource(obj: Mapping[str, Any]) -> SyncOptions:
    """A resource's own sync and compare options (unset fields fall back to the app's)."""
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    sync_items = str(ann.get(SYNC_OPTIONS, "")).split(",")
    values = _parse(sync_items, where=_where(obj, SYNC_OPTIONS), known=_SYNC_KEYS)

    for raw in str(ann.get(COMPARE_OPTIONS, "")).split(","):
        item = raw.strip()
        # IgnoreExtraneous is a bare word in Argo CD's annotation; the rest are Key=Value.
        if item == "IgnoreExtraneous":
            values["ignore_extraneous"] = True
        elif item:
            values.update(_parse([item], where=_where(obj, COMPARE_OPTIONS), known=_COMPARE_KEYS))
    return SyncOptions(**values)


def effective(app: SyncOptions, obj: Mapping[str, Any]) -> SyncOptions:
    """The options that apply to ``obj`` in an app whose options are ``app``."""
    return for_resource(obj).over(app)
