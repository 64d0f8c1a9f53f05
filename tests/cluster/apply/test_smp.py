"""Strategic merge patch directives, each case a before/patch/after triple on a Deployment.

The cases follow the strategic-merge-patch design document: merge keys from the schema,
``$patch`` replace/delete/merge, ``$retainKeys``, ``$deleteFromPrimitiveList`` and
``$setElementOrder``, plus the null-deletes and replace-by-default rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from syrup.cluster import errors
from syrup.cluster.apply import schemas, smp

SCHEMA = schemas.for_kind("apps/v1", "Deployment")


def pod(**spec: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


A = {"name": "a", "image": "a:1"}
B = {"name": "b", "image": "b:1"}
C = {"name": "c", "image": "c:1"}

CASES = [
    pytest.param(
        pod(containers=[A, B]),
        pod(containers=[{"name": "b", "image": "b:2"}]),
        pod(containers=[A, {"name": "b", "image": "b:2"}]),
        id="containers merge by their name key",
    ),
    pytest.param(
        pod(containers=[A]),
        pod(containers=[B]),
        pod(containers=[A, B]),
        id="a new keyed item is appended",
    ),
    pytest.param(
        pod(containers=[A, B]),
        pod(containers=[{"name": "a", "$patch": "delete"}]),
        pod(containers=[B]),
        id="$patch delete removes the keyed item",
    ),
    pytest.param(
        pod(containers=[A, B]),
        pod(containers=[C, {"$patch": "replace"}]),
        pod(containers=[C]),
        id="$patch replace in a list replaces the whole list",
    ),
    pytest.param(
        pod(containers=[{**A, "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]),
        pod(
            containers=[
                {"name": "a", "resources": {"limits": {"memory": "1Gi"}, "$patch": "replace"}}
            ]
        ),
        pod(containers=[{**A, "resources": {"limits": {"memory": "1Gi"}}}]),
        id="$patch replace in a map replaces the map",
    ),
    pytest.param(
        pod(containers=[A], nodeSelector={"disk": "ssd"}),
        pod(nodeSelector={"$patch": "delete"}),
        pod(containers=[A]),
        id="$patch delete in a map removes it",
    ),
    pytest.param(
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
        id="$retainKeys clears the keys it does not list",
    ),
    pytest.param(
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
        id="$deleteFromPrimitiveList removes scalars from a merged list",
    ),
    pytest.param(
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "b"]}},
        id="a merged list of scalars is a union",
    ),
    pytest.param(
        pod(containers=[A, B, C]),
        pod(**{"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
        pod(containers=[C, A, B]),
        id="$setElementOrder orders a keyed list",
    ),
    pytest.param(
        pod(containers=[{**A, "args": ["x", "y"]}]),
        pod(containers=[{"name": "a", "args": ["z"]}]),
        pod(containers=[{**A, "args": ["z"]}]),
        id="a list without a merge strategy is replaced",
    ),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "c": "3"}}},
        {"metadata": {"labels": {"b": "2", "c": "3"}}},
        id="null deletes a map key",
    ),
    pytest.param(
        pod(containers=[{**A, "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
        pod(containers=[{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}]),
        pod(containers=[{**A, "env": [{"name": "Y", "value": "2"}]}]),
        id="nested keyed lists merge too",
    ),
    pytest.param(
        {"spec": {"selector": {"matchLabels": {"a": "1"}}}},
        {"spec": {"selector": {"matchLabels": {"b": "2"}}}},
        {"spec": {"selector": {"matchLabels": {"b": "2"}}}},
        id="an atomic map (LabelSelector) is replaced",
    ),
]


@pytest.mark.parametrize(("before", "patch", "after"), CASES)
def test_strategic_merge_patch(
    before: dict[str, Any], patch: dict[str, Any], after: dict[str, Any]
) -> None:
    assert smp.strategic_merge(before, patch, schema=SCHEMA) == after


def test_the_patch_leaves_its_inputs_untouched() -> None:
    before = pod(containers=[A, B])
    patch = pod(containers=[{"name": "a", "image": "a:2"}])
    smp.strategic_merge(before, patch, schema=SCHEMA)
    assert before == pod(containers=[A, B])


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"spec": {"$patch": "explode"}}, id="an unknown $patch directive"),
        pytest.param({"spec": {"strategy": {"$retainKeys": "type"}}}, id="$retainKeys not a list"),
        pytest.param(pod(containers=[{"image": "x"}]), id="a keyed item without its key"),
        pytest.param(pod(containers=["x"]), id="a keyed item that is not an object"),
        pytest.param(
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            id="$deleteFromPrimitiveList not a list",
        ),
    ],
)
def test_a_malformed_patch_is_a_bad_request(patch: dict[str, Any]) -> None:
    with pytest.raises(errors.BadRequest):
        smp.strategic_merge(pod(containers=[A]), patch, schema=SCHEMA)
