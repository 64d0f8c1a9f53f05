"""A real team's GitOps repository applied to the local cluster reaches a healthy state.

``waffle-world/apps`` holds one folder of manifests per application; its Deployments pin pods
to node pools with ``nodeSelector: {phase: dev|prod}``, so the cluster runs two simulated nodes
labelled like the team's pools. Kinds whose CRDs are absent here (Istio's VirtualService and
EnvoyFilter) and API versions no longer served (``autoscaling/v2beta2``) are skipped, as
``kubectl apply`` would fail on them; everything else is applied with the real kubectl.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from tests.cluster.workloads.conftest import wait_for
from tests.conftest import CORPUS, Cluster

APPS = CORPUS / "waffle-world" / "apps"
SERVED = {
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "PersistentVolumeClaim"),
    ("batch/v1", "CronJob"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
}


def corpus_documents() -> tuple[list[dict[str, Any]], set[str]]:
    """Every applicable document of the apps' folders, and the kinds skipped."""
    docs: list[dict[str, Any]] = []
    skipped: set[str] = set()
    for path in sorted(APPS.glob("*/*/**/*.yaml")):
        if path.relative_to(APPS).parts[0] == "templates":
            continue  # the app-of-apps chart's Argo CD Applications
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            if (doc.get("apiVersion"), doc["kind"]) in SERVED:
                docs.append(doc)
            else:
                skipped.add(f"{doc.get('apiVersion')}/{doc['kind']}")
    return docs, skipped


def test_waffle_world_apps_reach_available_or_idle(sim_cluster: Callable[..., Cluster]) -> None:
    docs, skipped = corpus_documents()
    assert skipped <= {
        "networking.istio.io/v1alpha3/VirtualService",
        "networking.istio.io/v1beta1/VirtualService",
        "networking.istio.io/v1alpha3/EnvoyFilter",
        "autoscaling/v2beta2/HorizontalPodAutoscaler",
    }, skipped
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) >= 40

    cluster = sim_cluster(speed=10, nodes=2)
    cluster.kubectl("label", "node", "syrup-node-1", "phase=dev")
    cluster.kubectl("label", "node", "syrup-node-2", "phase=prod")
    namespaces = sorted(
        {d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")}
    )
    existing = {n["metadata"]["name"] for n in cluster.kubectl_json("get", "namespaces")["items"]}
    for ns in namespaces:
        if ns not in existing:
            cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), timeout=300)

    def unsettled() -> list[str]:
        out = []
        for d in cluster.kubectl_json("get", "deployments", "-A")["items"]:
            want = d["spec"].get("replicas", 1)
            st = d.get("status", {})
            ok = (
                st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and st.get("availableReplicas", 0) == want
                and st.get("updatedReplicas", 0) == want
                and st.get("replicas", 0) == want
            )
            if not ok:
                out.append(f"{d['metadata']['namespace']}/{d['metadata']['name']}")
        return out

    wait_for(lambda: not unsettled(), what="every Deployment available or idle", timeout=90)
    live = cluster.kubectl_json("get", "deployments", "-A")["items"]
    assert len(live) == len(deployments)
    idle = [d for d in live if d["spec"]["replicas"] == 0]
    assert idle and all(not d["status"].get("replicas") for d in idle)

    # Pods landed on the pool their nodeSelector names.
    for pod in cluster.kubectl_json("get", "pods", "-A")["items"]:
        wanted = (pod["spec"].get("nodeSelector") or {}).get("phase")
        if wanted:
            assert (
                pod["spec"]["nodeName"] == {"dev": "syrup-node-1", "prod": "syrup-node-2"}[wanted]
            )

    # The controllers had nothing to complain about.
    log = cluster.log()
    assert "reconcile failed" not in log
    assert "[error" not in log
