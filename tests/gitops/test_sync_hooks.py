"""Acceptance: phases, waves and hooks as the local cluster saw them, from its watch events.

Argo CD's example apps ``sync-waves``, ``helm-hooks`` and ``pre-post-sync`` sync through the
controller; a watcher records every ADDED and DELETED event of the app's objects, and the
order of creation (by the cluster's global resourceVersion) must be the documented
phase → wave → kind order. Hooks run on every sync and are deleted per their policy. A
PreSync hook whose Job fails fails the sync, applies nothing of the Sync phase and runs the
SyncFail hook.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import EXAMPLES, Repo

WATCHED = (
    "/apis/batch/v1/jobs",
    "/api/v1/services",
    "/api/v1/configmaps",
    "/apis/apps/v1/replicasets",
    "/apis/apps/v1/deployments",
)


@dataclass
class Recorder:
    """Watch events of one app's objects, across kinds, in the cluster's own order."""

    cluster: Cluster
    app: str
    events: list[tuple[int, str, str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _clients: list[httpx.Client] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for path in WATCHED:
            ready = threading.Event()
            thread = threading.Thread(target=self._watch, args=(path, ready), daemon=True)
            thread.start()
            assert ready.wait(20), f"watch on {path} did not start"
            self._threads.append(thread)

    def _watch(self, path: str, ready: threading.Event) -> None:
        client = self.cluster.client()
        client.timeout = httpx.Timeout(None)
        self._clients.append(client)
        params = {"watch": "1", "labelSelector": f"app.kubernetes.io/instance={self.app}"}
        try:
            with client.stream("GET", path, params=params) as response:
                ready.set()
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    meta = obj["metadata"]
                    with self._lock:
                        self.events.append(
                            (int(meta["resourceVersion"]), event["type"], obj["kind"], meta["name"])
                        )
        except (httpx.HTTPError, RuntimeError, ValueError):
            ready.set()

    def stop(self) -> None:
        self._stop.set()
        for client in self._clients:
            client.close()

    def created(self) -> list[str]:
        with self._lock:
            events = sorted(self.events)
        return [f"{kind}/{name}" for _, type_, kind, name in events if type_ == "ADDED"]

    def deleted(self) -> list[str]:
        with self._lock:
            events = sorted(self.events)
        return [f"{kind}/{name}" for _, type_, kind, name in events if type_ == "DELETED"]


@pytest.fixture
def examples(make_repo: Callable[..., Repo]) -> Repo:
    return make_repo(EXAMPLES, branch="master")


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


@pytest.fixture
def recorder(cluster: Cluster, ns: str) -> Iterator[Callable[[str], Recorder]]:
    made: list[Recorder] = []

    def make(app: str) -> Recorder:
        rec = Recorder(cluster, app)
        rec.start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.stop()


def generated(name: str, prefix: str) -> str:
    """``Job/upgrade-sql-schemaab12x`` → ``Job/upgrade-sql-schema*`` for comparison."""
    kind, _, obj = name.partition("/")
    return f"{kind}/{prefix}*" if obj.startswith(prefix) and obj != prefix else name


def sync_now(cluster: Cluster, ns: str, name: str) -> None:
    with cluster.client() as client:
        response = client.patch(
            f"{harness.APPS.format(ns=ns)}/{name}",
            json={"operation": {"sync": {"prune": True}, "initiatedBy": {"username": "test"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text


def wait_operation(cluster: Cluster, ns: str, name: str, *, count: int) -> dict[str, Any]:
    """Wait for the app's ``count``-th finished sync; return its status."""
    with cluster.client() as client:

        def probe() -> dict[str, Any] | None:
            status = harness.get_app(client, ns, name).get("status") or {}
            op = status.get("operationState") or {}
            done = op.get("phase") in ("Succeeded", "Failed", "Error")
            enough = len(status.get("history") or []) >= count or op.get("phase") != "Succeeded"
            return status if done and enough else None

        return harness.wait_for(f"sync #{count} of {name}", probe, timeout=120)


@pytest.mark.parametrize(
    ("path", "expected", "prefix"),
    [
        (
            "sync-waves",
            [
                "Job/upgrade-sql-schema*",
                "Service/backend",
                "ReplicaSet/backend",
                "Job/maint-page-up",
                "Service/frontend",
                "ReplicaSet/frontend",
                "Job/maint-page-down",
            ],
            "upgrade-sql-schema",
        ),
        (
            "helm-hooks",
            [
                "Job/upgrade-sql-schema*",
                "Job/maint-page-up",
                "ReplicaSet/frontend",
                "Service/frontend",
                "Job/maint-page-down",
            ],
            "upgrade-sql-schema",
        ),
    ],
)
def test_the_cluster_sees_objects_created_in_phase_wave_and_kind_order(
    cluster: Cluster,
    ns: str,
    examples: Repo,
    running: harness.Running,
    recorder: Callable[[str], Recorder],
    path: str,
    expected: list[str],
    prefix: str,
) -> None:
    name = f"{ns}-{path}"
    rec = recorder(name)
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(name, ns, repo=examples.url, path=path, dest=name, automated={}),
        )
        first = harness.wait_synced_healthy(client, ns, name)
    assert first["status"]["operationState"]["phase"] == "Succeeded"
    assert [generated(c, prefix) for c in rec.created()] == expected

    # Hooks run again on the next sync: BeforeHookCreation replaces each one.
    sync_now(cluster, ns, name)
    wait_operation(cluster, ns, name, count=2)
    hooks = [e for e in expected if e.startswith("Job/")]
    created = [generated(c, prefix) for c in rec.created()]
    assert created[len(expected) :] == hooks
    replaced = [generated(d, prefix) for d in rec.deleted()]
    assert sorted(replaced) == sorted(hooks)
    # The plain resources were not recreated.
    assert created.count("Service/frontend") == 1


def test_pre_and_post_sync_hooks_run_around_the_sync_and_are_deleted_when_they_succeed(
    cluster: Cluster,
    ns: str,
    examples: Repo,
    running: harness.Running,
    recorder: Callable[[str], Recorder],
) -> None:
    name = f"{ns}-pps"
    rec = recorder(name)
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(
                name, ns, repo=examples.url, path="pre-post-sync", dest=name, automated={}
            ),
        )
        harness.wait_synced_healthy(client, ns, name)
    status = wait_operation(cluster, ns, name, count=1)
    assert status["operationState"]["phase"] == "Succeeded"
    assert rec.created() == [
        "Job/pre-post-sync-before",
        "Service/pre-post-sync-kustomize-guestbook-ui",
        "Deployment/pre-post-sync-kustomize-guestbook-ui",
        "Job/pre-post-sync-after",
    ]
    harness.wait_for(
        "both hooks deleted (HookSucceeded)",
        lambda: (
            sorted(d for d in rec.deleted() if d.startswith("Job/"))
            == ["Job/pre-post-sync-after", "Job/pre-post-sync-before"]
        ),
    )
    phases = {
        r["name"]: (r["syncPhase"], r.get("hookType"))
        for r in status["operationState"]["syncResult"]["resources"]
    }
    assert phases["pre-post-sync-before"] == ("PreSync", "PreSync")
    assert phases["pre-post-sync-after"] == ("PostSync", "PostSync")
    assert phases["pre-post-sync-kustomize-guestbook-ui"] == ("Sync", None)


FAILING = """
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        workloads.syrup.dev/fault: fail
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: alpine:3
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
---
apiVersion: batch/v1
kind: Job
metadata:
  generateName: cleanup-
  annotations:
    argocd.argoproj.io/hook: SyncFail
    argocd.argoproj.io/hook-delete-policy: HookSucceeded
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: cleanup
          image: alpine:3
"""


def test_a_failing_presync_hook_fails_the_sync_applies_nothing_and_runs_syncfail(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    recorder: Callable[[str], Recorder],
) -> None:
    repo = make_repo()
    repo.write("app/manifests.yaml", FAILING)
    repo.commit("a failing migration")
    name = f"{ns}-fail"
    rec = recorder(name)
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(name, ns, repo=repo.url, path="app", dest=name, automated={}),
        )
    status = wait_operation(cluster, ns, name, count=1)
    op = status["operationState"]
    assert op["phase"] == "Failed"
    assert "migrate" in op["message"]
    harness.wait_for(
        "the SyncFail hook created and deleted after it succeeded",
        lambda: any(d.startswith("Job/cleanup-") for d in rec.deleted()),
    )
    created = rec.created()
    assert created[0] == "Job/migrate"
    assert created[1].startswith("Job/cleanup-") and len(created) == 2
    assert "ConfigMap/settings" not in created
    phases = [(r["name"], r["syncPhase"], r["status"]) for r in op["syncResult"]["resources"]]
    assert phases[0] == ("migrate", "PreSync", "SyncFailed")
    assert phases[1][1] == "SyncFail"


HOOK_WITH_IMAGE = """
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: {image}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  image: {image}
"""


def test_a_changed_hook_job_replaces_the_previous_one_instead_of_failing_the_dry_run(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    # A Job's template is immutable, but a BeforeHookCreation hook is deleted and created
    # anew, so an image bump must not be refused by the pre-sync dry run.
    repo = make_repo()
    repo.write("app/manifests.yaml", HOOK_WITH_IMAGE.format(image="demo/migrate:1.0"))
    repo.commit("migration 1.0")
    name = f"{ns}-bump"
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(name, ns, repo=repo.url, path="app", dest=name, automated={}),
        )
    assert wait_operation(cluster, ns, name, count=1)["operationState"]["phase"] == "Succeeded"

    repo.write("app/manifests.yaml", HOOK_WITH_IMAGE.format(image="demo/migrate:1.1"))
    repo.commit("migration 1.1")
    running.refresh_repo(repo.url)
    status = wait_operation(cluster, ns, name, count=2)
    assert status["operationState"]["phase"] == "Succeeded", status["operationState"]
    with cluster.client() as client:
        job = client.get(f"/apis/batch/v1/namespaces/{name}/jobs/migrate").json()
    images = [c["image"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert images == ["demo/migrate:1.1"]
