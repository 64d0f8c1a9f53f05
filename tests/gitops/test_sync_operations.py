"""Acceptance: operations on demand, a sync to another revision and a sync of a subset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

CONFIGMAPS = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
data:
  version: "{v}"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: b
data:
  version: "{v}"
"""


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def operate(cluster: Cluster, ns: str, name: str, sync: dict[str, Any]) -> dict[str, Any]:
    """Ask for a sync and wait for its result (a new operationState, the operation cleared)."""
    with cluster.client() as client:
        status = harness.get_app(client, ns, name).get("status") or {}
        before = status.get("operationState")
        response = client.patch(
            f"{harness.APPS.format(ns=ns)}/{name}",
            json={"operation": {"sync": sync, "initiatedBy": {"username": "alice"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text

        def finished() -> dict[str, Any] | None:
            app = harness.get_app(client, ns, name)
            op = (app.get("status") or {}).get("operationState") or {}
            done = op.get("phase") in ("Succeeded", "Failed", "Error")
            fresh = op != before  # timestamps have whole seconds: compare all of it
            return app["status"] if done and fresh and "operation" not in app else None

        return harness.wait_for("the operation's result", finished)


def versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    items = cluster.kubectl_json(
        "get", "configmaps", "-n", namespace, "-l", "app.kubernetes.io/instance"
    )["items"]
    return {i["metadata"]["name"]: i["data"]["version"] for i in items}


def test_a_sync_to_a_given_revision_applies_that_commit_and_records_it(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/cms.yaml", CONFIGMAPS.replace("{v}", "1"))
    first = repo.commit("v1")
    repo.write("app/cms.yaml", CONFIGMAPS.replace("{v}", "2"))
    repo.commit("v2")
    name = f"{ns}-ops"
    with cluster.client() as client:
        harness.apply_app(
            client, harness.application(name, ns, repo=repo.url, path="app", dest=name)
        )
    status = operate(cluster, ns, name, {"revision": first})
    assert versions(cluster, name) == {"a": "1", "b": "1"}
    assert status["history"][-1]["revision"] == first
    assert status["history"][-1]["initiatedBy"] == {"username": "alice"}
    assert status["operationState"]["syncResult"]["revision"] == first


def test_a_sync_of_a_subset_applies_only_the_named_resources_and_prunes_nothing(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/cms.yaml", CONFIGMAPS.replace("{v}", "1"))
    repo.commit("v1")
    name = f"{ns}-subset"
    with cluster.client() as client:
        harness.apply_app(
            client, harness.application(name, ns, repo=repo.url, path="app", dest=name)
        )
    operate(cluster, ns, name, {})
    assert versions(cluster, name) == {"a": "1", "b": "1"}

    repo.write("app/cms.yaml", CONFIGMAPS.replace("{v}", "2").split("---")[0])
    repo.commit("v2 of a; b removed")
    running.refresh_repo(repo.url)
    with cluster.client() as client:
        harness.wait_for(
            "the app to see the new commit",
            lambda: (
                (harness.get_app(client, ns, name).get("status") or {})
                .get("sync", {})
                .get("status")
                == "OutOfSync"
            ),
        )
    status = operate(
        cluster, ns, name, {"prune": True, "resources": [{"kind": "ConfigMap", "name": "a"}]}
    )
    assert versions(cluster, name) == {"a": "2", "b": "1"}
    names = [r["name"] for r in status["operationState"]["syncResult"]["resources"]]
    assert names == ["a"]
    # The operation records its subset; like Argo CD, a partial sync is not a history entry
    # (a rollback to an entry deploys all of it).
    assert status["operationState"]["operation"]["sync"]["resources"] == [
        {"kind": "ConfigMap", "name": "a"}
    ]
    assert len(status["history"]) == 1

    # The namespace form names the same resource; a filter matching nothing fails the sync.
    status = operate(
        cluster,
        ns,
        name,
        {"resources": [{"kind": "ConfigMap", "name": "a", "namespace": name}]},
    )
    assert status["operationState"]["phase"] == "Succeeded"
    status = operate(cluster, ns, name, {"resources": [{"kind": "ConfigMap", "name": "nope"}]})
    op = status["operationState"]
    assert op["phase"] == "Failed"
    assert op["message"].endswith("no resource of the application matches :ConfigMap:nope"), op
