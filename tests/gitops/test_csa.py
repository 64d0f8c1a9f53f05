"""kubectl-style three-way patches: what goes, what stays, and how lists merge.

The acceptance tests in ``test_sync_options_apply.py`` send these patches to the local
cluster; here the patches themselves are checked against the strategic-merge-patch rules
(patch merge keys from the Kubernetes OpenAPI definitions) and JSON merge patch for custom
resources.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from syrup.gitops import csa


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


def deploy_spec(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}, **spec}}


@pytest.mark.parametrize(
    ("api_version", "kind", "original", "live", "desired", "expected"),
    [
        pytest.param(
            "v1",
            "ConfigMap",
            {"data": {"a": "1", "b": "2"}},
            {"data": {"a": "1", "b": "theirs", "c": "3"}},
            {"data": {"a": "10"}},
            {"data": {"a": "10", "b": None}},
            id="a dropped field goes, another writer's field stays",
        ),
        pytest.param(
            "v1",
            "ConfigMap",
            {"data": {"a": "1"}},
            {"data": {"a": "1", "c": "3"}},
            {"data": {"a": "1"}},
            {},
            id="nothing to change is an empty patch",
        ),
        pytest.param(
            "apps/v1",
            "Deployment",
            deploy_spec(container("web", image="a:1", env=[{"name": "OLD", "value": "1"}])),
            deploy_spec(
                container(
                    "web",
                    image="a:1",
                    imagePullPolicy="IfNotPresent",
                    env=[{"name": "OLD", "value": "1"}, {"name": "EXTRA", "value": "x"}],
                )
            ),
            deploy_spec(container("web", image="a:2")),
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "web", "image": "a:2", "env": None}],
                            "$setElementOrder/containers": [{"name": "web"}],
                        }
                    }
                }
            },
            id="containers merge by name; the env list the manifest dropped goes",
        ),
        pytest.param(
            "apps/v1",
            "Deployment",
            deploy_spec(container("web", image="a:1"), container("side", image="s:1")),
            deploy_spec(container("web", image="a:1"), container("side", image="s:1")),
            deploy_spec(container("web", image="a:1")),
            {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "side", "$patch": "delete"}],
                            "$setElementOrder/containers": [{"name": "web"}],
                        }
                    }
                }
            },
            id="a container the manifest dropped is deleted by its merge key",
        ),
        pytest.param(
            "apps/v1",
            "Deployment",
            {"spec": {"strategy": {"type": "RollingUpdate"}}},
            {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
            {"spec": {"strategy": {"type": "Recreate"}}},
            {"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"]}}},
            id="retainKeys clears what the new strategy type does not keep",
        ),
        pytest.param(
            "v1",
            "ConfigMap",
            {"metadata": {"finalizers": ["a/x"]}},
            {"metadata": {"finalizers": ["a/x", "b/z"]}},
            {"metadata": {"finalizers": ["a/y"]}},
            {
                "metadata": {
                    "finalizers": ["a/y"],
                    "$deleteFromPrimitiveList/finalizers": ["a/x"],
                }
            },
            id="a merged list of scalars adds and removes single values",
        ),
        pytest.param(
            "example.com/v1",
            "Widget",
            {"spec": {"items": [{"name": "a"}, {"name": "b"}]}},
            {"spec": {"items": [{"name": "a"}, {"name": "b"}], "status": "x"}},
            {"spec": {"items": [{"name": "a"}]}},
            {"spec": {"items": [{"name": "a"}]}},
            id="custom resources get a JSON merge patch: lists are replaced",
        ),
    ],
)
def test_three_way_patches(
    api_version: str,
    kind: str,
    original: dict[str, Any],
    live: dict[str, Any],
    desired: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    meta = csa.meta_for(api_version, kind)
    assert (meta is None) == (kind == "Widget")
    assert csa.three_way(original, live, desired, meta=meta) == expected


def test_the_last_applied_annotation_is_compact_sorted_json_without_itself() -> None:
    obj = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "c", "annotations": {csa.LAST_APPLIED: "old", "team": "a"}},
        "data": {"b": "2", "a": "1"},
    }
    value = csa.annotated(obj)["metadata"]["annotations"][csa.LAST_APPLIED]
    assert value == (
        '{"apiVersion":"v1","data":{"a":"1","b":"2"},"kind":"ConfigMap",'
        '"metadata":{"annotations":{"team":"a"},"name":"c"}}'
    )
    assert csa.previous({"metadata": {"annotations": {csa.LAST_APPLIED: value}}}) == json.loads(
        value
    )
    assert csa.previous({"metadata": {}}) == {}


@pytest.mark.parametrize(("size", "fits"), [(1000, True), (262_144, False)])
def test_an_object_fits_when_its_annotations_stay_within_262144_bytes(
    size: int, fits: bool
) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    obj["data"] = {"blob": "x" * size}
    assert csa.fits(obj) is fits
