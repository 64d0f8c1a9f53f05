"""The admission seam: what happens to an object on every write before it is stored.

Storage calls :class:`Admission` for creates, updates, patches and applies; this module decides
how a patch body turns into a new object and runs defaulting, validation and managed-fields
bookkeeping. Keeping it behind one seam means storage stays about durability and watches while
the Kubernetes object semantics (``apply`` package) evolve on their own.

The base behaviour here covers what the API server core needs: name and namespace rules,
JSON merge patch (RFC 7386) and JSON patch (RFC 6902). Strategic merge patch and server-side
apply come from :mod:`syrup.cluster.apply` when it is present.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonpatch

from syrup.cluster import errors
from syrup.cluster.resources import ResourceType

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
