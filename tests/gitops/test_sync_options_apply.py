"""Acceptance: the sync options that change how a sync writes, against the real local cluster.

Each table has a case where the option changes what the cluster ends up holding and one
where it does not:

* ``ServerSideApply=false`` writes like ``kubectl apply`` (last-applied annotation, three-way
  strategic merge patch), so a field the manifest drops is deleted even after another writer
  changed it; an object too large for the annotation is applied server-side instead.
* ``PruneLast`` moves prunes after every wave; by default an object is pruned in its own wave.
* ``RespectIgnoreDifferences=true`` keeps ignored fields' live values on sync.
* ``managedFieldsManagers`` ignores what a named manager wrote, in the running controller.
* ``Validate=false`` (app-level or per resource) makes the server drop unknown fields; by
  default they fail the sync, as with kubectl.
* Terminating a running operation stops it: the Sync phase never runs, the hook is deleted,
  the operation is Failed ("Operation terminated") and not retried by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import crds
from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo
from tests.gitops.test_sync_hooks import Recorder

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def configmap(name: str, data: dict[str, str], *, annotations: dict[str, str] | None = None) -> str:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})


def deployment(*, image: str, env: dict[str, str], replicas: int = 1) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": image,
                                "env": [{"name": k, "value": v} for k, v in env.items()],
                            }
                        ]
                    },
                },
            },
        }
    )


def patch(
    client: httpx.Client, path: str, body: dict[str, Any], *, manager: str, kind: str = "merge"
) -> None:
    """Another writer changes an object (a non-apply update, as controllers and kubectl do)."""
    response = client.patch(
        path,
        params={"fieldManager": manager},
        content=json.dumps(body).encode(),
        headers={"Content-Type": f"application/{kind}-patch+json"},
    )
    assert response.status_code == 200, response.text


def get(client: httpx.Client, path: str) -> dict[str, Any] | None:
    response = client.get(path)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def synced_at(client: httpx.Client, ns: str, name: str, sha: str) -> dict[str, Any] | None:
    """The app once its last sync ran at ``sha`` and it is Synced again."""
    app = harness.get_app(client, ns, name)
    status = app.get("status") or {}
    op = status.get("operationState") or {}
    done = op.get("phase") == "Succeeded" and (op.get("syncResult") or {}).get("revision") == sha
    return app if done and harness.app_state(app)[0] == "Synced" else None


# -- ServerSideApply=false ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sync_options", "annotated", "dropped_field_kept", "others_kept"),
    [
        # kubectl-style: the last apply had "b", the manifest drops it: it goes, whoever
        # changed it since.
        (["ServerSideApply=false"], True, False, True),
        # Server-side: another manager took "b" over, so the server keeps it for them.
        ([], False, True, True),
        # Replace wins over ServerSideApply=false: the object becomes the manifest.
        (["ServerSideApply=false", "Replace=true"], False, False, False),
    ],
)
def test_client_side_apply_patches_three_ways_and_records_the_last_applied_manifest(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    sync_options: list[str],
    annotated: bool,
    dropped_field_kept: bool,
    others_kept: bool,
) -> None:
    repo = make_repo()
    repo.write("app/cm.json", configmap("settings", {"a": "1", "b": "2"}))
    repo.write("app/deploy.json", deployment(image="nginx:1.27", env={"OLD": "1", "KEEP": "1"}))
    repo.commit("first")
    name = f"{ns}-csa"
    cm_path = f"/api/v1/namespaces/{name}/configmaps/settings"
    deploy_path = f"/apis/apps/v1/namespaces/{name}/deployments/web"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={},
        options=["CreateNamespace=true", *sync_options],
    )
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_synced_healthy(client, ns, name)
        cm = get(client, cm_path)
        assert cm is not None
        annotation = (cm["metadata"].get("annotations") or {}).get(LAST_APPLIED)
        if annotated:
            assert annotation is not None
            assert json.loads(annotation)["data"] == {"a": "1", "b": "2"}
            assert ": " not in annotation  # compact JSON, as kubectl writes it
        else:
            assert annotation is None

        # Other writers: one changes "b" and adds "c"; one adds an env var to the container.
        patch(client, cm_path, {"data": {"b": "theirs", "c": "3"}}, manager="other")
        extra = {"spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "EXTRA", "value": "x"}]}
        ]}}}}  # fmt: skip
        patch(client, deploy_path, extra, manager="other", kind="strategic-merge")

        # Git changes "a", drops "b", changes the image and drops one env var.
        repo.write("app/cm.json", configmap("settings", {"a": "10"}))
        repo.write("app/deploy.json", deployment(image="nginx:1.28", env={"KEEP": "1"}))
        sha = repo.commit("second")
        running.refresh_repo(repo.url)
        harness.wait_for(f"{name} synced at {sha}", lambda: synced_at(client, ns, name, sha))

        cm = get(client, cm_path)
        assert cm is not None
        expected = {
            "a": "10",
            **({"b": "theirs"} if dropped_field_kept else {}),
            **({"c": "3"} if others_kept else {}),
        }
        assert cm["data"] == expected
        deployed = get(client, deploy_path)
        assert deployed is not None
        container = deployed["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "nginx:1.28"
        assert {e["name"] for e in container["env"]} == {"KEEP", *(["EXTRA"] * others_kept)}

        # Nothing left to do: the comparison agrees with what was written, and stays so.
        time.sleep(2)
        assert harness.app_state(harness.get_app(client, ns, name))[0] == "Synced"


def widget_crd(group: str) -> str:
    return json.dumps(
        crds.crd(
            group,
            "Widget",
            schema={
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            },
        )
    )


def widget(group: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    )


def test_client_side_apply_sends_custom_resources_a_json_merge_patch(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    group = f"{ns}.example.com"
    repo = make_repo()
    repo.write("app/crd.json", widget_crd(group))
    repo.write("app/widget.json", widget(group, {"size": 1, "color": "red", "items": ["a", "b"]}))
    repo.commit("first")
    name = f"{ns}-cr"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={},
        options=["CreateNamespace=true", "ServerSideApply=false"],
    )
    path = f"/apis/{group}/v1/namespaces/{name}/widgets/w"
    try:
        with cluster.client() as client:
            harness.apply_app(client, app)
            harness.wait_synced_healthy(client, ns, name)
            patch(client, path, {"spec": {"owner": "them"}}, manager="other")
            repo.write("app/widget.json", widget(group, {"size": 2, "items": ["a"]}))
            sha = repo.commit("second")
            running.refresh_repo(repo.url)
            harness.wait_for(f"{name} synced at {sha}", lambda: synced_at(client, ns, name, sha))
            found = get(client, path)
        assert found is not None
        # "color" was applied before and is gone; the list is replaced; "owner" stays.
        assert found["spec"] == {"size": 2, "items": ["a"], "owner": "them"}
        assert LAST_APPLIED in found["metadata"]["annotations"]
    finally:
        cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


@pytest.mark.parametrize(
    ("sync_options", "size", "annotated", "server_side_note"),
    [
        (["ServerSideApply=false"], 10, True, False),
        # The last-applied annotation would pass 262144 bytes: this object goes server-side.
        (["ServerSideApply=false"], 270_000, False, True),
        ([], 270_000, False, False),
    ],
)
def test_an_object_too_large_for_the_last_applied_annotation_is_applied_server_side(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    sync_options: list[str],
    size: int,
    annotated: bool,
    server_side_note: bool,
) -> None:
    repo = make_repo()
    repo.write("app/cm.json", configmap("big", {"blob": "x" * size}))
    repo.commit("big")
    name = f"{ns}-big"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={},
        options=["CreateNamespace=true", *sync_options],
    )
    with cluster.client() as client:
        harness.apply_app(client, app)
        status = harness.wait_synced_healthy(client, ns, name)["status"]
        cm = get(client, f"/api/v1/namespaces/{name}/configmaps/big")
    assert cm is not None and len(cm["data"]["blob"]) == size
    assert (LAST_APPLIED in (cm["metadata"].get("annotations") or {})) is annotated
    message = status["operationState"]["syncResult"]["resources"][0]["message"]
    assert ("applied server-side" in message) is server_side_note, message


def test_the_cluster_rejects_annotations_over_262144_bytes(cluster: Cluster, ns: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        # 4 bytes of key and 262141 of value: one byte over.
        "metadata": {"name": "noted", "annotations": {"note": "x" * 262_141}},
    }
    with cluster.client() as client:
        response = client.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
        assert response.status_code == 422, response.text[:300]
        causes = response.json()["details"]["causes"]
        assert causes[0]["field"] == "metadata.annotations"
        assert "Too long: must have at most 262144 bytes" in causes[0]["message"]
        body["metadata"]["annotations"] = {"note": "x" * 1000}
        assert client.post(f"/api/v1/namespaces/{ns}/configmaps", json=body).status_code == 201


# -- PruneLast ------------------------------------------------------------------------------


def wave(n: int) -> dict[str, str]:
    return {"argocd.argoproj.io/sync-wave": str(n)}


@pytest.mark.parametrize(
    ("sync_options", "early_annotations", "early_before_new", "late_before_new"),
    [
        # Argo CD's default: each object is pruned in its own wave.
        ([], {}, True, False),
        (["PruneLast=true"], {}, False, False),
        # On one resource only: that one waits for the end, the other keeps its wave.
        ([], {"argocd.argoproj.io/sync-options": "PruneLast=true"}, False, False),
    ],
)
def test_prunes_run_in_their_wave_unless_prune_last(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    sync_options: list[str],
    early_annotations: dict[str, str],
    early_before_new: bool,
    late_before_new: bool,
) -> None:
    repo = make_repo()
    repo.write("app/keep.json", configmap("keep", {"k": "1"}, annotations=wave(0)))
    repo.write(
        "app/early.json",
        configmap("early", {"k": "1"}, annotations={**wave(-1), **early_annotations}),
    )
    repo.write("app/late.json", configmap("late", {"k": "1"}, annotations=wave(2)))
    repo.commit("first")
    name = f"{ns}-prune"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={"prune": True},
        options=["CreateNamespace=true", *sync_options],
    )
    rec = Recorder(cluster, name)
    rec.start()
    try:
        with cluster.client() as client:
            harness.apply_app(client, app)
            harness.wait_synced_healthy(client, ns, name)
            (repo.work / "app" / "early.json").unlink()
            (repo.work / "app" / "late.json").unlink()
            repo.write("app/new.json", configmap("new", {"k": "1"}, annotations=wave(1)))
            sha = repo.commit("second")
            running.refresh_repo(repo.url)
            harness.wait_for(f"{name} synced at {sha}", lambda: synced_at(client, ns, name, sha))
        harness.wait_for("both deletions seen", lambda: len(rec.deleted()) == 2)
        with rec._lock:
            events = sorted(rec.events)
        seen = {(type_, f"{kind}/{obj}"): rv for rv, type_, kind, obj in events}
        new = seen[("ADDED", "ConfigMap/new")]
        assert (seen[("DELETED", "ConfigMap/early")] < new) is early_before_new, events
        assert (seen[("DELETED", "ConfigMap/late")] < new) is late_before_new, events
    finally:
        rec.stop()


# -- RespectIgnoreDifferences and managedFieldsManagers ------------------------------------


def replicas(client: httpx.Client, namespace: str) -> int:
    found = get(client, f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    assert found is not None
    return int(found["spec"]["replicas"])


RESPECT = ["RespectIgnoreDifferences=true"]


@pytest.mark.parametrize(
    ("sync_options", "rule", "kept"),
    [
        (RESPECT, {"jsonPointers": ["/spec/replicas"]}, True),
        (RESPECT, {"jqPathExpressions": [".spec.replicas"]}, True),
        (RESPECT, {"managedFieldsManagers": ["hpa-sim"]}, True),
        # The rule covers another field: replicas goes back to Git's value.
        (RESPECT, {"jsonPointers": ["/spec/paused"]}, False),
        ([], {"jsonPointers": ["/spec/replicas"]}, False),
    ],
)
def test_respect_ignore_differences_keeps_the_live_value_of_ignored_fields(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    sync_options: list[str],
    rule: dict[str, list[str]],
    kept: bool,
) -> None:
    repo = make_repo()
    repo.write("app/deploy.json", deployment(image="nginx:1.27", env={}))
    repo.commit("first")
    name = f"{ns}-respect"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={},
        options=["CreateNamespace=true", *sync_options],
    )
    app["spec"]["ignoreDifferences"] = [{"group": "apps", "kind": "Deployment", **rule}]
    path = f"/apis/apps/v1/namespaces/{name}/deployments/web"
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_synced_healthy(client, ns, name)
        assert replicas(client, name) == 1
        # An autoscaler-like writer scales the Deployment; Git changes something else.
        patch(client, path, {"spec": {"replicas": 3}}, manager="hpa-sim")
        repo.write("app/deploy.json", deployment(image="nginx:1.28", env={}))
        sha = repo.commit("image")
        running.refresh_repo(repo.url)
        harness.wait_for(f"{name} synced at {sha}", lambda: synced_at(client, ns, name, sha))
        found = get(client, path)
        assert found is not None
        assert found["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"
        assert found["spec"]["replicas"] == (3 if kept else 1)


@pytest.mark.parametrize(
    ("managers", "healed"),
    [(["hpa-sim"], False), (["someone-else"], True)],
)
def test_fields_of_an_ignored_manager_do_not_make_the_app_out_of_sync(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    managers: list[str],
    healed: bool,
) -> None:
    repo = make_repo()
    repo.write("app/deploy.json", deployment(image="nginx:1.27", env={}))
    repo.commit("first")
    name = f"{ns}-managers"
    app = harness.application(
        name, ns, repo=repo.url, path="app", dest=name, automated={"selfHeal": True}
    )
    app["spec"]["ignoreDifferences"] = [
        {"group": "apps", "kind": "Deployment", "managedFieldsManagers": managers}
    ]
    path = f"/apis/apps/v1/namespaces/{name}/deployments/web"
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_synced_healthy(client, ns, name)
        patch(client, path, {"spec": {"replicas": 4}}, manager="hpa-sim")
        if healed:
            harness.wait_for("selfHeal to restore 1 replica", lambda: replicas(client, name) == 1)
        else:
            time.sleep(4)
            assert replicas(client, name) == 4
            assert harness.app_state(harness.get_app(client, ns, name))[0] == "Synced"


@pytest.mark.parametrize(("managers", "status"), [(["hpa-sim"], "Synced"), (["x"], "OutOfSync")])
def test_a_manager_rule_added_later_sees_what_that_manager_wrote_before(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    managers: list[str],
    status: str,
) -> None:
    repo = make_repo()
    repo.write("app/deploy.json", deployment(image="nginx:1.27", env={}))
    repo.commit("first")
    name = f"{ns}-later"
    # Synced once on request, so no automated sync answers the drift.
    app = harness.application(name, ns, repo=repo.url, path="app", dest=name)
    app["operation"] = {"sync": {}, "initiatedBy": {"username": "test"}}
    path = f"/apis/apps/v1/namespaces/{name}/deployments/web"
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_synced_healthy(client, ns, name)
        # The cache holds this version without managedFields (no app needed them yet).
        patch(client, path, {"spec": {"replicas": 4}}, manager="hpa-sim")
        harness.wait_for(
            "OutOfSync",
            lambda: harness.app_state(harness.get_app(client, ns, name))[0] == "OutOfSync",
        )
        del app["operation"]
        app["spec"]["ignoreDifferences"] = [
            {"group": "apps", "kind": "Deployment", "managedFieldsManagers": managers}
        ]
        harness.apply_app(client, app)
        time.sleep(3)
        assert harness.app_state(harness.get_app(client, ns, name))[0] == status
        assert replicas(client, name) == 4


# -- terminating an operation ---------------------------------------------------------------


def hook_job(run_seconds: int) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "migrate",
                "annotations": {"argocd.argoproj.io/hook": "PreSync"},
            },
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {"workloads.syrup.dev/run-seconds": str(run_seconds)}
                    },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "migrate", "image": "busybox:1.36"}],
                    },
                }
            },
        }
    )


def operation_phase(client: httpx.Client, ns: str, name: str) -> str:
    status = harness.get_app(client, ns, name).get("status") or {}
    return str((status.get("operationState") or {}).get("phase") or "")


@pytest.mark.parametrize(
    ("automated", "run_seconds", "terminate", "phase", "synced"),
    [
        # An automated sync, marked Running, then Terminating (the API's terminate).
        (True, 3600, {"status": {"operationState": {"phase": "Terminating"}}}, "Failed", False),
        # A requested sync whose operation is withdrawn.
        (False, 3600, {"operation": None}, "Failed", False),
        (True, 1, None, "Succeeded", True),
    ],
)
def test_terminating_a_running_sync_stops_it_before_the_sync_phase(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    automated: bool,
    run_seconds: int,
    terminate: dict[str, Any] | None,
    phase: str,
    synced: bool,
) -> None:
    repo = make_repo()
    repo.write("app/hook.json", hook_job(run_seconds))
    repo.write("app/cm.json", configmap("settings", {"a": "1"}))
    repo.commit("first")
    name = f"{ns}-term"
    app = harness.application(
        name, ns, repo=repo.url, path="app", dest=name, automated={} if automated else None
    )
    if not automated:
        app["operation"] = {"sync": {}, "initiatedBy": {"username": "test"}}
    app_path = f"{harness.APPS.format(ns=ns)}/{name}"
    cm_path = f"/api/v1/namespaces/{name}/configmaps/settings"
    job_path = f"/apis/batch/v1/namespaces/{name}/jobs/migrate"
    with cluster.client() as client:
        harness.apply_app(client, app)
        harness.wait_for("the hook Job", lambda: get(client, job_path))
        if terminate is not None:
            harness.wait_for("Running", lambda: operation_phase(client, ns, name) == "Running")
            # What the API's terminate writes (syrup.api.service).
            patch(client, app_path, terminate, manager="api")
        harness.wait_for(phase, lambda: operation_phase(client, ns, name) == phase, timeout=90)
        op = harness.get_app(client, ns, name)["status"]["operationState"]
        if terminate is not None:
            assert op["message"] == "Operation terminated"
            harness.wait_for("the hook deleted", lambda: get(client, job_path) is None)
            # Not retried by itself: the hook is not created again, the phase stays.
            time.sleep(4)
            assert get(client, job_path) is None
            assert operation_phase(client, ns, name) == "Failed"
        assert (get(client, cm_path) is not None) is synced


# -- Validate=false -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sync_options", "annotation", "accepted"),
    [
        # The server refuses an unknown field (kubectl's and Argo CD's default is to validate).
        ([], None, False),
        (["Validate=false"], None, True),
        ([], "Validate=false", True),
    ],
    ids=["validated", "app-level Validate=false", "per-resource Validate=false"],
)
def test_validate_false_lets_the_server_drop_unknown_fields_instead_of_refusing_them(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    sync_options: list[str],
    annotation: str | None,
    accepted: bool,
) -> None:
    repo = make_repo()
    annotations = {"argocd.argoproj.io/sync-options": annotation} if annotation else None
    manifest = json.loads(configmap("loose", {"a": "1"}, annotations=annotations))
    manifest["bogus"] = "not a ConfigMap field"
    repo.write("app/cm.json", json.dumps(manifest))
    repo.commit("first")
    name = f"{ns}-validate"
    app = harness.application(
        name,
        ns,
        repo=repo.url,
        path="app",
        dest=name,
        automated={},
        options=["CreateNamespace=true", *sync_options],
    )
    cm_path = f"/api/v1/namespaces/{name}/configmaps/loose"

    def finished() -> dict[str, Any] | None:
        op = (harness.get_app(client, ns, name).get("status") or {}).get("operationState") or {}
        return op if op.get("phase") in ("Succeeded", "Failed") else None

    with cluster.client() as client:
        harness.apply_app(client, app)
        op = harness.wait_for(f"{name} sync finished", finished)
        if accepted:
            harness.wait_synced_healthy(client, ns, name)
            cm = get(client, cm_path)
            assert cm is not None and cm["data"] == {"a": "1"} and "bogus" not in cm
        else:
            assert op["phase"] == "Failed"
            assert "bogus" in op["message"], op["message"]
            assert get(client, cm_path) is None
