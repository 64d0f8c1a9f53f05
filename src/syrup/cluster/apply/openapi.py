"""The OpenAPI documents kubectl reads: ``/openapi/v2`` and ``/openapi/v3``.

``kubectl explain`` and client-side ``kubectl apply`` (which needs the patch merge keys) find a
kind's schema by its ``x-kubernetes-group-version-kind`` in these documents. They are built
from the same definitions the server validates with, plus the registered CRDs, translated from
the JSON-schema flavour ``kubernetes-validate`` ships (``type: [x, "null"]``, ``$defs``) back to
OpenAPI (``type: x``, ``#/definitions`` or ``#/components/schemas``). IntOrString and Quantity
are written as Kubernetes publishes them (``format: int-or-string``, a string).

Documents are built on first request and cached; the cache key includes the set of registered
CRDs, and the v3 index carries a content hash so kubectl's disk cache refreshes when a CRD
changes.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cache
from typing import Any

import orjson

from syrup.cluster import resources
from syrup.cluster.apply import schemas

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_lock = threading.Lock()
_cache: dict[tuple[str, str], Any] = {}


def _convert(node: Any, ref_prefix: str) -> Any:
    """One JSON-schema node as OpenAPI (v2 or v3 depending on ``ref_prefix``)."""
    if isinstance(node, list):
        return [_convert(n, ref_prefix) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kept = [t for t in value if t != "null"]
            if len(kept) == 1:
                out["type"] = kept[0]
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: _convert(v, ref_prefix) for k, v in value.items()}
            continue
        if key in ("default", "enum", "example"):
            out[key] = value
            continue
        out[key] = _convert(value, ref_prefix)
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = ref_prefix + ref.rsplit("/", 1)[-1]
        if out and ref_prefix.startswith("#/components"):
            out["allOf"] = [{"$ref": target}]
        else:
            out["$ref"] = target
    return out


def _definition(name: str, raw: dict[str, Any], ref_prefix: str) -> dict[str, Any]:
    if name == _INT_OR_STRING:
        return {"type": "string", "format": "int-or-string"}
    if name == _QUANTITY:
        return {"type": "string", "description": "Quantity is a fixed-point number."}
    converted: dict[str, Any] = _convert(raw, ref_prefix)
    return converted


@cache
def _refs_of(name: str) -> frozenset[str]:
    raw = schemas.definitions().get(name, {})
    found: set[str] = set()
    _collect_refs(raw, found)
    return frozenset(found)


def _collect_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _collect_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, found)


def _closure(roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_refs_of(name) - seen)
    return seen


@cache
def _builtin_group_versions() -> dict[str, set[str]]:
    """group/version (``apps/v1``, ``v1``) → definition names of its kinds."""
    out: dict[str, set[str]] = {}
    for name, raw in schemas.definitions().items():
        gvks = raw.get("x-kubernetes-group-version-kind") or []
        if len(gvks) != 1:
            continue
        gvk = gvks[0]
        gv = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
        out.setdefault(gv, set()).add(name)
    return out


def _crd_definitions(ref_prefix: str) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """group/version → {definition name: (name, OpenAPI schema)} for registered CRDs."""
    out: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for crd in schemas.registered_crds():
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        kind = (spec.get("names") or {}).get("kind", "")
        reversed_group = ".".join(reversed(group.split(".")))
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            raw = dict(((version.get("schema") or {}).get("openAPIV3Schema")) or {})
            raw.setdefault("type", "object")
            props = dict(raw.get("properties") or {})
            props["apiVersion"] = {"type": "string"}
            props["kind"] = {"type": "string"}
            props["metadata"] = {"$ref": f"#/$defs/{_OBJECT_META}"}
            raw["properties"] = props
            raw["x-kubernetes-group-version-kind"] = [
                {"group": group, "version": version["name"], "kind": kind}
            ]
            name = f"{reversed_group}.{version['name']}.{kind}"
            out.setdefault(f"{group}/{version['name']}", {})[name] = (
                name,
                _convert(raw, ref_prefix),
            )
    return out


_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _paths(
    gv: str, kinds: list[tuple[str, str, bool]], custom: frozenset[tuple[str, str, str]]
) -> dict[str, Any]:
    """One path per kind whose PATCH names its GVK and query parameters.

    kubectl checks here that the server understands ``fieldValidation`` for a kind before it
    relies on server-side validation, and which patch types it accepts (custom resources take
    no strategic merge patch), so each kind needs a PATCH operation carrying both.
    """
    group, _, version = gv.rpartition("/")
    base = f"/apis/{gv}" if group else f"/api/{gv}"
    out: dict[str, Any] = {}
    for plural, kind, namespaced in kinds:
        scope = "/namespaces/{namespace}" if namespaced else ""
        gvk = {"group": group, "version": version, "kind": kind}
        params = [
            {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
            for p in _QUERY_PARAMS
        ]
        media = _PATCH_TYPES if (group, version, kind) not in custom else _PATCH_TYPES[:-1]
        operation = {
            "operationId": f"patch{kind}",
            "parameters": params,
            "requestBody": {
                "content": {m: {"schema": {"type": "object"}} for m in media},
                "required": True,
            },
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
        }
        out[f"{base}{scope}/{plural}/{{name}}"] = {"patch": operation}
    return out


def _served_kinds() -> dict[str, list[tuple[str, str, bool]]]:
    """group/version → (plural, kind, namespaced) of the built-in types and registered CRDs."""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for rt in resources.BUILTIN:
        out.setdefault(rt.api_version, []).append((rt.plural, rt.kind, rt.namespaced))
    for crd in schemas.registered_crds():
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for api_version, kind, _ in schemas.crd_kinds(crd):
            namespaced = spec.get("scope", "Namespaced") == "Namespaced"
            out.setdefault(api_version, []).append((names.get("plural", ""), kind, namespaced))
    return out


def _custom_kinds() -> frozenset[tuple[str, str, str]]:
    out = set()
    for crd in schemas.registered_crds():
        group = (crd.get("spec") or {}).get("group", "")
        for _, kind, version in schemas.crd_kinds(crd):
            out.add((group, version, kind))
    return frozenset(out)


def _crd_key() -> str:
    crds = schemas.registered_crds()
    digest = hashlib.sha256()
    for crd in sorted(crds, key=lambda c: str((c.get("metadata") or {}).get("name"))):
        digest.update(orjson.dumps(crd.get("spec"), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def _info() -> dict[str, str]:
    return {"title": "Kubernetes", "version": schemas.KUBERNETES_VERSION}


def v2_document() -> dict[str, Any]:
    """The Swagger 2.0 document of every served kind."""
    key = ("v2", _crd_key())
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            result: dict[str, Any] = cached
            return result
    prefix = "#/definitions/"
    definitions = {
        name: _definition(name, raw, prefix) for name, raw in schemas.definitions().items()
    }
    for crd_defs in _crd_definitions(prefix).values():
        for name, schema in crd_defs.values():
            definitions[name] = schema
    paths: dict[str, Any] = {}
    for gv, served in _served_kinds().items():
        paths.update(_paths(gv, served, _custom_kinds()))
    doc = {"swagger": "2.0", "info": _info(), "paths": paths, "definitions": definitions}
    with _lock:
        _cache[key] = doc
    return doc


def _gv_path(group_version: str) -> str:
    return f"apis/{group_version}" if "/" in group_version else f"api/{group_version}"


def _v3_documents() -> dict[str, tuple[dict[str, Any], str]]:
    """group/version → (OpenAPI 3 document, content hash)."""
    key = ("v3", _crd_key())
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            result: dict[str, tuple[dict[str, Any], str]] = cached
            return result
    prefix = "#/components/schemas/"
    defs = schemas.definitions()
    docs: dict[str, tuple[dict[str, Any], str]] = {}
    crds = _crd_definitions(prefix)
    group_versions = set(_builtin_group_versions()) | set(crds)
    kinds = _served_kinds()
    for gv in sorted(group_versions):
        roots = set(_builtin_group_versions().get(gv, set()))
        if gv in crds:
            roots.add(_OBJECT_META)
        components = {name: _definition(name, defs[name], prefix) for name in _closure(roots)}
        for name, schema in crds.get(gv, {}).values():
            components[name] = schema
        doc = {
            "openapi": "3.0.0",
            "info": _info(),
            "paths": _paths(gv, kinds.get(gv, []), _custom_kinds()),
            "components": {"schemas": components},
        }
        digest = hashlib.sha512(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
        docs[gv] = (doc, digest[:128].upper())
    with _lock:
        _cache.clear() if len(_cache) > 8 else None
        _cache[key] = docs
    return docs


def v3_index() -> dict[str, Any]:
    """``/openapi/v3``: where each group-version's document lives, with its hash."""
    paths = {
        _gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash={digest}"}
        for gv, (_, digest) in _v3_documents().items()
    }
    return {"paths": paths}


def v3_group_version(group_version: str) -> dict[str, Any] | None:
    """The OpenAPI 3 document of one group-version (``apps/v1`` or ``apis/apps/v1``)."""
    gv = group_version.strip("/")
    for prefix in ("apis/", "api/"):
        if gv.startswith(prefix):
            gv = gv[len(prefix) :]
            break
    found = _v3_documents().get(gv)
    return found[0] if found else None
