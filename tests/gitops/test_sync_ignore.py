"""Acceptance: ignoreDifferences keeps a drifted field from making the app OutOfSync.

An app with selfHeal owns a Deployment; someone scales it by hand. With a rule for
``/spec/replicas`` (JSON pointer or jq path, per app or system-wide) the app stays Synced and
the hand-made scale stays; without a rule, selfHeal puts the replicas back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
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
          image: nginx:1.27
"""


def replicas(cluster: Cluster, namespace: str) -> int:
    return int(
        cluster.kubectl_json("get", "deployment", "web", "-n", namespace)["spec"]["replicas"]
    )


@pytest.mark.parametrize(
    ("rules", "defaults", "healed"),
    [
        (
            [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}],
            None,
            False,
        ),
        ([{"kind": "Deployment", "jqPathExpressions": [".spec.replicas"]}], None, False),
        (
            None,
            "ignoreDifferences:\n"
            "  - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n",
            False,
        ),
        (None, None, True),
    ],
)
def test_ignored_fields_do_not_make_the_app_out_of_sync(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    tmp_path: Path,
    git_home: Path,
    rules: list[dict[str, Any]] | None,
    defaults: str | None,
    healed: bool,
) -> None:
    repo = make_repo()
    repo.write("web/deployment.yaml", DEPLOYMENT)
    repo.commit("web")
    settings = harness.settings(cluster.kubeconfig, tmp_path / "data", ns)
    if defaults is not None:
        (tmp_path / "ignore.yaml").write_text(defaults)
        settings = dataclasses.replace(settings, ignore_defaults=tmp_path / "ignore.yaml")
    run = harness.Running(settings)
    try:
        name = f"{ns}-web"
        app = harness.application(
            name, ns, repo=repo.url, path="web", dest=name, automated={"selfHeal": True}
        )
        if rules is not None:
            app["spec"]["ignoreDifferences"] = rules
        with cluster.client() as client:
            harness.apply_app(client, app)
            harness.wait_synced_healthy(client, ns, name)
            cluster.kubectl("scale", "deployment", "web", "-n", name, "--replicas=3")
            if healed:
                harness.wait_for(
                    "selfHeal to restore 1 replica", lambda: replicas(cluster, name) == 1
                )
            else:
                time.sleep(3)
                assert replicas(cluster, name) == 3
                status = harness.get_app(client, ns, name)["status"]
                assert status["sync"]["status"] == "Synced"
    finally:
        run.stop()


def test_a_bad_ignore_rule_is_a_condition_naming_the_field(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], tmp_path: Path, git_home: Path
) -> None:
    repo = make_repo()
    repo.write("web/deployment.yaml", DEPLOYMENT)
    repo.commit("web")
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    try:
        name = f"{ns}-bad"
        app = harness.application(name, ns, repo=repo.url, path="web", dest=name, automated={})
        app["spec"]["ignoreDifferences"] = [{"kind": "Deployment", "jqPathExpressions": [".spec["]}]
        with cluster.client() as client:
            harness.apply_app(client, app)
            conditions = harness.wait_for(
                "an InvalidSpecError",
                lambda: (harness.get_app(client, ns, name).get("status") or {}).get("conditions"),
            )
        assert conditions[0]["type"] == "InvalidSpecError"
        assert "spec.ignoreDifferences[0].jqPathExpressions[0]" in conditions[0]["message"]
    finally:
        run.stop()
