"""Preparing desired objects for a sync, and the status patches the controller writes."""

from __future__ import annotations

from typing import Any

import pytest

from syrup.gitops import controller, sync
from syrup.kube import client as kclient


def res(group: str, version: str, kind: str, plural: str, namespaced: bool) -> kclient.ApiResource:
    return kclient.ApiResource(group, version, kind, plural, namespaced, frozenset({"list"}))


DISCOVERY = kclient.Discovery(
    resources=(
        res("", "v1", "ConfigMap", "configmaps", True),
        res("", "v1", "Namespace", "namespaces", False),
        res("apps", "v1", "Deployment", "deployments", True),
    ),
    preferred={"": "v1", "apps": "v1"},
    server_version="v1.30.0",
)


def manifest(api: str, kind: str, name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, **meta}}


def test_prepared_objects_carry_the_tracking_label_and_the_destination_namespace() -> None:
    targets = sync.prepare(
        [
            manifest("apps/v1", "Deployment", "web", labels={"app": "web"}),
            manifest("v1", "ConfigMap", "elsewhere", namespace="other"),
            manifest("v1", "Namespace", "team", namespace="ignored"),
            manifest("example.com/v1", "Widget", "w"),
            manifest("batch/v1", "Job", "skip", annotations={"argocd.argoproj.io/hook": "Skip"}),
        ],
        app="shop",
        namespace="dest",
        discovery=DISCOVERY,
    )
    by_name = {t.key.name: t for t in targets}
    assert list(by_name) == ["team", "elsewhere", "web", "w"]
    assert by_name["web"].obj["metadata"]["labels"] == {
        "app": "web",
        "app.kubernetes.io/instance": "shop",
    }
    assert by_name["web"].key.namespace == "dest"
    assert by_name["elsewhere"].key.namespace == "other"
    assert "namespace" not in by_name["team"].obj["metadata"]
    assert by_name["w"].res is None  # not served: the sync will say so


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1}}, {"a": {"y": None}}),
        ({"l": [1, 2]}, {"l": [2]}, {"l": [2]}),
        ({}, {"n": {"m": 1}}, {"n": {"m": 1}}),
    ],
)
def test_status_patches_are_json_merge_patches(
    old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert controller.merge_patch(old, new) == patch
