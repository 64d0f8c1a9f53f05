"""Acceptance: Argo CD's example apps and app-of-apps chart sync on the local cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SYRUP, Cluster
from tests.gitops import harness
from tests.gitops.conftest import EXAMPLES, Repo

EXAMPLES_URL = "https://github.com/argoproj/argocd-example-apps"


@pytest.fixture
def examples(make_repo: Callable[..., Repo]) -> Repo:
    return make_repo(EXAMPLES, branch="master")


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    """A controller watching Applications in this test's own namespace."""
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("guestbook", {}),
        ("helm-guestbook", {"helm": {"valueFiles": ["values-production.yaml"]}}),
        ("kustomize-guestbook", {}),
        ("sync-waves", {}),
        ("pre-post-sync", {}),
    ],
)
def test_each_example_app_becomes_synced_and_healthy_with_automated_sync(
    cluster: Cluster,
    ns: str,
    examples: Repo,
    running: harness.Running,
    path: str,
    source: dict[str, Any],
) -> None:
    name = f"{ns}-{path}"
    app = harness.application(
        name,
        ns,
        repo=examples.url,
        path=path,
        dest=name,
        automated={"prune": True, "selfHeal": True},
        **source,
    )
    with cluster.client() as client:
        harness.apply_app(client, app)
        done = harness.wait_synced_healthy(client, ns, name)

    status = done["status"]
    assert status["sync"]["revision"] == examples.head()
    assert status["operationState"]["phase"] == "Succeeded"
    assert status["operationState"]["operation"]["initiatedBy"] == {"automated": True}
    results = status["operationState"]["syncResult"]["resources"]
    assert results and all(r["status"] == "Synced" for r in results)
    assert all(r["message"].endswith((" created", " configured", " unchanged")) for r in results)
    assert [h["revision"] for h in status["history"]] == [examples.head()]
    assert status["summary"]["images"]
    plain = [r for r in status["resources"] if not r.get("hook")]
    assert plain and all(r["status"] == "Synced" for r in plain)
    assert all(r["health"]["status"] == "Healthy" for r in plain)
    deployed = cluster.kubectl_json(
        "get", "all", "-n", name, "-l", f"app.kubernetes.io/instance={name}"
    )
    assert deployed["items"]


def test_the_app_of_apps_chart_creates_child_applications_that_reconcile_too(
    cluster_factory: Callable[..., Cluster],
    examples: Repo,
    git_rewrite: Callable[[str, Repo], None],
    tmp_path: Path,
) -> None:
    # The chart's children point at GitHub; git configuration serves them from the local repo.
    git_rewrite(EXAMPLES_URL, examples)
    cluster = cluster_factory()
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", "argocd"))
    try:
        app = harness.application(
            "apps", "argocd", repo=EXAMPLES_URL, path="apps", dest="argocd", automated={}
        )
        with cluster.client() as client:
            harness.apply_app(client, app)

            def children() -> list[dict[str, Any]] | None:
                items = client.get(harness.APPS.format(ns="argocd")).json()["items"]
                kids = [a for a in items if a["metadata"]["name"].startswith("example.")]
                return kids if len(kids) == 14 else None

            harness.wait_for("14 child Applications", children)
            for child in ("guestbook", "helm-guestbook", "kustomize-guestbook", "sync-waves"):
                harness.wait_synced_healthy(client, "argocd", f"example.{child}")
            # A child whose path is not in the repository reports why, without blocking others.
            missing = harness.wait_for(
                "a ComparisonError on example.sock-shop",
                lambda: (
                    harness.get_app(client, "argocd", "example.sock-shop").get("status") or {}
                ).get("conditions"),
            )
            assert missing[0]["type"] == "ComparisonError"
            assert "sock-shop" in missing[0]["message"]
            parent = harness.get_app(client, "argocd", "apps")["status"]
            kinds = {(r["kind"], r["name"]) for r in parent["resources"]}
            assert ("Application", "example.guestbook") in kinds
            assert parent["sync"]["status"] == "Synced"
    finally:
        run.stop()


def test_the_syrup_controller_command_runs_against_a_cluster_through_its_kubeconfig(
    cluster: Cluster, ns: str, examples: Repo, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [
            SYRUP,
            "controller",
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--namespace",
            ns,
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        name = f"{ns}-cli"
        app = harness.application(
            name, ns, repo=examples.url, path="guestbook", dest=name, automated={}
        )
        with cluster.client() as client:
            harness.wait_for(
                "the default AppProject",
                lambda: (
                    client.get(
                        f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/appprojects/default"
                    ).status_code
                    == 200
                ),
            )
            harness.apply_app(client, app)
            harness.wait_synced_healthy(client, ns, name)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_syrup_controller_command_names_a_kubeconfig_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    proc = subprocess.run(
        [SYRUP, "controller", "--kubeconfig", str(missing), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert str(missing) in proc.stderr
