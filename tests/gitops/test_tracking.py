"""Tracking methods: label, annotation, annotation+label, as Argo CD offers them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syrup.gitops import tracking
from syrup.kube import cache as kcache
from tests.conftest import SYRUP, Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

LABEL = "app.kubernetes.io/instance"
ANNOTATION = "argocd.argoproj.io/tracking-id"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: {value}\n"
METHODS = ["label", "annotation", "annotation+label"]


def deployment(name: str = "web", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"tier": "front"}},
    }


@pytest.mark.parametrize(
    ("method", "label", "annotation"),
    [
        ("label", "shop", None),
        ("annotation", None, "shop:apps/Deployment:shop/web"),
        ("annotation+label", "shop", "shop:apps/Deployment:shop/web"),
    ],
)
def test_each_method_stamps_its_marks_and_recognises_its_own_objects(
    method: str, label: str | None, annotation: str | None
) -> None:
    tracker = tracking.Tracker(tracking.parse_method(method))
    obj = deployment()
    tracker.stamp(obj, app="shop", key=kcache.Key("apps", "Deployment", "shop", "web"))
    meta = obj["metadata"]
    assert meta["labels"].get(LABEL) == label
    assert (meta.get("annotations") or {}).get(ANNOTATION) == annotation
    assert meta["labels"]["tier"] == "front"
    assert tracker.owner(obj) == "shop"
    assert tracker.owner(deployment()) is None


@pytest.mark.parametrize(
    ("method", "change", "owned"),
    [
        ("label", {"name": "copy"}, True),
        ("annotation", {"name": "copy"}, False),
        ("annotation", {"namespace": "other"}, False),
        ("annotation", {"kind": "StatefulSet"}, False),
        ("annotation", {"apiVersion": "extensions/v1beta1"}, False),
        ("annotation+label", {"name": "copy"}, False),
    ],
)
def test_a_copy_under_another_identity_is_the_apps_only_with_label_tracking(
    method: str, change: dict[str, str], owned: bool
) -> None:
    tracker = tracking.Tracker(tracking.parse_method(method))
    obj = deployment()
    tracker.stamp(obj, app="shop", key=kcache.Key("apps", "Deployment", "shop", "web"))
    copy = json.loads(json.dumps(obj))
    for field, value in change.items():
        (copy if field in ("kind", "apiVersion") else copy["metadata"])[field] = value
    assert tracker.owner(copy) == ("shop" if owned else None)


def test_an_object_named_by_the_server_from_generate_name_stays_its_apps() -> None:
    tracker = tracking.Tracker(tracking.Method.ANNOTATION)
    hook: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"generateName": "migrate-", "namespace": "shop"},
    }
    tracker.stamp(hook, app="shop", key=kcache.Key("batch", "Job", "shop", "migrate-"))
    hook["metadata"]["name"] = "migrate-x7k2p"
    assert tracker.owner(hook) == "shop"
    del hook["metadata"]["generateName"]
    assert tracker.owner(hook) is None


def test_an_unknown_method_is_a_configuration_error() -> None:
    with pytest.raises(tracking.InvalidMethod, match="expected one of label, annotation"):
        tracking.parse_method("labels")


def test_the_tracking_id_has_argo_cds_shape_for_core_and_cluster_scoped_kinds() -> None:
    assert tracking.tracking_id("a", kcache.Key("", "Service", "ns", "s")) == "a:/Service:ns/s"
    assert tracking.tracking_id("a", kcache.Key("", "Namespace", "", "n")) == "a:/Namespace:/n"


@pytest.fixture(params=METHODS)
def running(
    request: pytest.FixtureRequest, cluster: Cluster, ns: str, tmp_path: Path, git_home: Path
) -> Iterator[harness.Running]:
    settings = harness.settings(cluster.kubeconfig, tmp_path / "data", ns)
    run = harness.Running(dataclasses.replace(settings, tracking_method=request.param))
    yield run
    run.stop()


def _copy(cluster: Cluster, dest: str, source: str, name: str) -> None:
    """Another tool copies a tracked object under a new name, marks and all."""
    live = cluster.kubectl_json("get", "configmap", source, "-n", dest)
    meta = live["metadata"]
    copy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": dest,
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
        },
        "data": live["data"],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(copy))


def test_the_chosen_method_marks_live_objects_and_a_copy_is_pruned_only_under_labels(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    method = running.controller.settings.tracking_method
    repo = make_repo()
    repo.write("app/cm.yaml", CONFIGMAP.format(name="orig", value="v1"))
    repo.commit("one ConfigMap")
    dest, name = f"{ns}-dest", f"{ns}-app"
    app = harness.application(
        name, ns, repo=repo.url, path="app", dest=dest, automated={"prune": True}
    )
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_synced_healthy(client, ns, name)
        meta = cluster.kubectl_json("get", "configmap", "orig", "-n", dest)["metadata"]
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        assert (LABEL in labels) is (method != "annotation")
        expected = f"{name}:/ConfigMap:{dest}/orig" if method != "label" else None
        assert annotations.get(ANNOTATION) == expected

        _copy(cluster, dest, "orig", "copy")
        # A new commit makes the app sync (with prune) again.
        repo.write("app/more.yaml", CONFIGMAP.format(name="more", value="v1"))
        repo.commit("another ConfigMap")
        running.refresh_repo(repo.url)
        if method == "label":
            harness.wait_for(
                "the labelled copy pruned as the app's",
                lambda: cluster.kubectl("get", "cm", "copy", "-n", dest, check=False).returncode,
            )
            return
        status = harness.wait_for(
            "the new ConfigMap synced",
            lambda: (
                (app_obj := harness.get_app(client, ns, name))
                and harness.app_state(app_obj) == ("Synced", "Healthy")
                and any(r["name"] == "more" for r in app_obj["status"]["resources"])
                and app_obj["status"]
            ),
        )
    assert status["operationState"]["phase"] == "Succeeded"
    assert {r["name"] for r in status["resources"]} == {"orig", "more"}
    pruned = [r for r in status["operationState"]["syncResult"]["resources"] if r["name"] == "copy"]
    assert pruned == []
    assert cluster.kubectl_json("get", "cm", "copy", "-n", dest)["data"] == {"k": "v1"}


def test_shared_resources_are_still_detected_under_the_chosen_method(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    repo = make_repo()
    repo.write("first/cm.yaml", CONFIGMAP.format(name="shared", value="first"))
    repo.write("second/cm.yaml", CONFIGMAP.format(name="shared", value="second"))
    repo.commit("two apps, one ConfigMap")
    dest, first, second = f"{ns}-shared", f"{ns}-first", f"{ns}-second"
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(first, ns, repo=repo.url, path="first", dest=dest, automated={}),
        )
        harness.wait_synced_healthy(client, ns, first)
        harness.apply_app(
            client,
            harness.application(second, ns, repo=repo.url, path="second", dest=dest, automated={}),
        )
        warning = harness.wait_for(
            "a SharedResourceWarning on the second app",
            lambda: next(
                (
                    c["message"]
                    for c in (harness.get_app(client, ns, second).get("status") or {}).get(
                        "conditions", []
                    )
                    if c["type"] == "SharedResourceWarning"
                ),
                None,
            ),
        )
    assert f"is also part of application {first}" in warning
    assert cluster.kubectl_json("get", "cm", "shared", "-n", dest)["data"] == {"k": "first"}


def test_the_controller_refuses_an_unknown_tracking_method(cluster: Cluster) -> None:
    proc = subprocess.run(
        [SYRUP, "controller", "--kubeconfig", str(cluster.kubeconfig), "--tracking-method", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "tracking method 'x': expected one of label, annotation" in proc.stderr
