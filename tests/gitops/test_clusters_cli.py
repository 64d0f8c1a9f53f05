"""``syrup cluster add --kubeconfig --context``: the real CLI registers a second cluster.

A private ``syrup up`` (its own local cluster, annotation tracking) is the controller; a second
local cluster is the destination. The CLI reads the destination's kubeconfig, the API stores
the cluster Secret, and an app created with ``--dest-name`` deploys there.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import PASSWORD, Up, make_repo, start_up, unique, wait_for
from tests.conftest import SYRUP, Cluster

TRACKING_ID = "argocd.argoproj.io/tracking-id"


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    running = start_up(
        tmp_path / "up",
        args=["--no-demo", "--refresh-seconds", "600", "--tracking-method", "annotation"],
    )
    yield running
    running.stop()


@pytest.fixture
def cli(up: Up, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**os.environ, "SYRUP_CONFIG": str(tmp_path / "config"), "NO_COLOR": "1"}
    env.pop("SYRUP_SERVER", None)
    env.pop("SYRUP_AUTH_TOKEN", None)

    def run(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [SYRUP, *args], capture_output=True, text=True, env=env, timeout=240, check=False
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"syrup {' '.join(args)} exited {proc.returncode}, not {check}:\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    run("login", up.url, "--username", "admin", "--password", PASSWORD)
    return run


def _clusters(cli: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    items = json.loads(cli("cluster", "list", "-o", "json").stdout)
    return {c["name"]: c for c in items}


@pytest.mark.timeout(600)
def test_cluster_add_from_a_kubeconfig_context_then_an_app_deploys_there(
    up: Up,
    cli: Callable[..., subprocess.CompletedProcess[str]],
    cluster_factory: Callable[..., Cluster],
    tmp_path: Path,
) -> None:
    remote = cluster_factory()
    missing = cli(
        "cluster", "add", "--kubeconfig", str(remote.kubeconfig), "--context", "nope", check=2
    )
    assert "no context named 'nope'" in missing.stderr

    added = cli(
        "cluster", "add", "--kubeconfig", str(remote.kubeconfig), "--context", "syrup",
        "--name", "staging",
    )  # fmt: skip
    assert f"cluster '{remote.url}' added" in added.stdout
    listed = _clusters(cli)
    assert listed["staging"]["server"] == remote.url
    assert listed["staging"]["connectionState"]["status"] == "Unknown"
    assert remote.token not in cli("cluster", "list", "-o", "json").stdout

    (tmp_path / "repo").mkdir()
    repo = make_repo(tmp_path / "repo")
    name, dest = unique("remote"), unique("ns")
    cli(
        "app", "create", name, "--repo", repo.url, "--path", "app", "--revision", "main",
        "--dest-name", "staging", "--dest-namespace", dest,
        "--sync-option", "CreateNamespace=true",
    )  # fmt: skip
    cli("app", "sync", name, "--prune", "--timeout", "200")
    cli("app", "wait", name, "--health", "--sync", "--timeout", "120")

    # Deployed on the registered cluster, marked with Argo CD's tracking annotation.
    live = remote.kubectl_json("get", "configmap", "-n", dest)["items"]
    assert live, "nothing deployed on the destination cluster"
    for obj in live:
        if obj["metadata"]["name"] == "kube-root-ca.crt":
            continue
        meta = obj["metadata"]
        assert meta["annotations"][TRACKING_ID] == f"{name}:/ConfigMap:{dest}/{meta['name']}"
        assert "app.kubernetes.io/instance" not in (meta.get("labels") or {})
    assert _clusters(cli)["staging"]["connectionState"]["status"] == "Successful"
    shown = cli("app", "get", name, "-o", "json").stdout
    assert remote.token not in shown and remote.token not in up.log()

    # The API shows the app's resources as they live on the destination.
    with up.client(up.login()) as api:
        tree = api.get(f"/api/v1/applications/{name}/resource-tree").json()["nodes"]
        managed = api.get(f"/api/v1/applications/{name}/managed-resources").json()["items"]
        events = api.get(f"/api/v1/applications/{name}/events").json()["items"]
    assert {"Deployment", "ReplicaSet", "Pod"} <= {n["kind"] for n in tree}
    # Its resources' events come from the destination, where the workloads run.
    involved = {e["involvedObject"]["kind"] for e in events}
    assert {"Deployment", "Pod"} <= involved, events
    assert all(n.get("uid") for n in tree), tree
    assert {m["name"] for m in managed if m["liveState"]} == {"web", "web-config"}

    # Removing the cluster leaves the app with a condition naming the destination.
    cli("cluster", "rm", remote.url)
    assert "staging" not in _clusters(cli)
    wait_for(
        "a condition on the app",
        lambda: "cluster staging is not configured" in cli("app", "get", name, "-o", "json").stdout,
        timeout=60,
    )
