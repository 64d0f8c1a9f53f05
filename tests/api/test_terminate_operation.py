"""Terminating a running sync through the REST API (``DELETE .../operation``), end to end.

``syrup up`` runs the API and the controller; an app whose PreSync hook runs for an hour is
Running until the API terminates it, and then the operation is Failed ("Operation
terminated"), the Sync phase never ran and the hook is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.api.harness import Up, application, make_repo, unique, wait_for
from tests.conftest import Cluster

HOOK = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "migrate", "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
    "spec": {
        "template": {
            "metadata": {"annotations": {"workloads.syrup.dev/run-seconds": "3600"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": "busybox:1.36"}],
            },
        }
    },
}


def operation_state(client: httpx.Client, name: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/applications/{name}")
    assert r.status_code == 200, r.text
    state: dict[str, Any] = (r.json().get("status") or {}).get("operationState") or {}
    return state


def exists(cluster: Cluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode == 0


def test_the_api_terminates_a_sync_waiting_for_its_presync_hook(
    up: Up, cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    repo.write("app/hook.yaml", [HOOK])
    repo.push("a slow migration")
    name, dest = unique("term"), unique("ns")
    with up.client() as c:
        r = c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest))
        assert r.status_code == 201, r.text
        wait_for(
            "the sync to be Running", lambda: operation_state(c, name).get("phase") == "Running"
        )
        assert exists(cluster, "job", "migrate", "-n", dest)

        r = c.delete(f"/api/v1/applications/{name}/operation")
        assert r.status_code < 300, r.text
        wait_for("Failed", lambda: operation_state(c, name).get("phase") == "Failed", timeout=90)
        assert operation_state(c, name)["message"] == "Operation terminated"
        wait_for("the hook deleted", lambda: not exists(cluster, "job", "migrate", "-n", dest))
        assert not exists(cluster, "configmap", "web-config", "-n", dest)

        # A second terminate has nothing to stop.
        assert c.delete(f"/api/v1/applications/{name}/operation").status_code == 400
