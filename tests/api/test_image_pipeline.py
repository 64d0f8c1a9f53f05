"""From a registry push to a running image: the updater's intake inside ``syrup up``.

A plain push event posted to ``/api/v1/image-events`` becomes a commit in the GitOps repo, and
the controller refreshes the application at once (no poll wait), so the Deployment rolls to the
new tag.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from tests.api.harness import (
    application,
    git,
    make_repo,
    start_up,
    unique,
    wait_for,
    wait_synced_healthy,
)
from tests.conftest import Cluster


def test_a_push_event_is_committed_and_deployed_without_waiting_for_a_poll(
    cluster: Cluster, tmp_path: Path
):
    repo = make_repo(tmp_path)
    data_dir = tmp_path / "up"
    data_dir.mkdir()
    (data_dir / "updater.yaml").write_text(
        yaml.safe_dump({"repos": [{"url": repo.url, "branch": "main", "paths": ["app"]}]})
    )
    # A long refresh period: only the updater's refresh request can explain a quick deploy.
    up = start_up(
        data_dir,
        kubeconfig=cluster.kubeconfig,
        args=["--no-demo", "--refresh-seconds", "3600"],
    )
    try:
        up.token = up.login()
        name, dest = unique("pipeline"), cluster.namespace()
        with up.client() as c:
            c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest))
            wait_synced_healthy(c, name)

        token = (data_dir / "api" / "image-events-token").read_text().strip()
        event = {"image": "example.invalid/web", "tag": "2", "digest": "sha256:" + "a" * 64}
        denied = httpx.post(f"{up.url}/api/v1/image-events", json=event)
        assert denied.status_code == 401
        accepted = httpx.post(
            f"{up.url}/api/v1/image-events",
            content=json.dumps(event),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert accepted.status_code == 202, accepted.text

        def deployed_image() -> str:
            obj = cluster.kubectl_json("-n", dest, "get", "deployment", "web")
            return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])

        wait_for(
            "the new tag deployed", lambda: deployed_image() == "example.invalid/web:2", timeout=60
        )
        log = git("log", "-1", "--format=%s", "main", cwd=repo.bare)
        assert "example.invalid/web:2" in log or "web:2" in log
    finally:
        assert up.stop() == 0, up.log()
