"""Deployments on the local cluster, driven by the real kubectl as a user would.

Covers the issue's acceptance: the argocd-example-apps guestbook rolls out, updates to a new
tag (old ReplicaSet scaled to zero, revision 2), rolls back, scales to five ready pods and is
deleted with its ReplicaSets and pods; an image missing from a configured registry ends in
ImagePullBackOff and ProgressDeadlineExceeded; a restart mid-rollout finishes it without
duplicate pods.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.cluster.workloads.conftest import Registry, wait_for
from tests.conftest import CORPUS, Cluster

GUESTBOOK = CORPUS / "argocd-example-apps" / "guestbook"
REVISION = "deployment.kubernetes.io/revision"


def replicasets(cluster: Cluster, ns: str) -> dict[str, Any]:
    items = cluster.kubectl_json("-n", ns, "get", "replicasets")["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def pods(cluster: Cluster, ns: str, selector: str = "app=guestbook-ui") -> list[Any]:
    return list(cluster.kubectl_json("-n", ns, "get", "pods", "-l", selector)["items"])


def test_guestbook_rolls_out_updates_rolls_back_scales_and_deletes(
    cluster: Cluster, ns: str
) -> None:
    cluster.kubectl("-n", ns, "apply", "-f", str(GUESTBOOK))
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/guestbook-ui", "--timeout=60s")
    first = replicasets(cluster, ns)
    assert len(first) == 1
    (first_name,) = first
    assert first[first_name]["metadata"]["annotations"][REVISION] == "1"

    # A new tag rolls out: a second ReplicaSet at revision 2, the old one scaled to zero.
    cluster.kubectl(
        "-n",
        ns,
        "set",
        "image",
        "deployment/guestbook-ui",
        "guestbook-ui=gcr.io/google-samples/gb-frontend:v6",
    )
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/guestbook-ui", "--timeout=60s")
    second = replicasets(cluster, ns)
    assert len(second) == 2
    assert second[first_name]["spec"]["replicas"] == 0
    (new_name,) = set(second) - {first_name}
    assert second[new_name]["metadata"]["annotations"][REVISION] == "2"
    assert second[new_name]["status"]["readyReplicas"] == 1
    deploy = cluster.kubectl_json("-n", ns, "get", "deployment", "guestbook-ui")
    assert deploy["metadata"]["annotations"][REVISION] == "2"
    assert {c["type"]: c["reason"] for c in deploy["status"]["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }

    # Undo goes back to the first template, reusing its ReplicaSet as revision 3.
    cluster.kubectl("-n", ns, "rollout", "undo", "deployment/guestbook-ui")
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/guestbook-ui", "--timeout=60s")
    third = replicasets(cluster, ns)
    assert set(third) == {first_name, new_name}
    assert third[first_name]["spec"]["replicas"] == 1
    assert third[first_name]["metadata"]["annotations"][REVISION] == "3"
    assert third[new_name]["spec"]["replicas"] == 0
    image = cluster.kubectl(
        "-n",
        ns,
        "get",
        "deployment",
        "guestbook-ui",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ).stdout
    assert image == "gcr.io/google-samples/gb-frontend:v5"

    # Scaling to five gives five ready pods.
    cluster.kubectl("-n", ns, "scale", "deployment/guestbook-ui", "--replicas=5")
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/guestbook-ui", "--timeout=60s")
    running = wait_for(
        lambda: [p for p in pods(cluster, ns) if p["status"].get("phase") == "Running"],
        what="running pods",
    )
    assert len(running) == 5
    assert all(
        c["status"] == "True"
        for p in running
        for c in p["status"]["conditions"]
        if c["type"] == "Ready"
    )
    assert len({p["status"]["podIP"] for p in running}) == 5
    endpoints = cluster.kubectl_json("-n", ns, "get", "endpoints", "guestbook-ui")
    assert len(endpoints["subsets"][0]["addresses"]) == 5

    # Deleting the Deployment removes its ReplicaSets and pods (background cascade).
    cluster.kubectl("-n", ns, "delete", "deployment", "guestbook-ui")
    wait_for(lambda: not replicasets(cluster, ns) and not pods(cluster, ns), what="cascade")


def test_describe_and_events_tell_the_pod_story(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("-n", ns, "create", "deployment", "web", "--image=nginx:1.27")
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    described = cluster.kubectl("-n", ns, "describe", "pod", "-l", "app=web").stdout
    for reason in ("Scheduled", "Pulled", "Created", "Started"):
        assert reason in described, described
    assert "Successfully assigned" in described
    events = cluster.kubectl("-n", ns, "get", "events").stdout
    assert "ScalingReplicaSet" in events
    assert "SuccessfulCreate" in events


def test_rolling_update_never_exceeds_surge_or_unavailability(
    sim_cluster: Callable[..., Cluster], tmp_path: Any
) -> None:
    cluster = sim_cluster(speed=20)
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")

    # Watch the ReplicaSets' spec.replicas over the whole update.
    watcher = RsWatch(cluster, existing=1)
    cluster.kubectl("set", "image", "deployment/web", "web=nginx:1.27")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rows = watcher.stop()
    totals: dict[str, int] = {}
    peak = 0
    for name, replicas in rows:
        totals[name] = replicas
        peak = max(peak, sum(totals.values()))
    assert peak == 5, rows
    assert len(totals) == 2
    ready = cluster.kubectl_json("get", "deployment", "web")["status"]
    assert ready["updatedReplicas"] == 4 and ready["availableReplicas"] == 4


class RsWatch:
    """``kubectl get rs --watch`` printing name and spec.replicas, started before a change."""

    def __init__(self, cluster: Cluster, existing: int) -> None:
        import subprocess

        from tests.conftest import KUBECTL

        self.proc = subprocess.Popen(
            [
                KUBECTL,
                "get",
                "rs",
                "--watch",
                "--output-watch-events=false",
                "--no-headers",
                "-o",
                "custom-columns=N:.metadata.name,R:.spec.replicas",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=cluster.env(),
        )
        assert self.proc.stdout is not None
        # The initial list arrives first: once it is in, the watch is open.
        self.lines = [self.proc.stdout.readline() for _ in range(existing)]

    def stop(self) -> list[tuple[str, int]]:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        rows = []
        for line in [*self.lines, *out.splitlines()]:
            if line.strip():
                name, replicas = line.split()
                rows.append((name, int(replicas)))
        return rows


def test_missing_image_backs_off_and_the_rollout_exceeds_its_deadline(
    sim_cluster: Callable[..., Cluster], registry: Registry
) -> None:
    registry.push("team/app", "v1")
    cluster = sim_cluster(speed=20, registries={registry.host: registry.url})
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"containers": [{"name": "app", "image": f"{registry.host}/team/app:v1"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    cluster.kubectl("rollout", "status", "deployment/app", "--timeout=60s")

    # Roll to a tag the registry does not have, with a one-minute deadline (3 s at speed 20).
    patch = {
        "spec": {
            "progressDeadlineSeconds": 60,
            "template": {
                "spec": {"containers": [{"name": "app", "image": f"{registry.host}/team/app:v2"}]}
            },
        }
    }
    cluster.kubectl("patch", "deployment", "app", "-p", json.dumps(patch))

    def waiting_reason() -> str | None:
        for pod in cluster.kubectl_json("get", "pods", "-l", "app=app")["items"]:
            for status in pod.get("status", {}).get("containerStatuses") or []:
                waiting = status.get("state", {}).get("waiting") or {}
                if waiting.get("reason") == "ImagePullBackOff":
                    return str(waiting.get("message"))
        return None

    message = wait_for(waiting_reason, what="ImagePullBackOff")
    assert f"{registry.host}/team/app:v2" in message
    assert "manifest unknown" in message.lower() or "not found" in message.lower()
    events = cluster.kubectl("get", "events").stdout
    assert "ErrImagePull" in events

    status = cluster.kubectl("rollout", "status", "deployment/app", "--timeout=60s", check=False)
    assert status.returncode != 0
    assert "exceeded its progress deadline" in status.stderr
    progressing = [
        c
        for c in cluster.kubectl_json("get", "deployment", "app")["status"]["conditions"]
        if c["type"] == "Progressing"
    ]
    assert progressing[0]["status"] == "False"
    assert progressing[0]["reason"] == "ProgressDeadlineExceeded"
    # The old pod keeps serving: the rollout is stuck, not broken.
    assert cluster.kubectl_json("get", "deployment", "app")["status"]["availableReplicas"] == 1


def test_a_restart_mid_rollout_finishes_without_duplicate_pods(
    sim_cluster: Callable[..., Cluster], tmp_path: Any
) -> None:
    import signal

    data = tmp_path / "data"
    cluster = sim_cluster(data, speed=3)
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.26", "--replicas=6")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.27")
    wait_for(
        lambda: len(replicasets(cluster, "default")) == 2,
        what="the rollout to start",
    )
    cluster.stop(signal.SIGKILL)

    again = sim_cluster(data, speed=3)
    again.kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    rs = replicasets(again, "default")
    assert sorted(r["spec"]["replicas"] for r in rs.values()) == [0, 6]
    (new_rs,) = [name for name, r in rs.items() if r["spec"]["replicas"] == 6]
    template_hash = rs[new_rs]["metadata"]["labels"]["pod-template-hash"]

    def pod_hashes() -> list[str]:
        items = again.kubectl_json("get", "pods", "-l", "app=web")["items"]
        return [p["metadata"]["labels"]["pod-template-hash"] for p in items]

    wait_for(lambda: len(pod_hashes()) == 6, what="exactly six pods")
    assert pod_hashes() == [template_hash] * 6


def web(replicas: int, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]},
                },
                **spec,
            },
        }
    )


def test_recreate_removes_every_old_pod_before_the_new_set_scales_up(
    sim_cluster: Callable[..., Cluster],
) -> None:
    cluster = sim_cluster(speed=20)
    cluster.kubectl("apply", "-f", "-", input=web(3, strategy={"type": "Recreate"}))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    (old,) = replicasets(cluster, "default")
    watcher = RsWatch(cluster, existing=1)
    cluster.kubectl("set", "image", "deployment/web", "web=nginx:1.27")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rows = watcher.stop()
    assert rows[0] == (old, 3)
    seen: dict[str, int] = {}
    for name, count in rows:
        seen[name] = count
        if name != old and count > 0:
            assert seen.get(old) == 0, rows
    assert seen[old] == 0 and len(seen) == 2


def test_a_paused_deployment_waits_and_resumes(sim_cluster: Callable[..., Cluster]) -> None:
    cluster = sim_cluster(speed=20)
    cluster.kubectl("apply", "-f", "-", input=web(2))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    cluster.kubectl("rollout", "pause", "deployment/web")
    cluster.kubectl("set", "image", "deployment/web", "web=nginx:1.27")

    def paused_reason() -> Any:
        conditions = cluster.kubectl_json("get", "deployment", "web")["status"]["conditions"]
        return next(
            (
                c
                for c in conditions
                if c["type"] == "Progressing" and c["reason"] == "DeploymentPaused"
            ),
            None,
        )

    wait_for(paused_reason, what="Progressing reason DeploymentPaused")
    assert len(replicasets(cluster, "default")) == 1
    cluster.kubectl("rollout", "resume", "deployment/web")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert len(replicasets(cluster, "default")) == 2


def test_old_replica_sets_beyond_the_history_limit_are_deleted(
    sim_cluster: Callable[..., Cluster],
) -> None:
    cluster = sim_cluster(speed=20)
    cluster.kubectl("apply", "-f", "-", input=web(1, revisionHistoryLimit=1))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    for tag in ("1.27", "1.28", "1.29"):
        cluster.kubectl("set", "image", "deployment/web", f"web=nginx:{tag}")
        cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    wait_for(lambda: len(replicasets(cluster, "default")) == 2, what="two ReplicaSets left")
    revisions = sorted(
        int(rs["metadata"]["annotations"][REVISION])
        for rs in replicasets(cluster, "default").values()
    )
    assert revisions == [3, 4]
    history = cluster.kubectl("rollout", "history", "deployment/web").stdout
    assert "3" in history and "4" in history and "\n1 " not in history


def test_restarting_with_fewer_nodes_moves_their_pods_to_the_remaining_ones(
    sim_cluster: Callable[..., Cluster], tmp_path: Any
) -> None:
    data = tmp_path / "data"
    cluster = sim_cluster(data, speed=20, nodes=2)
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=4")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    nodes = {p["spec"]["nodeName"] for p in pods(cluster, "default", "app=web")}
    assert nodes == {"syrup-node-1", "syrup-node-2"}
    cluster.stop()

    again = sim_cluster(data, speed=20, nodes=1)
    assert [n["metadata"]["name"] for n in again.kubectl_json("get", "nodes")["items"]] == [
        "syrup-node-1"
    ]
    wait_for(
        lambda: (
            (found := pods(again, "default", "app=web"))
            and len(found) == 4
            and {p["spec"].get("nodeName") for p in found} == {"syrup-node-1"}
        ),
        what="all four pods on the remaining node",
    )
    again.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
