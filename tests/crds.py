"""CustomResourceDefinition manifests for tests: one builder instead of a literal per test.

Tests differ in the group, the kind and the schema; everything else a CRD needs (served and
storage version, scope, names) is the same shape every time.
"""

from __future__ import annotations

from typing import Any

PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
"""A schema that accepts any object (for tests that do not care about validation)."""


def crd(
    group: str,
    kind: str,
    *,
    schema: dict[str, Any] | None = None,
    scope: str = "Namespaced",
    status: bool = False,
    short_names: tuple[str, ...] = (),
    version: str = "v1",
) -> dict[str, Any]:
    """A v1 CRD for ``kind`` in ``group`` (plural: lower-case kind + "s")."""
    plural = kind.lower() + "s"
    names: dict[str, Any] = {"kind": kind, "plural": plural, "singular": kind.lower()}
    if short_names:
        names["shortNames"] = list(short_names)
    served: dict[str, Any] = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema if schema is not None else PRESERVE},
    }
    if status:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope, "names": names, "versions": [served]},
    }
