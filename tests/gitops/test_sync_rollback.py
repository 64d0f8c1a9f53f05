"""Acceptance: history, rollback, the pause flag, and resuming automation.

Two revisions are deployed; rolling back to the first restores its image. With automated sync
on, a plain rollback is refused with a message; with the pause flag it runs, the pause is
recorded in the app's status, and a new commit does not undo the rollback until automation is
resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:{tag}
"""


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def image(cluster: Cluster, namespace: str) -> str:
    dep = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def patch_app(cluster: Cluster, ns: str, name: str, body: dict[str, Any]) -> None:
    with cluster.client() as client:
        response = client.patch(
            f"{harness.APPS.format(ns=ns)}/{name}",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    with cluster.client() as client:
        return harness.get_app(client, ns, name).get("status") or {}


def test_rollback_restores_a_revision_and_the_pause_flag_holds_automation_until_resumed(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("web/deployment.yaml", DEPLOYMENT.replace("{tag}", "1.25"))
    first = repo.commit("web 1.25")
    name, dest = f"{ns}-web", f"{ns}-web"
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(name, ns, repo=repo.url, path="web", dest=dest, automated={}),
        )
        harness.wait_synced_healthy(client, ns, name)

    repo.write("web/deployment.yaml", DEPLOYMENT.replace("{tag}", "1.27"))
    second = repo.commit("web 1.27")
    running.refresh_repo(repo.url)
    harness.wait_for("image 1.27", lambda: image(cluster, dest) == "nginx:1.27")
    history = harness.wait_for(
        "two history entries",
        lambda: (
            len(status(cluster, ns, name).get("history") or []) == 2
            and status(cluster, ns, name)["history"]
        ),
    )
    assert [(h["id"], h["revision"]) for h in history] == [(0, first), (1, second)]
    assert history[1]["initiatedBy"] == {"automated": True}

    # Automation is on: a rollback without the flag is refused, and nothing changes.
    patch_app(cluster, ns, name, {"operation": {"rollback": {"id": 0}}})
    refused = harness.wait_for(
        "the refusal",
        lambda: (
            "automated sync is enabled"
            in (status(cluster, ns, name).get("operationState") or {}).get("message", "")
            and status(cluster, ns, name)["operationState"]
        ),
    )
    assert refused["phase"] == "Failed"
    assert image(cluster, dest) == "nginx:1.27"

    # With the pause flag the rollback runs and the pause is recorded.
    patch_app(cluster, ns, name, {"operation": {"rollback": {"id": 0, "pauseAutomation": True}}})
    harness.wait_for("image 1.25 again", lambda: image(cluster, dest) == "nginx:1.25")
    # NB: the pause is written before the rollback's own result: wait for both.
    after = harness.wait_for(
        "the pause and the rollback's result in status",
        lambda: (
            (st := status(cluster, ns, name)).get("automationPaused")
            and (st.get("operationState") or {}).get("syncResult", {}).get("revision") == first
            and st
        ),
    )
    assert after["operationState"]["phase"] == "Succeeded"
    assert after["operationState"]["syncResult"]["revision"] == first
    assert after["history"][-1]["revision"] == first

    # A new commit does not undo the rollback while paused.
    repo.write("web/deployment.yaml", DEPLOYMENT.replace("{tag}", "1.29"))
    third = repo.commit("web 1.29")
    running.refresh_repo(repo.url)
    harness.wait_for(
        "the app to see the new commit",
        lambda: (status(cluster, ns, name).get("sync") or {}).get("revision") == third,
    )
    time.sleep(2)
    assert image(cluster, dest) == "nginx:1.25"
    assert status(cluster, ns, name)["sync"]["status"] == "OutOfSync"

    # Resuming lets automation sync the newest commit.
    patch_app(
        cluster, ns, name, {"metadata": {"annotations": {"syrup.dev/resume-automation": "true"}}}
    )
    harness.wait_for("image 1.29", lambda: image(cluster, dest) == "nginx:1.29", timeout=60)
    final = harness.wait_for(
        "the pause cleared",
        lambda: not status(cluster, ns, name).get("automationPaused") and status(cluster, ns, name),
    )
    assert final["history"][-1]["revision"] == third


def test_rolling_back_to_an_unknown_id_fails_naming_the_known_ids(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("web/deployment.yaml", DEPLOYMENT.replace("{tag}", "1.25"))
    repo.commit("web")
    name = f"{ns}-manual"
    with cluster.client() as client:
        harness.apply_app(
            client, harness.application(name, ns, repo=repo.url, path="web", dest=name)
        )
    patch_app(cluster, ns, name, {"operation": {"sync": {}}})
    harness.wait_for("one deploy", lambda: len(status(cluster, ns, name).get("history") or []) == 1)
    patch_app(cluster, ns, name, {"operation": {"rollback": {"id": 5}}})
    op = harness.wait_for(
        "the failure",
        lambda: (
            "no history entry with id 5"
            in (status(cluster, ns, name).get("operationState") or {}).get("message", "")
            and status(cluster, ns, name)["operationState"]
        ),
    )
    assert "known ids: 0" in op["message"]
