"""Validation: schema types, required fields, unknown fields per fieldValidation, the semantic
rules users meet (names, labels, selectors, Service ports) and immutable fields on update.

Each invalid input asserts the 4xx class and the field the cause names, as a client would read
them from the ``Status`` body.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syrup.cluster import errors
from syrup.cluster.apply import defaults, schemas, validation
from tests import crds


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
            },
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }


def check(
    obj: dict[str, Any], *, old: dict[str, Any] | None = None, mode: str = "Strict"
) -> list[str]:
    schema = schemas.for_kind(obj["apiVersion"], obj["kind"])
    return validation.validate(obj, schema=schema, old=old, field_validation=mode)


def edit(base: dict[str, Any], change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    change(obj)
    return obj


def test_a_valid_deployment_passes_without_warnings() -> None:
    assert check(deployment()) == []


INVALID = [
    pytest.param(
        edit(deployment(), lambda o: o["spec"].pop("selector")),
        "spec.selector",
        "FieldValueRequired",
        id="a Deployment without selector",
    ),
    pytest.param(
        edit(deployment(), lambda o: o["spec"].__setitem__("replicas", "three")),
        "spec.replicas",
        "FieldValueTypeInvalid",
        id="replicas given as a string",
    ),
    pytest.param(
        edit(deployment(), lambda o: o["metadata"].__setitem__("name", "Web")),
        "metadata.name",
        "FieldValueInvalid",
        id="a name with uppercase letters",
    ),
    pytest.param(
        edit(
            deployment(),
            lambda o: o["spec"]["template"]["metadata"].__setitem__("labels", {"app": "other"}),
        ),
        "spec.template.metadata.labels",
        "FieldValueInvalid",
        id="a selector that does not match the template labels",
    ),
    pytest.param(
        edit(deployment(), lambda o: o["metadata"].__setitem__("labels", {"bad key!": "x"})),
        "metadata.labels",
        "FieldValueInvalid",
        id="a label key with invalid characters",
    ),
    pytest.param(
        edit(deployment(), lambda o: o["metadata"].__setitem__("annotations", {"a/b/c": "x"})),
        "metadata.annotations",
        "FieldValueInvalid",
        id="an annotation key with two slashes",
    ),
    pytest.param(
        edit(deployment(), lambda o: o["spec"]["template"]["spec"]["containers"][0].pop("image")),
        "spec.template.spec.containers[0].image",
        "FieldValueRequired",
        id="a container without image",
    ),
    pytest.param(
        edit(
            deployment(),
            lambda o: o["spec"]["template"]["spec"]["containers"].append(
                {"name": "app", "image": "x"}
            ),
        ),
        "spec.template.spec.containers[1]",
        "FieldValueDuplicate",
        id="two containers with the same name",
    ),
    pytest.param(
        edit(
            deployment(),
            lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "imagePullPolicy", "Sometimes"
            ),
        ),
        "spec.template.spec.containers[0].imagePullPolicy",
        "FieldValueNotSupported",
        id="a value outside the enum",
    ),
    pytest.param(
        edit(service(), lambda o: o["spec"].__setitem__("ports", [{"port": 80}, {"port": 81}])),
        "spec.ports[1].name",
        "FieldValueRequired",
        id="a Service with two unnamed ports",
    ),
    pytest.param(
        edit(service(), lambda o: o["spec"].__setitem__("ports", [{"port": 70000}])),
        "spec.ports[0].port",
        "FieldValueInvalid",
        id="a Service port out of range",
    ),
    pytest.param(
        edit(service(), lambda o: o["spec"].__setitem__("selector", {"app": "bad value!"})),
        "spec.selector",
        "FieldValueInvalid",
        id="a Service selector with an invalid label value",
    ),
]


@pytest.mark.parametrize(("obj", "field", "reason"), INVALID)
def test_invalid_objects_are_422_naming_the_field(
    obj: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(errors.Invalid) as caught:
        check(obj)
    err = caught.value
    assert err.code == 422
    assert (field, reason) in [(c.field, c.reason) for c in err.causes], err.causes
    status = err.status()
    assert status["reason"] == "Invalid"
    assert field in status["message"]


def test_the_message_reads_like_kubectl_prints_it() -> None:
    with pytest.raises(errors.Invalid) as caught:
        check(edit(deployment(), lambda o: o["spec"].__setitem__("replicas", "three")))
    assert caught.value.message == (
        'Deployment.apps "web" is invalid: spec.replicas: Invalid value: "three": '
        'spec.replicas in body must be of type integer: "string"'
    )


def test_several_bad_fields_give_one_cause_each() -> None:
    def breaks(o: dict[str, Any]) -> None:
        o["spec"]["replicas"] = "three"
        o["spec"]["minReadySeconds"] = "soon"

    with pytest.raises(errors.Invalid) as caught:
        check(edit(deployment(), breaks))
    assert sorted(c.field for c in caught.value.causes) == ["spec.minReadySeconds", "spec.replicas"]


UNKNOWN = edit(deployment(), lambda o: o["spec"].__setitem__("foo", 1))


def test_an_unknown_field_under_strict_is_a_400_strict_decoding_error() -> None:
    with pytest.raises(errors.BadRequest) as caught:
        check(copy.deepcopy(UNKNOWN), mode="Strict")
    assert caught.value.code == 400
    assert caught.value.message == 'strict decoding error: unknown field "spec.foo"'


def test_an_unknown_field_under_warn_is_a_warning_and_ignore_is_silent() -> None:
    assert check(copy.deepcopy(UNKNOWN), mode="Warn") == ['unknown field "spec.foo"']
    assert check(copy.deepcopy(UNKNOWN), mode="Ignore") == []


def test_unknown_fields_are_pruned_but_free_form_maps_are_kept() -> None:
    obj = copy.deepcopy(UNKNOWN)
    obj["metadata"]["annotations"] = {"anything/goes": "yes"}
    validation.prune_unknown(obj, schemas.for_kind("apps/v1", "Deployment"))
    assert "foo" not in obj["spec"]
    assert obj["metadata"]["annotations"] == {"anything/goes": "yes"}


IMMUTABLE = [
    pytest.param(
        deployment(),
        edit(
            deployment(),
            lambda o: (
                o["spec"]["selector"]["matchLabels"].__setitem__("tier", "x"),
                o["spec"]["template"]["metadata"]["labels"].__setitem__("tier", "x"),
            ),
        ),
        "spec.selector",
        id="a Deployment's selector",
    ),
    pytest.param(
        edit(service(), lambda o: o["spec"].__setitem__("clusterIP", "10.96.0.10")),
        edit(service(), lambda o: o["spec"].__setitem__("clusterIP", "10.96.0.11")),
        "spec.clusterIP",
        id="a Service's clusterIP",
    ),
    pytest.param(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "a"}]}
                }
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}
                }
            },
        },
        "spec.template",
        id="a Job's template",
    ),
    pytest.param(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "immutable": True,
            "data": {"a": "1"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c"},
            "immutable": True,
            "data": {"a": "2"},
        },
        "data",
        id="an immutable ConfigMap's data",
    ),
    pytest.param(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "immutable": True,
            "data": {"a": "MQ=="},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ=="}},
        "immutable",
        id="unsetting immutable on a Secret",
    ),
]


@pytest.mark.parametrize(("old", "new", "field"), IMMUTABLE)
def test_changing_an_immutable_field_is_422(
    old: dict[str, Any], new: dict[str, Any], field: str
) -> None:
    with pytest.raises(errors.Invalid) as caught:
        check(new, old=old)
    assert field in [c.field for c in caught.value.causes]


def test_an_unchanged_immutable_object_validates() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "immutable": True,
        "data": {"a": "1"},
    }
    assert check(copy.deepcopy(cm), old=cm) == []


def test_rbac_names_may_contain_colons() -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "system:metrics-server"},
    }
    assert check(role) == []


# -- custom resources --------------------------------------------------------------------------

CRD: dict[str, Any] = crds.crd(
    "example.com",
    "Widget",
    schema={
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "default": 1},
                    "color": {
                        "type": "string",
                        "enum": ["red", "blue"],
                        "default": "red",
                    },
                    "code": {"type": "string", "pattern": "^[a-z]+$"},
                    "extra": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                },
            }
        },
    },
)
CR_SCHEMA = schemas.for_crd_version(CRD, "v1")


def widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        pytest.param({"size": "big"}, "spec.size", "FieldValueTypeInvalid", id="a wrong type"),
        pytest.param({"size": 0}, "spec.size", "FieldValueInvalid", id="below the minimum"),
        pytest.param(
            {"size": 1, "color": "green"},
            "spec.color",
            "FieldValueNotSupported",
            id="outside the enum",
        ),
        pytest.param(
            {"size": 1, "code": "A1"},
            "spec.code",
            "FieldValueInvalid",
            id="not matching the pattern",
        ),
        pytest.param({}, "spec.size", "FieldValueRequired", id="a required field missing"),
    ],
)
def test_a_custom_resource_violating_its_crd_schema_is_422(
    spec: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(errors.Invalid) as caught:
        validation.validate(widget(**spec), schema=CR_SCHEMA, old=None)
    assert (field, reason) in [(c.field, c.reason) for c in caught.value.causes]


def test_a_custom_resource_gets_schema_defaults_and_loses_unpreserved_unknown_fields() -> None:
    obj = widget(size=2, bogus=True, extra={"free": {"form": 1}})
    validation.prune_unknown(obj, CR_SCHEMA)
    defaults.apply_defaults(obj, schema=CR_SCHEMA, custom=True)
    assert obj["spec"] == {"size": 2, "color": "red", "extra": {"free": {"form": 1}}}
    assert validation.validate(obj, schema=CR_SCHEMA, old=None) == []
