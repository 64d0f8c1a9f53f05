"""Acceptance: an object two apps claim is reported on the second app, never fought over."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  owner: {owner}\n"


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


@pytest.mark.parametrize(("fail", "phase"), [(False, "Succeeded"), (True, "Failed")])
def test_a_resource_another_app_tracks_gets_a_condition_and_keeps_its_owner(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    fail: bool,
    phase: str,
) -> None:
    repo = make_repo()
    repo.write("first/cm.yaml", CONFIGMAP.replace("{owner}", "first"))
    repo.write("second/cm.yaml", CONFIGMAP.replace("{owner}", "second"))
    repo.commit("two apps, one ConfigMap")
    dest = f"{ns}-shared"
    first, second = f"{ns}-first", f"{ns}-second"
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(first, ns, repo=repo.url, path="first", dest=dest, automated={}),
        )
        harness.wait_synced_healthy(client, ns, first)
        options = ["CreateNamespace=true"] + (["FailOnSharedResource=true"] if fail else [])
        harness.apply_app(
            client,
            harness.application(
                second,
                ns,
                repo=repo.url,
                path="second",
                dest=dest,
                automated={"selfHeal": True},
                options=options,
            ),
        )
        status = harness.wait_for(
            "a SharedResourceWarning on the second app",
            lambda: (
                any(
                    c["type"] == "SharedResourceWarning"
                    for c in (harness.get_app(client, ns, second).get("status") or {}).get(
                        "conditions", []
                    )
                )
                and harness.get_app(client, ns, second)["status"]
            ),
        )
    warning = next(c for c in status["conditions"] if c["type"] == "SharedResourceWarning")
    assert f"is also part of application {first}" in warning["message"]
    assert status["operationState"]["phase"] == phase

    cm = cluster.kubectl_json("get", "configmap", "shared", "-n", dest)
    time.sleep(3)
    again = cluster.kubectl_json("get", "configmap", "shared", "-n", dest)
    assert again["data"] == {"owner": "first"}
    assert again["metadata"]["labels"]["app.kubernetes.io/instance"] == first
    assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
