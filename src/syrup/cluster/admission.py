"""The admission seam: what happens to an object on every write before it is stored.

Storage calls :class:`Admission` for creates, updates, patches and applies; this module decides
how a patch body turns into a new object and runs defaulting, validation and managed-fields
bookkeeping. Keeping it behind one seam means storage stays about durability and watches while
the Kubernetes object semantics (``apply`` package) evolve on their own.

:class:`Admission` covers what the API server core needs: name rules, JSON merge patch
(RFC 7386) and JSON patch (RFC 6902). :class:`EngineAdmission` (what :func:`create` returns, and
what the server uses) adds the :mod:`syrup.cluster.apply` engine, in the order a real API server
runs it: decode (unknown fields per ``fieldValidation``, then pruned), default, validate, then
record field ownership (an Update entry, except after a server-side apply, whose Apply entry
the engine already wrote).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import jsonpatch
import orjson

from syrup import logs
from syrup.cluster import apply as engine
from syrup.cluster import errors
from syrup.cluster.resources import ResourceType

log = logs.get(__name__)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: Kinds whose names must be DNS-1123 labels rather than subdomains (apimachinery's rules).
_LABEL_NAMED = frozenset({"namespaces", "services"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, rest replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_name(rt: ResourceType, name: str) -> None:
    """Reject names that a real API server rejects (DNS-1123 label or subdomain)."""
    if not name:
        raise errors.Invalid(
            f'{rt.kind} "" is invalid: metadata.name: Required value: name or generateName '
            "is required",
            kind=rt.kind,
            group=rt.group,
            causes=[errors.Cause("metadata.name", "Required value", "FieldValueRequired")],
        )
    if rt.group == "rbac.authorization.k8s.io":
        # RBAC objects only need a valid path segment ("system:metrics-server" is fine).
        if name in (".", "..") or "/" in name or "%" in name:
            message = f"Invalid value: {name!r}: may not contain '/' or '%', or be '.' or '..'"
            raise errors.Invalid(
                f'{rt.kind}.{rt.group} "{name}" is invalid: metadata.name: {message}',
                kind=rt.kind,
                group=rt.group,
                name=name,
                causes=[errors.Cause("metadata.name", message)],
            )
        return
    if rt.plural in _LABEL_NAMED:
        ok = len(name) <= 63 and _DNS1123_LABEL.match(name) is not None
        rule = "a lowercase RFC 1123 label"
    else:
        ok = len(name) <= 253 and _DNS1123_SUBDOMAIN.match(name) is not None
        rule = "a lowercase RFC 1123 subdomain"
    if not ok:
        message = (
            f"Invalid value: {name!r}: {rule} must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
        raise errors.Invalid(
            f'{rt.kind} "{name}" is invalid: metadata.name: {message}',
            kind=rt.kind,
            group=rt.group,
            name=name,
            causes=[errors.Cause("metadata.name", message)],
        )


class Admission:
    """Turns write requests into objects to store; see the module docstring."""

    def __init__(self, *, allocate_cluster_ip: Callable[[], str] | None = None) -> None:
        self.allocate_cluster_ip = allocate_cluster_ip

    def crd_registered(self, crd: dict[str, Any]) -> None:
        """Storage tells admission a CRD is served (on load and after each CRD write)."""

    def crd_removed(self, name: str) -> None:
        """Storage tells admission a CRD is gone."""

    def admit(
        self,
        rt: ResourceType,
        *,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str | None,
        field_validation: str,
        now: str,
    ) -> list[str]:
        """Default and validate ``new`` in place before storing; return warnings."""
        check_name(rt, new.get("metadata", {}).get("name", ""))
        return []

    def patch(
        self,
        rt: ResourceType,
        *,
        live: dict[str, Any],
        patch: Any,
        patch_type: str,
        manager: str,
    ) -> dict[str, Any]:
        """Apply a merge or JSON patch body to ``live`` and return the new object."""
        if patch_type == MERGE_PATCH:
            if not isinstance(patch, dict):
                raise errors.BadRequest("merge patch body must be a JSON object")
            result = merge_patch(live, patch)
            assert isinstance(result, dict)
            return result
        if patch_type == JSON_PATCH:
            try:
                out = jsonpatch.apply_patch(live, patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise errors.Invalid(f"the JSON patch could not be applied: {exc}") from exc
            except (TypeError, ValueError, KeyError) as exc:
                raise errors.BadRequest(f"invalid JSON patch: {exc}") from exc
            if not isinstance(out, dict):
                raise errors.BadRequest("the JSON patch must leave an object")
            return out
        raise errors.UnsupportedMediaType(f"the media type {patch_type!r} is not supported")

    def apply(
        self,
        rt: ResourceType,
        *,
        live: dict[str, Any] | None,
        applied: dict[str, Any],
        manager: str,
        force: bool,
        now: str,
    ) -> dict[str, Any]:
        """Server-side apply; the base seam only supports creating from the applied object."""
        if live is None:
            return applied
        raise errors.UnsupportedMediaType("server-side apply is not available yet")


_CRDS = "customresourcedefinitions"
_CRD_GROUP = "apiextensions.k8s.io"


class EngineAdmission(Admission):
    """The admission the server runs: defaults, validation, managed fields, SMP and SSA."""

    def __init__(
        self,
        *,
        allocate_cluster_ip: Callable[[], str] | None = None,
        crd_for: Callable[[ResourceType], dict[str, Any] | None] | None = None,
    ) -> None:
        super().__init__(allocate_cluster_ip=allocate_cluster_ip)
        #: Storage's lookup of the CRD behind a custom resource type (set by storage).
        self.crd_for = crd_for
        self._crd_schemas: dict[tuple[str, str, str], tuple[Any, engine.Schema]] = {}
        #: The metadata dict of the object a server-side apply just produced, per thread: its
        #: ownership is final, so the admit that follows must not add an Update entry.
        self._applied = threading.local()

    # -- schemas ---------------------------------------------------------------------------

    def schema_for(self, rt: ResourceType) -> engine.Schema | None:
        """The schema of a built-in kind, or of a custom resource from its CRD."""
        if not rt.crd:
            return engine.schemas.for_kind(rt.api_version, rt.kind)
        crd = self.crd_for(rt) if self.crd_for is not None else None
        if crd is None:
            return engine.schemas.for_kind(rt.api_version, rt.kind)
        version_key = (crd.get("metadata") or {}).get("resourceVersion")
        key = (rt.crd, rt.version, str(version_key))
        cached = self._crd_schemas.get(key)
        if cached is not None:
            return cached[1]
        schema = engine.schemas.for_crd_version(crd, rt.version)
        self._crd_schemas = {k: v for k, v in self._crd_schemas.items() if k[0] != rt.crd}
        self._crd_schemas[key] = (version_key, schema)
        return schema

    def crd_registered(self, crd: dict[str, Any]) -> None:
        """Serve the CRD's schemas (validation, OpenAPI) from now on."""
        engine.schemas.register_crd(crd)

    def crd_removed(self, name: str) -> None:
        """Forget a deleted CRD's schemas so OpenAPI stops listing its kinds."""
        engine.schemas.unregister_crd(name)
        self._crd_schemas = {k: v for k, v in self._crd_schemas.items() if k[0] != name}

    # -- writes ----------------------------------------------------------------------------

    def admit(
        self,
        rt: ResourceType,
        *,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        manager: str,
        subresource: str | None,
        field_validation: str,
        now: str,
    ) -> list[str]:
        """Decode, default, validate and record ownership of ``new`` in place; return warnings."""
        meta = new.get("metadata")
        applied = getattr(self._applied, "meta", None) is meta
        self._applied.meta = None
        check_name(rt, (meta or {}).get("name", ""))
        schema = self.schema_for(rt)

        warnings: list[str] = []
        if old is None or not _same_content(old, new):
            warnings = self._decode_default_validate(
                rt, schema, old=old, new=new, field_validation=field_validation
            )
        # else: the stored object passed all of this when it was written; a no-op write (a
        # re-apply, a dry-run diff) skips straight to ownership.

        if old is not None:
            _keep_generation(rt, old, new)
            if applied:
                _keep_apply_time(old, new)

        if not applied:
            engine.managed.record_update(
                old,
                new,
                manager=manager or "unknown",
                schema=schema,
                now=now,
                subresource=subresource,
                status_subresource="status" in rt.subresources,
            )
        if rt.group == "" and rt.kind == "Service":
            # After ownership, as the real registry does: allocated addresses have no manager.
            engine.defaults.allocate_service_addresses(new, self.allocate_cluster_ip)
        if rt.plural == _CRDS and rt.group == _CRD_GROUP:
            engine.schemas.register_crd(new)
        return warnings

    def _decode_default_validate(
        self,
        rt: ResourceType,
        schema: engine.Schema | None,
        *,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        field_validation: str,
    ) -> list[str]:
        # Decoding: unknown fields are an error, a warning or nothing, and never stored.
        unknown = engine.validation.unknown_fields(new, schema=schema)
        warnings = engine.validation.unknown_field_warnings(
            new, unknown, field_validation=field_validation
        )
        if unknown or rt.crd:
            # Custom resources are pruned every time: that also drops nulls their schema
            # does not allow.
            engine.validation.prune_unknown(new, schema)

        engine.defaults.apply_defaults(
            new,
            schema=schema,
            old=old,
            custom=bool(rt.crd),
        )
        warnings += engine.validation.validate(
            new, schema=schema, old=old, field_validation=field_validation
        )
        if rt.plural == _CRDS and rt.group == _CRD_GROUP:
            self._check_crd(new)
        return warnings

    def _check_crd(self, crd: dict[str, Any]) -> None:
        """A CRD must name a group, kind and plural, and each version must have a schema."""
        spec = crd.get("spec") or {}
        causes: list[errors.Cause] = []
        if not spec.get("group"):
            causes.append(errors.Cause("spec.group", "Required value", "FieldValueRequired"))
        names = spec.get("names") or {}
        for field in ("plural", "kind"):
            if not names.get(field):
                causes.append(
                    errors.Cause(f"spec.names.{field}", "Required value", "FieldValueRequired")
                )
        versions = spec.get("versions") or []
        if not versions:
            causes.append(errors.Cause("spec.versions", "Required value", "FieldValueRequired"))
        if sum(1 for v in versions if v.get("storage")) != 1 and versions:
            causes.append(
                errors.Cause(
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            )
        if causes:
            raise engine.validation.invalid(crd, causes)

    def patch(
        self,
        rt: ResourceType,
        *,
        live: dict[str, Any],
        patch: Any,
        patch_type: str,
        manager: str,
    ) -> dict[str, Any]:
        """Merge, JSON or strategic merge patch (the last for built-in kinds only)."""
        if patch_type == STRATEGIC_PATCH:
            if rt.crd:
                raise errors.UnsupportedMediaType(
                    "strategic merge patch is not supported for custom resources"
                )
            if not isinstance(patch, dict):
                raise errors.BadRequest("a strategic merge patch must be a JSON object")
            return engine.smp.strategic_merge(live, patch, schema=self.schema_for(rt))
        return super().patch(rt, live=live, patch=patch, patch_type=patch_type, manager=manager)

    def apply(
        self,
        rt: ResourceType,
        *,
        live: dict[str, Any] | None,
        applied: dict[str, Any],
        manager: str,
        force: bool,
        now: str,
    ) -> dict[str, Any]:
        """Server-side apply of ``applied`` over ``live`` (``None`` creates)."""
        if not isinstance(applied, dict):
            raise errors.BadRequest("the apply body must be a YAML or JSON object")
        for field in ("apiVersion", "kind"):
            if not applied.get(field):
                raise errors.BadRequest(f"the applied configuration has no {field!r}")
        # The engine shares unchanged subtrees with its inputs; defaults then write into the
        # result, so it works on copies rather than the caller's live object.
        live_copy = orjson.loads(orjson.dumps(live)) if live is not None else None
        new = engine.managed.server_side_apply(
            live_copy,
            orjson.loads(orjson.dumps(applied)),
            manager=manager,
            force=force,
            schema=self.schema_for(rt),
            now=now,
            status_subresource="status" in rt.subresources,
        )
        self._applied.meta = new.get("metadata")
        return new


_VOLATILE_META = ("managedFields", "resourceVersion", "generation")


def _same_content(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when ``new`` differs from ``old`` only in bookkeeping metadata."""
    if old.keys() != new.keys():
        return False
    for key, value in new.items():
        if key != "metadata":
            if old[key] != value:
                return False
            continue
        old_meta = old.get("metadata") or {}
        meta = value if isinstance(value, dict) else {}
        keys = (set(meta) | set(old_meta)) - set(_VOLATILE_META)
        if any(meta.get(k) != old_meta.get(k) for k in keys):
            return False
    return True


def _keep_generation(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Undo a generation bump when the spec only differed before defaulting.

    Storage compares specs before admission; a patch that drops a field the server defaults
    (``$retainKeys`` on a Deployment's strategy) looks like a change until defaults put it back.
    """
    old_gen = (old.get("metadata") or {}).get("generation")
    meta = new.get("metadata") or {}
    if old_gen is None or meta.get("generation") in (None, old_gen):
        return
    spec_changed = any(
        old.get(k) != new.get(k) for k in set(old) | set(new) if k not in ("metadata", "status")
    )
    status_counts = bool(rt.crd) and "status" not in rt.subresources
    if not spec_changed and not (status_counts and old.get("status") != new.get("status")):
        meta["generation"] = old_gen


def _keep_apply_time(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A re-apply that defaulting turned into a no-op keeps the old managedFields times.

    The engine compares before defaulting, so an applied atomic list missing a defaulted
    field looks like a change; once defaults put it back the object is the same, and a new
    timestamp alone would make a no-op apply a write (and a dry-run diff noisy).
    """
    old_meta = old.get("metadata") or {}
    meta = new.get("metadata") or {}
    old_entries = old_meta.get("managedFields")
    entries = meta.get("managedFields")
    if old_entries is None or entries is None or old_entries == entries:
        return

    def timeless(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "time"} for e in items]

    if timeless(old_entries) != timeless(entries):
        return
    rest = {k: v for k, v in meta.items() if k not in ("managedFields", "resourceVersion")}
    old_rest = {k: v for k, v in old_meta.items() if k not in ("managedFields", "resourceVersion")}
    body = {k: v for k, v in new.items() if k not in ("metadata", "status")}
    old_body = {k: v for k, v in old.items() if k not in ("metadata", "status")}
    if rest == old_rest and body == old_body:
        meta["managedFields"] = old_entries


def create() -> Admission:
    """The admission the server installs: the full apply engine."""
    return EngineAdmission()
