"""Server-side apply ownership, as before/apply/after tables over a Deployment.

Each case starts from a live object built by earlier writes, applies a configuration as one
manager and checks the resulting object and managedFields, following the "Server-Side Apply"
documentation: shared fields, conflicts, force, removal of dropped fields, list-map keys
(containers by name, ports by containerPort+protocol, env by name), atomic lists and the
status subresource.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syrup.cluster import errors
from syrup.cluster.apply import defaults, fieldsets, managed, schemas
from tests import crds

SCHEMA = schemas.for_kind("apps/v1", "Deployment")


def deployment(**spec: Any) -> dict[str, Any]:
    """A minimal applied configuration; keyword arguments override spec fields."""
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
            },
        },
    }
    body["spec"].update(spec)
    return body


def containers(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": list(items)},
    }


def apply(
    live: dict[str, Any] | None, config: dict[str, Any], manager: str, *, force: bool = False
) -> dict[str, Any]:
    new = managed.server_side_apply(
        copy.deepcopy(live),
        copy.deepcopy(config),
        manager=manager,
        force=force,
        schema=SCHEMA,
        now="2026-01-01T00:00:00Z",
    )
    defaults.apply_defaults(new, schema=SCHEMA)
    return new


def update(
    live: dict[str, Any], change: Any, manager: str, *, subresource: str | None = None
) -> dict[str, Any]:
    new = copy.deepcopy(live)
    change(new)
    managed.record_update(
        live,
        new,
        manager=manager,
        schema=SCHEMA,
        now="2026-01-01T00:01:00Z",
        subresource=subresource,
    )
    return new


def owners(obj: dict[str, Any], path: str) -> list[str]:
    """Managers whose set holds ``path`` (printed as ``.spec.replicas``)."""
    out = []
    for entry in obj["metadata"].get("managedFields", []):
        tree = fieldsets.from_fields_v1(entry["fieldsV1"])
        if path in fieldsets.leaf_paths(tree):
            out.append(entry["manager"])
    return sorted(out)


def app_container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == "app"
    )
    return found


def test_the_first_apply_creates_the_object_and_owns_exactly_the_applied_fields() -> None:
    obj = apply(None, deployment(replicas=2), "kubectl")
    assert obj["spec"]["replicas"] == 2
    [entry] = obj["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl"
    assert entry["operation"] == "Apply"
    assert entry["fieldsType"] == "FieldsV1"
    spec = entry["fieldsV1"]["f:spec"]
    assert spec["f:replicas"] == {}
    assert spec["f:selector"] == {}, "a LabelSelector is an atomic map"
    assert spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}'] == {
        ".": {},
        "f:name": {},
        "f:image": {},
    }
    # Defaulted fields belong to nobody after an apply.
    assert "f:revisionHistoryLimit" not in spec
    assert obj["spec"]["revisionHistoryLimit"] == 10
    assert "f:name" not in entry["fieldsV1"].get("f:metadata", {})


def test_reapplying_the_same_configuration_changes_nothing() -> None:
    first = apply(None, deployment(replicas=2), "kubectl")
    again = apply(first, deployment(replicas=2), "kubectl")
    assert again == first


OWNERSHIP_CASES = [
    pytest.param(
        deployment(replicas=2),
        deployment(replicas=2),
        False,
        {"replicas": 2, ".spec.replicas": ["a", "b"]},
        id="managers applying the same value share the field",
    ),
    pytest.param(
        deployment(replicas=2),
        deployment(replicas=5),
        True,
        {"replicas": 5, ".spec.replicas": ["b"]},
        id="force moves the field to the new manager",
    ),
    pytest.param(
        deployment(replicas=2),
        deployment(),
        False,
        {"replicas": 2, ".spec.replicas": ["a"]},
        id="a manager that never applied a field cannot remove it",
    ),
]


@pytest.mark.parametrize(("first", "second", "force", "expected"), OWNERSHIP_CASES)
def test_ownership_between_two_appliers(
    first: dict[str, Any], second: dict[str, Any], force: bool, expected: dict[str, Any]
) -> None:
    obj = apply(None, first, "a")
    obj = apply(obj, second, "b", force=force)
    assert obj["spec"]["replicas"] == expected["replicas"]
    assert owners(obj, ".spec.replicas") == expected[".spec.replicas"]


def test_applying_a_different_value_over_another_managers_field_is_a_conflict_naming_both() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    before = copy.deepcopy(obj)
    with pytest.raises(errors.Conflict) as caught:
        apply(obj, deployment(replicas=5), "b")
    err = caught.value
    assert err.code == 409
    assert [(c.field, c.reason) for c in err.causes] == [(".spec.replicas", "FieldManagerConflict")]
    assert err.causes[0].message == 'conflict with "a" using apps/v1'
    assert (
        err.message
        == 'Apply failed with 1 conflict: conflict with "a" using apps/v1: .spec.replicas'
    )
    assert obj == before


def test_a_conflict_with_an_update_manager_names_it_too() -> None:
    obj = apply(None, deployment(replicas=2), "kubectl")
    obj = update(obj, lambda o: o["spec"].__setitem__("replicas", 4), "kubectl-scale")
    assert owners(obj, ".spec.replicas") == ["kubectl-scale"], "an update takes the field"
    with pytest.raises(errors.Conflict) as caught:
        apply(obj, deployment(replicas=3), "kubectl")
    assert "kubectl-scale" in caught.value.causes[0].message


REMOVAL_CASES = [
    pytest.param(
        [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        [{"name": "A", "value": "1"}],
        None,
        ["A"],
        id="an env var dropped from the configuration is removed",
    ),
    pytest.param(
        [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        [{"name": "A", "value": "1"}],
        "B",
        ["A", "B"],
        id="an env var another manager also set survives",
    ),
]


@pytest.mark.parametrize(("env_before", "env_after", "other_touches", "expected"), REMOVAL_CASES)
def test_removing_a_field_from_the_configuration(
    env_before: list[dict[str, str]],
    env_after: list[dict[str, str]],
    other_touches: str | None,
    expected: list[str],
) -> None:
    spec = {"template": containers({"name": "app", "image": "nginx:1", "env": env_before})}
    obj = apply(None, deployment(**spec), "kubectl")
    if other_touches:

        def change(o: dict[str, Any]) -> None:
            for var in app_container(o)["env"]:
                if var["name"] == other_touches:
                    var["value"] = "changed"

        obj = update(obj, change, "kubectl-edit")
    spec = {"template": containers({"name": "app", "image": "nginx:1", "env": env_after})}
    obj = apply(obj, deployment(**spec), "kubectl")
    assert [v["name"] for v in app_container(obj)["env"]] == expected


def test_containers_merge_by_name_and_keep_a_container_another_manager_added() -> None:
    obj = apply(None, deployment(), "kubectl")

    def add_sidecar(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"].append({"name": "proxy", "image": "envoy:1"})

    obj = update(obj, add_sidecar, "injector")
    changed = deployment(template=containers({"name": "app", "image": "nginx:2"}))
    obj = apply(obj, changed, "kubectl")
    names = [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["app", "proxy"]
    assert app_container(obj)["image"] == "nginx:2"
    assert owners(obj, '.spec.template.spec.containers[name="proxy"].image') == ["injector"]


def test_ports_are_keyed_by_container_port_and_the_defaulted_protocol() -> None:
    spec = {
        "template": containers(
            {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]}
        )
    }
    obj = apply(None, deployment(**spec), "kubectl")
    fields = obj["metadata"]["managedFields"][0]["fieldsV1"]
    app = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert list(app["f:ports"]) == ['k:{"containerPort":80,"protocol":"TCP"}']
    # The live port now carries protocol TCP from defaulting; re-applying without it matches.
    assert app_container(obj)["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert apply(obj, deployment(**spec), "kubectl") == obj


def test_an_atomic_list_is_replaced_whole_and_owned_as_one_field() -> None:
    spec = {"template": containers({"name": "app", "image": "nginx:1", "args": ["a", "b"]})}
    obj = apply(None, deployment(**spec), "kubectl")
    spec = {"template": containers({"name": "app", "image": "nginx:1", "args": ["c"]})}
    obj = apply(obj, deployment(**spec), "kubectl")
    assert app_container(obj)["args"] == ["c"]
    assert owners(obj, '.spec.template.spec.containers[name="app"].args') == ["kubectl"]
    with pytest.raises(errors.Conflict) as caught:
        spec = {"template": containers({"name": "app", "image": "nginx:1", "args": ["d"]})}
        apply(obj, deployment(**spec), "other")
    assert [c.field for c in caught.value.causes] == [
        '.spec.template.spec.containers[name="app"].args'
    ]


def test_a_status_write_is_owned_under_the_status_subresource_and_never_conflicts() -> None:
    obj = apply(None, deployment(replicas=2), "kubectl")
    obj = update(
        obj,
        lambda o: o.__setitem__("status", {"replicas": 2, "readyReplicas": 2}),
        "kube-controller-manager",
        subresource="status",
    )
    entry = next(
        e for e in obj["metadata"]["managedFields"] if e["manager"] == "kube-controller-manager"
    )
    assert entry["subresource"] == "status"
    # Another write after it sorts entries with and without a subresource together.
    obj = update(obj, lambda o: o["metadata"].__setitem__("labels", {"x": "1"}), "labeler")
    assert len(obj["metadata"]["managedFields"]) == 3
    assert entry["operation"] == "Update"
    assert set(entry["fieldsV1"]) == {"f:status"}
    assert apply(obj, deployment(replicas=3), "kubectl")["spec"]["replicas"] == 3


def test_an_update_takes_changed_fields_from_other_managers_and_drops_empty_entries() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    obj = update(obj, lambda o: o["spec"].__setitem__("replicas", 3), "b")
    obj = update(obj, lambda o: o["spec"].__setitem__("replicas", 4), "c")
    assert owners(obj, ".spec.replicas") == ["c"]
    assert sorted(e["manager"] for e in obj["metadata"]["managedFields"]) == ["a", "c"]


def test_a_client_can_clear_managed_fields_with_an_empty_list() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    new = copy.deepcopy(obj)
    new["metadata"]["managedFields"] = []
    managed.record_update(obj, new, manager="b", schema=SCHEMA, now="t")
    assert "managedFields" not in new["metadata"]


def test_a_no_op_update_keeps_the_time_of_every_entry() -> None:
    obj = apply(None, deployment(replicas=2), "a")
    same = update(obj, lambda o: None, "b")
    assert same["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_a_custom_resource_uses_its_crd_list_annotations() -> None:
    crd = crds.crd(
        "example.com",
        "Widget",
        schema={
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "parts": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["id"],
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "size": {"type": "integer"},
                                },
                            },
                        }
                    },
                }
            },
        },
    )
    schema = schemas.for_crd_version(crd, "v1")
    base = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    first = {**base, "spec": {"parts": [{"id": "a", "size": 1}]}}
    obj = managed.server_side_apply(None, first, manager="one", force=False, schema=schema, now="t")
    second = {**base, "spec": {"parts": [{"id": "b", "size": 2}]}}
    obj = managed.server_side_apply(obj, second, manager="two", force=False, schema=schema, now="t")
    assert obj["spec"]["parts"] == [{"id": "b", "size": 2}, {"id": "a", "size": 1}]
    fields = obj["metadata"]["managedFields"][1]["fieldsV1"]
    assert list(fields["f:spec"]["f:parts"]) == ['k:{"id":"b"}']
