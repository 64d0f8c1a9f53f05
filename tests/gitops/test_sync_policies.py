"""Acceptance: AppProject rules stop an app before it syncs; syncPolicy.retry backs off.

Both run the real controller against the local cluster. Retry waits are checked on the
controller's recorded attempt times, with the waits as configured (the scheduler ticks every
half second, so a gap may be up to a tick longer, never shorter).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n"
ROLE = (
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\n"
    "rules: []\n"
)
# A name the API server rejects: the dry run fails the same way on every attempt.
INVALID = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\n"


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    settings = dataclasses.replace(
        harness.settings(cluster.kubeconfig, tmp_path / "data", ns), retry_time_scale=1.0
    )
    run = harness.Running(settings)
    yield run
    run.stop()


def project(ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "team", "namespace": ns},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "files", "rule"),
    [
        (
            {
                "sourceRepos": ["https://github.com/acme/*"],
                "destinations": [{"server": "*", "namespace": "*"}],
            },
            {"app/cm.yaml": CONFIGMAP},
            "spec.sourceRepos",
        ),
        (
            {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "team-*"}]},
            {"app/cm.yaml": CONFIGMAP},
            "spec.destinations",
        ),
        (
            {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]},
            {"app/cm.yaml": CONFIGMAP, "app/role.yaml": ROLE},
            "spec.clusterResourceWhitelist",
        ),
        (
            {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "namespaceResourceBlacklist": [{"group": "", "kind": "ConfigMap"}],
            },
            {"app/cm.yaml": CONFIGMAP},
            "spec.namespaceResourceBlacklist",
        ),
    ],
)
def test_an_app_breaking_a_project_rule_gets_a_condition_naming_it_and_is_never_synced(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    spec: dict[str, Any],
    files: dict[str, str],
    rule: str,
) -> None:
    repo = make_repo()
    for rel, text in files.items():
        repo.write(rel, text.replace("{name}", f"{ns}-role"))
    repo.commit("app")
    name = f"{ns}-app"
    with cluster.client() as client:
        harness.apply(
            client, project(ns, spec), f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/appprojects"
        )
        app = harness.application(name, ns, repo=repo.url, path="app", dest=name, automated={})
        app["spec"]["project"] = "team"
        harness.apply_app(client, app)
        conditions = harness.wait_for(
            "an InvalidSpecError",
            lambda: (harness.get_app(client, ns, name).get("status") or {}).get("conditions"),
        )
    assert conditions[0]["type"] == "InvalidSpecError"
    assert rule in conditions[0]["message"]
    time.sleep(1)
    found = cluster.kubectl("get", "configmap", "settings", "-n", name, check=False)
    assert found.returncode != 0
    assert running.run(lambda: running.controller.syncs) == 0


def test_a_failing_sync_is_retried_on_the_configured_backoff_then_given_up(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/invalid.yaml", INVALID)
    repo.commit("an object the API server rejects")
    name = f"{ns}-retry"
    app = harness.application(name, ns, repo=repo.url, path="app", dest=name, automated={})
    app["spec"]["syncPolicy"]["retry"] = {
        "limit": 2,
        "backoff": {"duration": "1s", "factor": 2, "maxDuration": "1m"},
    }
    with cluster.client() as client:
        harness.apply_app(client, app)

    def attempts() -> list[float]:
        state = running.controller.states.get(f"{ns}/{name}")
        return list(state.retry_times) if state else []

    times = harness.wait_for(
        "three failed attempts",
        lambda: len(running.run(attempts)) >= 3 and running.run(attempts),
        timeout=30,
    )
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, wanted in zip(gaps, [1.0, 2.0], strict=True):
        assert wanted <= gap <= wanted + 1.5, gaps
    # The limit is reached: no fourth attempt.
    time.sleep(4)
    assert len(running.run(attempts)) == 3
    with cluster.client() as client:
        op = harness.get_app(client, ns, name)["status"]["operationState"]
    assert op["phase"] == "Failed" and "Not_A_Valid_Name" in op["message"]
