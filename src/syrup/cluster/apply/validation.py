"""Validation of objects against their schema and the semantic rules users meet most.

Two layers, as in a real API server:

* **Schema**: types, required fields, enums, patterns, bounds and list-map key uniqueness from
  the OpenAPI schema (built-in kinds) or the CRD's ``openAPIV3Schema`` (custom resources).
  Unknown fields follow ``fieldValidation`` (Kubernetes "API Concepts", field validation):
  ``Strict`` is a 400 ``strict decoding error: unknown field "spec.foo"``, ``Warn`` returns
  warnings, ``Ignore`` says nothing; in every mode :func:`prune_unknown` drops them.
* **Semantics**: DNS-1123 names, label and annotation syntax, a workload's selector matching its
  template labels, Service ports and selectors, and immutable fields on update (Deployment,
  StatefulSet and DaemonSet selectors, Service ``clusterIP``, Job ``template`` and
  ``selector``, Secret/ConfigMap with ``immutable: true``).

Every broken rule becomes one :class:`errors.Cause` (reason ``FieldValueInvalid``,
``FieldValueRequired``, ``FieldValueNotSupported``, ``FieldValueTypeInvalid``,
``FieldValueDuplicate``, ``FieldValueForbidden``), and a 422 Invalid carries them all, with a
message in the form kubectl prints.
"""

from __future__ import annotations

import json
import re
from typing import Any

from syrup.cluster import errors
from syrup.cluster.apply import fieldsets
from syrup.cluster.apply.schemas import ANY, Schema

Obj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
)
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

#: Kinds whose names are DNS-1123 labels rather than subdomains.
_LABEL_NAMED = frozenset({"Namespace", "Service"})
_WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})

_TYPE_NAMES = {
    "integer": "integer",
    "number": "number",
    "string": "string",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def _show(value: Any) -> str:
    """A value as Kubernetes prints it in a cause: JSON for scalars, Go-like for the rest."""
    if isinstance(value, dict):
        return "map[string]interface {}" + json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return "[]interface {}" + json.dumps(value, separators=(",", ":"))
    return json.dumps(value)


_JSON_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    dict: "object",
    list: "array",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "null")


class _Collector:
    """The causes and unknown-field paths found while walking one object."""

    def __init__(self) -> None:
        self.causes: list[errors.Cause] = []
        self.unknown: list[str] = []

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.causes.append(errors.Cause(path, f"Invalid value: {_show(value)}: {detail}"))

    def type_error(self, path: str, value: Any, wanted: str) -> None:
        got = _json_type(value)
        detail = f"{path} in body must be of type {wanted}: {json.dumps(got)}"
        self.causes.append(
            errors.Cause(path, f"Invalid value: {_show(value)}: {detail}", "FieldValueTypeInvalid")
        )

    def required(self, path: str, detail: str = "") -> None:
        msg = "Required value" + (f": {detail}" if detail else "")
        self.causes.append(errors.Cause(path, msg, "FieldValueRequired"))

    def unsupported(self, path: str, value: Any, allowed: list[Any]) -> None:
        supported = ", ".join(json.dumps(a) for a in allowed)
        self.causes.append(
            errors.Cause(
                path,
                f"Unsupported value: {_show(value)}: supported values: {supported}",
                "FieldValueNotSupported",
            )
        )

    def forbidden(self, path: str, detail: str) -> None:
        self.causes.append(errors.Cause(path, f"Forbidden: {detail}", "FieldValueForbidden"))

    def duplicate(self, path: str, value: Any) -> None:
        self.causes.append(
            errors.Cause(path, f"Duplicate value: {_show(value)}", "FieldValueDuplicate")
        )


# -- the schema walk ---------------------------------------------------------------------------


def _walk(value: Any, schema: Schema, path: str, out: _Collector) -> None:
    if value is None:
        return
    types = schema.types
    if types:
        got = _json_type(value)
        ok = got in types or (got == "integer" and "number" in types)
        if not ok:
            wanted = " or ".join(sorted(_TYPE_NAMES.get(t, t) for t in types))
            out.type_error(path, value, wanted)
            return

    if isinstance(value, dict):
        _walk_object(value, schema, path, out)
        return
    if isinstance(value, list):
        _walk_list(value, schema, path, out)
        return
    if not schema.scalar_rules:
        return
    if schema.enum is not None and value not in schema.enum:
        out.unsupported(path, value, schema.enum)
    if isinstance(value, str):
        _walk_string(value, schema, path, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if schema.minimum is not None and value < schema.minimum:
            out.invalid(
                path, value, f"{path} in body should be greater than or equal to {schema.minimum}"
            )
        if schema.maximum is not None and value > schema.maximum:
            out.invalid(
                path, value, f"{path} in body should be less than or equal to {schema.maximum}"
            )


def _walk_string(value: str, schema: Schema, path: str, out: _Collector) -> None:
    if schema.pattern is not None and not schema.pattern.search(value):
        out.invalid(path, value, f"{path} in body should match '{schema.pattern.pattern}'")
    if schema.min_length is not None and len(value) < schema.min_length:
        out.invalid(
            path, value, f"{path} in body should be at least {schema.min_length} chars long"
        )
    if schema.max_length is not None and len(value) > schema.max_length:
        out.invalid(
            path, value, f"{path} in body may not be more than {schema.max_length} chars long"
        )
    if schema.quantity and not _QUANTITY.match(value):
        out.invalid(
            path,
            value,
            "quantities must match the regular expression "
            r"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )


def _walk_object(value: Obj, schema: Schema, path: str, out: _Collector) -> None:
    if schema.preserve_unknown and not schema.properties:
        return
    prefix = f"{path}." if path else ""
    for name in schema.required:
        if value.get(name) is None:
            out.required(prefix + name)
    props = schema.properties
    for name, child in value.items():
        sub = props.get(name)
        if sub is None:
            sub = schema.additional
            if sub is None:
                if not (schema.preserve_unknown or not schema.types):
                    out.unknown.append(prefix + name)
                continue
        _walk(child, sub, prefix + name, out)


def _walk_list(value: list[Any], schema: Schema, path: str, out: _Collector) -> None:
    if schema.min_items is not None and len(value) < schema.min_items:
        out.invalid(path, value, f"{path} in body should have at least {schema.min_items} items")
    if schema.max_items is not None and len(value) > schema.max_items:
        out.invalid(path, value, f"{path} in body should have at most {schema.max_items} items")
    items = schema.items or ANY
    seen: set[str] = set()
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        _walk(item, items, item_path, out)
        if schema.list_type in ("map", "set"):
            key = fieldsets.item_key(item, schema)
            if key in seen:
                shown = json.loads(key[2:]) if schema.list_type == "map" else item
                out.duplicate(item_path, shown)
            seen.add(key)


# -- semantic rules ----------------------------------------------------------------------------


def _check_meta(obj: Obj, out: _Collector, *, namespaced_name_rule: str) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        out.required("metadata")
        return
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        out.required("metadata.name", "name or generateName is required")
    elif isinstance(name, str) and name:
        if namespaced_name_rule == "path":
            if name in (".", "..") or "/" in name or "%" in name:
                out.invalid("metadata.name", name, "may not contain '/' or '%', or be '.' or '..'")
        elif namespaced_name_rule == "label":
            if len(name) > 63 or not _DNS1123_LABEL.match(name):
                out.invalid(
                    "metadata.name",
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character "
                    "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
        elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            out.invalid(
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and namespace and not _DNS1123_LABEL.match(namespace):
        out.invalid("metadata.namespace", namespace, "a lowercase RFC 1123 label is required")
    labels = meta.get("labels")
    if isinstance(labels, dict):
        check_labels(labels, "metadata.labels", out)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        total = 0
        for key, value in annotations.items():
            _check_key(key, "metadata.annotations", out)
            total += len(key.encode()) + len(str(value or "").encode())
        if total > 256 * 1024:
            out.causes.append(
                errors.Cause(
                    "metadata.annotations",
                    "Too long: must have at most 262144 bytes",
                    "FieldValueTooLong",
                )
            )


def _check_key(key: str, path: str, out: _Collector) -> None:
    prefix, slash, name = key.rpartition("/")
    bad = ""
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        bad = "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
        bad += "alphanumeric characters, '-' or '.', and must start and end with an "
        bad += "alphanumeric character"
    elif not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        bad = "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
        bad += "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
        bad += "or '123-abc', regex used for validation is "
        bad += "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        if len(name) > 63:
            bad = "name part must be no more than 63 characters"
    if bad:
        out.invalid(path, key, bad)


def check_labels(labels: Obj, path: str, out: _Collector) -> None:
    for key, value in labels.items():
        _check_key(key, path, out)
        text = value if isinstance(value, str) else ""
        if len(text) > 63:
            out.invalid(f"{path}", text, "must be no more than 63 characters")
        elif not _LABEL_VALUE.match(text):
            out.invalid(
                f"{path}",
                text,
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            )


def _selector_matches(selector: Any, labels: Obj) -> bool:
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


#: Enumerations the Go types enforce but the published schema leaves as plain strings.
_POD_ENUMS = {
    "restartPolicy": ["Always", "OnFailure", "Never"],
    "dnsPolicy": ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
}
_CONTAINER_ENUMS = {
    "imagePullPolicy": ["Always", "IfNotPresent", "Never"],
    "terminationMessagePolicy": ["File", "FallbackToLogsOnError"],
}
_PROTOCOLS = ["SCTP", "TCP", "UDP"]


def _check_enums(obj: Obj, enums: dict[str, list[str]], path: str, out: _Collector) -> None:
    for name, allowed in enums.items():
        value = obj.get(name)
        if value is not None and value not in allowed:
            out.unsupported(f"{path}.{name}", value, allowed)


def _check_pod_spec(spec: Any, path: str, out: _Collector) -> None:
    if not isinstance(spec, dict):
        return
    _check_enums(spec, _POD_ENUMS, path, out)
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if not isinstance(c, dict):
                continue
            cpath = f"{path}.{key}[{i}]"
            _check_enums(c, _CONTAINER_ENUMS, cpath, out)
            name = c.get("name")
            if isinstance(name, str):
                if not _DNS1123_LABEL.match(name) or len(name) > 63:
                    out.invalid(f"{cpath}.name", name, "a lowercase RFC 1123 label is required")
                if name in names:
                    out.duplicate(f"{cpath}.name", name)
                names.add(name)
            if not c.get("image") and key == "containers":
                out.required(f"{cpath}.image")
            for j, port in enumerate(c.get("ports") or []):
                if isinstance(port, dict):
                    _check_enums(port, {"protocol": _PROTOCOLS}, f"{cpath}.ports[{j}]", out)
                number = (port or {}).get("containerPort")
                if isinstance(number, int) and not 0 < number < 65536:
                    out.invalid(
                        f"{cpath}.ports[{j}].containerPort",
                        number,
                        "must be between 1 and 65535, inclusive",
                    )
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        name = (v or {}).get("name")
        if isinstance(name, str) and name in volumes:
            out.duplicate(f"{path}.volumes[{i}].name", name)
        volumes.add(str(name))


def _check_template(obj: Obj, out: _Collector) -> None:
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    template = spec.get("template")
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        base = "spec.jobTemplate.spec.template"
    else:
        base = "spec.template"
    if isinstance(template, dict):
        labels = (template.get("metadata") or {}).get("labels")
        if isinstance(labels, dict):
            check_labels(labels, f"{base}.metadata.labels", out)
        _check_pod_spec(template.get("spec"), f"{base}.spec", out)

    strategy = spec.get("strategy")
    if kind == "Deployment" and isinstance(strategy, dict):
        _check_enums(strategy, {"type": ["Recreate", "RollingUpdate"]}, "spec.strategy", out)
    if kind == "CronJob":
        _check_enums(spec, {"concurrencyPolicy": ["Allow", "Forbid", "Replace"]}, "spec", out)

    if kind in _WORKLOADS:
        selector = spec.get("selector")
        if not isinstance(selector, dict):
            return
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            out.invalid("spec.selector", selector, f"empty selector is invalid for {kind.lower()}")
            return
        labels = ((template or {}).get("metadata") or {}).get("labels") or {}
        if not _selector_matches(selector, labels):
            out.invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            )


def _check_service(obj: Obj, out: _Collector) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    kind = spec.get("type") or "ClusterIP"
    service_types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    _check_enums(
        spec, {"type": service_types, "sessionAffinity": ["ClientIP", "None"]}, "spec", out
    )
    ports = spec.get("ports") or []
    if kind not in ("ExternalName",) and not ports and spec.get("clusterIP") != "None":
        out.required("spec.ports")
    names: set[str] = set()
    keys: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            continue
        ppath = f"spec.ports[{i}]"
        _check_enums(port, {"protocol": _PROTOCOLS}, ppath, out)
        name = port.get("name")
        if len(ports) > 1 and not name:
            out.required(f"{ppath}.name")
        if isinstance(name, str) and name:
            if not _DNS1123_LABEL.match(name) or len(name) > 63:
                out.invalid(f"{ppath}.name", name, "a lowercase RFC 1123 label is required")
            if name in names:
                out.duplicate(f"{ppath}.name", name)
            names.add(name)
        number = port.get("port")
        if isinstance(number, int) and not 0 < number < 65536:
            out.invalid(f"{ppath}.port", number, "must be between 1 and 65535, inclusive")
        key = (number, port.get("protocol") or "TCP")
        if key in keys:
            out.duplicate(f"{ppath}", {"port": number, "protocol": key[1]})
        keys.add(key)
        target = port.get("targetPort")
        if isinstance(target, int) and not 0 < target < 65536:
            out.invalid(f"{ppath}.targetPort", target, "must be between 1 and 65535, inclusive")
        if isinstance(target, str) and (not _IANA_SVC_NAME.match(target) or len(target) > 15):
            out.invalid(
                f"{ppath}.targetPort",
                target,
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            )
    selector = spec.get("selector")
    if isinstance(selector, dict):
        check_labels(selector, "spec.selector", out)
    if kind == "ExternalName" and not spec.get("externalName"):
        out.required("spec.externalName")


def _check_immutable(obj: Obj, old: Obj, out: _Collector) -> None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    old_spec = old.get("spec") or {}

    def same(path: str, a: Any, b: Any) -> None:
        if a != b:
            out.invalid(path, a, "field is immutable")

    if kind in _WORKLOADS:
        same("spec.selector", spec.get("selector"), old_spec.get("selector"))
    if kind == "Service":
        old_ip = old_spec.get("clusterIP")
        if old_ip and spec.get("clusterIP") != old_ip:
            out.invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable")
    if kind == "Job":
        same("spec.selector", spec.get("selector"), old_spec.get("selector"))
        if spec.get("template") != old_spec.get("template"):
            out.invalid("spec.template", spec.get("template"), "field is immutable")
    if kind in ("Secret", "ConfigMap") and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            out.forbidden("immutable", "field is immutable when `immutable` is set")
        for field in ("data", "stringData", "binaryData"):
            if obj.get(field) != old.get(field):
                out.forbidden(field, "field is immutable when `immutable` is set")


# -- entry points ------------------------------------------------------------------------------


def unknown_fields(obj: Obj, *, schema: Schema | None) -> list[str]:
    """Paths of fields the schema does not know (``spec.foo``), in document order."""
    found: list[str] = []
    if schema is not None:
        _find_unknown(obj, schema, "", found)
    return found


def _find_unknown(value: Any, schema: Schema, path: str, found: list[str]) -> None:
    """The structure-only part of the walk: cheap enough to run on every write."""
    if isinstance(value, dict):
        if schema.preserve_unknown and not schema.properties:
            return
        props = schema.properties
        prefix = f"{path}." if path else ""
        for name, child in value.items():
            sub = props.get(name) or schema.additional
            if sub is None:
                if not (schema.preserve_unknown or not schema.types):
                    found.append(prefix + name)
            elif isinstance(child, dict | list):
                _find_unknown(child, sub, prefix + name, found)
    elif isinstance(value, list):
        items = schema.items
        if items is not None:
            for index, item in enumerate(value):
                if isinstance(item, dict | list):
                    _find_unknown(item, items, f"{path}[{index}]", found)


def unknown_field_warnings(obj: Obj, unknown: list[str], *, field_validation: str) -> list[str]:
    """Unknown fields per ``fieldValidation``: Strict raises 400, Warn warns, Ignore is silent."""
    if not unknown:
        return []
    if field_validation == "Strict":
        detail = ", ".join(f'unknown field "{p}"' for p in unknown)
        raise errors.BadRequest(
            f"strict decoding error: {detail}",
            kind=obj.get("kind"),
            name=(obj.get("metadata") or {}).get("name"),
        )
    if field_validation == "Warn":
        return [f'unknown field "{p}"' for p in unknown]
    return []


def validate(
    obj: Obj,
    *,
    schema: Schema | None,
    old: Obj | None,
    field_validation: str = "Strict",
) -> list[str]:
    """Check ``obj``; return warnings, raise Invalid (422) or BadRequest (strict unknown fields).

    ``old`` is the stored object on update (``None`` on create), for immutable fields.
    """
    out = _Collector()
    if schema is not None:
        _walk(obj, schema, "", out)

    warnings = unknown_field_warnings(obj, out.unknown, field_validation=field_validation)

    kind = str(obj.get("kind", ""))
    rule = "label" if kind in _LABEL_NAMED else "subdomain"
    if str(obj.get("apiVersion", "")).startswith("rbac.authorization.k8s.io/"):
        rule = "path"
    _check_meta(obj, out, namespaced_name_rule=rule)
    if kind in _WORKLOADS or kind in ("Job", "CronJob", "ReplicationController"):
        _check_template(obj, out)
    elif kind == "Pod":
        _check_pod_spec(obj.get("spec"), "spec", out)
    elif kind == "Service":
        _check_service(obj, out)
    if old is not None:
        _check_immutable(obj, old, out)

    if out.causes:
        raise invalid(obj, out.causes)
    return warnings


def invalid(obj: Obj, causes: list[errors.Cause]) -> errors.Invalid:
    """The 422 a real server answers: ``Deployment.apps "web" is invalid: <causes>``."""
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    name = str((obj.get("metadata") or {}).get("name") or "")
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    detail = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return errors.Invalid(
        f'{qualified} "{name}" is invalid: {detail}',
        kind=kind,
        group=group,
        name=name,
        causes=causes,
    )


def prune_unknown(obj: Any, schema: Schema | None) -> None:
    """Drop fields the schema does not know, in place (Kubernetes' pruning of custom resources).

    Built-in kinds lose unknown fields the same way (they decode into Go structs); subtrees
    marked ``x-kubernetes-preserve-unknown-fields`` or embedded resources keep theirs. Nulls in
    non-nullable fields are dropped too, as structural-schema defaulting does.
    """
    if schema is None:
        return
    if isinstance(obj, dict):
        if schema.preserve_unknown and not schema.properties:
            return
        props = schema.properties
        for name in list(obj):
            sub = props.get(name)
            if sub is None:
                sub = schema.additional
                if sub is None:
                    if not (schema.preserve_unknown or not schema.types or schema.embedded):
                        del obj[name]
                    continue
            child = obj[name]
            if child is None and not sub.nullable and name in props:
                del obj[name]
                continue
            prune_unknown(child, sub)
    elif isinstance(obj, list) and schema.items is not None:
        for item in obj:
            prune_unknown(item, schema.items)
