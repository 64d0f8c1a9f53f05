"""Schemas of the kinds the local cluster serves, with the annotations apply and patch need.

Built-in kinds come from the OpenAPI definitions of one Kubernetes release as shipped by
``kubernetes-validate`` (its ``_definitions.json`` keeps ``x-kubernetes-list-type``,
``-list-map-keys``, ``-map-type``, ``-patch-merge-key`` and ``-patch-strategy``); custom
resources come from the ``openAPIV3Schema`` of each CRD version. Both are read into the same
:class:`Schema` tree so that defaulting, validation, strategic merge and field ownership walk
one structure.

Trade-off: a :class:`Schema` resolves its children lazily and caches them, so a kind costs
nothing until it is first written, and later walks are attribute lookups rather than ``$ref``
resolution. Lists without ``x-kubernetes-list-type`` follow structured-merge-diff's reading of
the patch annotations (merge + key is a map, merge alone is a set, otherwise atomic).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson

#: The Kubernetes release whose schemas the local cluster serves.
KUBERNETES_VERSION = "v1.37.0"

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


class Schema:
    """One node of an object schema: its type, children and merge annotations.

    ``types`` is empty when any JSON value is allowed. ``properties`` lists struct fields;
    ``additional`` is the value schema of a free-form map (labels); ``items`` the element
    schema of a list. ``list_type`` is ``atomic``, ``map`` or ``set``; ``map_type`` is
    ``granular`` or ``atomic``.
    """

    __slots__ = (
        "_additional",
        "_defs",
        "_items",
        "_props",
        "_raw",
        "default",
        "description",
        "embedded",
        "enum",
        "format",
        "int_or_string",
        "list_keys",
        "list_type",
        "map_type",
        "max_items",
        "max_length",
        "maximum",
        "min_items",
        "min_length",
        "minimum",
        "nullable",
        "patch_key",
        "patch_strategy",
        "pattern",
        "preserve_unknown",
        "quantity",
        "ref",
        "required",
        "scalar_rules",
        "types",
    )

    def __init__(self, raw: Mapping[str, Any], *, defs: Mapping[str, Any]) -> None:
        ref = None
        if "$ref" in raw:
            ref = str(raw["$ref"]).rsplit("/", 1)[-1]
            target = defs.get(ref, {})
            raw = {**target, **{k: v for k, v in raw.items() if k != "$ref"}}
        self._raw = raw
        self._defs = defs
        self.ref = ref
        self._props: dict[str, Schema] | None = None
        self._items: Schema | bool | None = False
        self._additional: Schema | bool | None = False

        # Types: Kubernetes' JSON-schema flavour writes ["integer", "null"]; OpenAPI writes
        # "integer" with nullable. IntOrString and Quantity are the two oneOf types.
        t = raw.get("type")
        types = [t] if isinstance(t, str) else list(t or [])
        self.nullable = "null" in types or bool(raw.get("nullable"))
        self.int_or_string = bool(raw.get("x-kubernetes-int-or-string")) or ref == _INT_OR_STRING
        self.quantity = ref == _QUANTITY
        if self.int_or_string:
            types = ["integer", "string"]
        elif self.quantity:
            types = ["number", "integer", "string"]
        self.types = frozenset(x for x in types if x != "null")

        self.description = str(raw.get("description", ""))
        self.format = raw.get("format")
        self.enum: list[Any] | None = raw.get("enum")
        pattern = raw.get("pattern")
        self.pattern = _compile(pattern) if isinstance(pattern, str) else None
        self.default = raw.get("default")
        self.required: tuple[str, ...] = tuple(raw.get("required") or ())
        # An object with neither fields nor a value schema (FieldsV1, RawExtension) is free-form.
        self.preserve_unknown = bool(raw.get("x-kubernetes-preserve-unknown-fields")) or (
            "object" in self.types
            and not raw.get("properties")
            and not isinstance(raw.get("additionalProperties"), dict)
        )
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource"))
        self.minimum = raw.get("minimum")
        self.maximum = raw.get("maximum")
        self.min_length = raw.get("minLength")
        self.max_length = raw.get("maxLength")
        self.min_items = raw.get("minItems")
        self.max_items = raw.get("maxItems")

        #: Whether a scalar value needs more than a type check (validation's fast path).
        self.scalar_rules = bool(
            self.enum is not None
            or self.pattern is not None
            or self.quantity
            or any(
                x is not None
                for x in (self.minimum, self.maximum, self.min_length, self.max_length)
            )
        )

        # Merge annotations: SSA's list type, with the strategic-merge annotations as fallback.
        self.patch_key: str | None = raw.get("x-kubernetes-patch-merge-key")
        self.patch_strategy = frozenset(
            s for s in str(raw.get("x-kubernetes-patch-strategy", "")).split(",") if s
        )
        self.list_keys: tuple[str, ...] = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        list_type = raw.get("x-kubernetes-list-type")
        if list_type is None:
            if "merge" in self.patch_strategy and self.patch_key:
                list_type, self.list_keys = "map", (self.patch_key,)
            elif "merge" in self.patch_strategy:
                list_type = "set"
            else:
                list_type = "atomic"
        self.list_type: str = list_type
        self.map_type: str = raw.get("x-kubernetes-map-type", "granular")

    # Children are built on first use: the definitions are a graph with cycles
    # (JSONSchemaProps), and most of it is never walked.

    @property
    def properties(self) -> dict[str, Schema]:
        if self._props is None:
            raw_props = self._raw.get("properties") or {}
            self._props = {k: Schema(v, defs=self._defs) for k, v in raw_props.items()}
        return self._props

    @property
    def items(self) -> Schema | None:
        if self._items is False:
            raw = self._raw.get("items")
            self._items = Schema(raw, defs=self._defs) if isinstance(raw, dict) else None
        return self._items if isinstance(self._items, Schema) else None

    @property
    def additional(self) -> Schema | None:
        """The value schema of a free-form map, or ``None`` for a struct."""
        if self._additional is False:
            raw = self._raw.get("additionalProperties")
            if isinstance(raw, dict):
                self._additional = Schema(raw, defs=self._defs)
            elif raw is True:
                self._additional = ANY
            else:
                self._additional = None
        return self._additional if isinstance(self._additional, Schema) else None

    @property
    def raw(self) -> Mapping[str, Any]:
        """The schema as read (after ``$ref`` resolution), for the OpenAPI documents."""
        return self._raw

    @property
    def is_object(self) -> bool:
        return "object" in self.types or bool(self._raw.get("properties"))

    @property
    def is_struct(self) -> bool:
        """An object with named fields (unknown ones are pruned) rather than a map."""
        return self.is_object and not self.preserve_unknown and self.additional is None

    def field(self, name: str) -> Schema | None:
        """The schema of child ``name`` of an object, or ``None`` if the field is unknown."""
        child = self.properties.get(name)
        if child is not None:
            return child
        if self.additional is not None:
            return self.additional
        if self.preserve_unknown or not self.types:
            return ANY
        return None


@cache
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


#: The schema of a value with no schema (``x-kubernetes-preserve-unknown-fields`` content).
ANY = Schema({"x-kubernetes-preserve-unknown-fields": True}, defs={})


def _schema_dir() -> Path:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return root / f"{KUBERNETES_VERSION}-local-strict"


@cache
def definitions() -> dict[str, Any]:
    """Every definition of the Kubernetes release, keyed by its OpenAPI name."""
    data = orjson.loads((_schema_dir() / "_definitions.json").read_bytes())
    defs: dict[str, Any] = data["$defs"]
    return defs


@cache
def _builtin_index() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) → definition name, from ``x-kubernetes-group-version-kind``."""
    index: dict[tuple[str, str], str] = {}
    for name, raw in definitions().items():
        gvks = raw.get("x-kubernetes-group-version-kind") or []
        # WatchEvent, DeleteOptions and friends carry one GVK per group; they are not served.
        if len(gvks) != 1:
            continue
        gvk = gvks[0]
        api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
        index[(api_version, gvk["kind"])] = name
    return index


_lock = threading.Lock()
_builtin: dict[tuple[str, str], Schema] = {}
#: CRD name → {(apiVersion, kind): schema} for every served version.
_crds: dict[str, dict[tuple[str, str], Schema]] = {}
_crd_objects: dict[str, dict[str, Any]] = {}


def for_kind(api_version: str, kind: str) -> Schema | None:
    """The schema of a built-in kind or a registered custom resource; ``None`` if unknown."""
    key = (api_version, kind)
    found = _builtin.get(key)
    if found is not None:
        return found
    with _lock:
        for versions in _crds.values():
            if key in versions:
                return versions[key]
        name = _builtin_index().get(key)
        if name is None:
            return None
        schema = Schema({"$ref": name}, defs=definitions())
        _builtin[key] = schema
        return schema


def definition_name(api_version: str, kind: str) -> str | None:
    """The OpenAPI definition name of a built-in kind (``io.k8s.api.apps.v1.Deployment``)."""
    return _builtin_index().get((api_version, kind))


def for_crd_version(crd: Mapping[str, Any], version: str) -> Schema:
    """The schema of one version of a CRD, with ``apiVersion``, ``kind`` and ``metadata`` added.

    A version without ``openAPIV3Schema`` keeps every field, as Kubernetes does for
    non-structural legacy CRDs.
    """
    spec = crd.get("spec") or {}
    raw: dict[str, Any] = {}
    for v in spec.get("versions") or []:
        if v.get("name") == version:
            raw = dict(((v.get("schema") or {}).get("openAPIV3Schema")) or {})
    if not raw:
        raw = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    props = dict(raw.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    # The CRD's own description of metadata is ignored by Kubernetes: it is always ObjectMeta.
    props["metadata"] = {"$ref": f"#/$defs/{_OBJECT_META}"}
    raw["properties"] = props
    raw.setdefault("type", "object")
    defs = definitions()
    return Schema(raw, defs=defs)


def crd_kinds(crd: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, version) for every served version of a CRD."""
    spec = crd.get("spec") or {}
    group = spec.get("group", "")
    kind = (spec.get("names") or {}).get("kind", "")
    return [
        (f"{group}/{v['name']}", kind, v["name"])
        for v in spec.get("versions") or []
        if v.get("served", True) and v.get("name")
    ]


def register_crd(crd: Mapping[str, Any]) -> None:
    """Serve the schemas of a CRD's versions (replacing any earlier registration)."""
    name = (crd.get("metadata") or {}).get("name", "")
    versions = {(av, kind): for_crd_version(crd, ver) for av, kind, ver in crd_kinds(crd)}
    with _lock:
        _crds[name] = versions
        _crd_objects[name] = dict(crd)


def unregister_crd(name: str) -> None:
    """Forget a deleted CRD's schemas."""
    with _lock:
        _crds.pop(name, None)
        _crd_objects.pop(name, None)


def registered_crds() -> list[dict[str, Any]]:
    """The CRDs whose schemas are registered, for the OpenAPI documents."""
    with _lock:
        return list(_crd_objects.values())


def is_custom(api_version: str, kind: str) -> bool:
    """True for kinds served from a registered CRD."""
    key = (api_version, kind)
    with _lock:
        return any(key in versions for versions in _crds.values())
