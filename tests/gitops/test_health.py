"""Health per kind follows Argo CD's checks; an app's health is its worst resource's."""

from __future__ import annotations

from typing import Any

import pytest

from syrup.gitops import health

H, P, D, S, M = (
    health.Status.HEALTHY,
    health.Status.PROGRESSING,
    health.Status.DEGRADED,
    health.Status.SUSPENDED,
    health.Status.MISSING,
)


def deploy(spec: dict[str, Any], status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "generation": generation},
        "spec": spec,
        "status": {"observedGeneration": 1, **status},
    }


def obj(api: str, kind: str, spec: Any = None, status: Any = None) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": spec or {},
        "status": status or {},
    }


READY = {"updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}
COND = "conditions"

CASES = [
    ("deployment rolled out", deploy({"replicas": 2}, READY), H),
    ("deployment paused", deploy({"replicas": 2, "paused": True}, READY), S),
    ("deployment not yet observed", deploy({"replicas": 2}, READY, generation=2), P),
    ("deployment updating", deploy({"replicas": 2}, {**READY, "updatedReplicas": 1}), P),
    ("deployment old replicas left", deploy({"replicas": 2}, {**READY, "replicas": 3}), P),
    ("deployment unavailable", deploy({"replicas": 2}, {**READY, "availableReplicas": 1}), P),
    (
        "deployment past its deadline",
        deploy(
            {"replicas": 2},
            {
                COND: [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ]
            },
        ),
        D,
    ),
    ("statefulset ready", obj("apps/v1", "StatefulSet", {"replicas": 1}, {"readyReplicas": 1}), H),
    (
        "statefulset waiting",
        obj("apps/v1", "StatefulSet", {"replicas": 2}, {"readyReplicas": 1}),
        P,
    ),
    (
        "daemonset rolled out",
        obj(
            "apps/v1",
            "DaemonSet",
            {},
            {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2},
        ),
        H,
    ),
    (
        "replicaset short",
        obj("apps/v1", "ReplicaSet", {"replicas": 2}, {"availableReplicas": 1}),
        P,
    ),
    (
        "pod running ready",
        obj("v1", "Pod", {}, {"phase": "Running", COND: [{"type": "Ready", "status": "True"}]}),
        H,
    ),
    (
        "pod crash looping",
        obj(
            "v1",
            "Pod",
            {},
            {
                "phase": "Running",
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
            },
        ),
        D,
    ),
    (
        "pod image error",
        obj(
            "v1",
            "Pod",
            {},
            {
                "phase": "Pending",
                "containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull"}}}],
            },
        ),
        D,
    ),
    ("pod pending", obj("v1", "Pod", {}, {"phase": "Pending"}), P),
    (
        "job complete",
        obj("batch/v1", "Job", {}, {COND: [{"type": "Complete", "status": "True"}]}),
        H,
    ),
    ("job failed", obj("batch/v1", "Job", {}, {COND: [{"type": "Failed", "status": "True"}]}), D),
    ("job running", obj("batch/v1", "Job", {}, {"active": 1}), P),
    ("pvc bound", obj("v1", "PersistentVolumeClaim", {}, {"phase": "Bound"}), H),
    ("pvc pending", obj("v1", "PersistentVolumeClaim", {}, {"phase": "Pending"}), P),
    ("cluster ip service", obj("v1", "Service", {"type": "ClusterIP"}), H),
    ("load balancer waiting", obj("v1", "Service", {"type": "LoadBalancer"}), P),
    (
        "load balancer with address",
        obj(
            "v1",
            "Service",
            {"type": "LoadBalancer"},
            {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}},
        ),
        H,
    ),
    ("ingress without address", obj("networking.k8s.io/v1", "Ingress"), P),
    ("hpa", obj("autoscaling/v2", "HorizontalPodAutoscaler"), H),
    (
        "apiservice unavailable",
        obj(
            "apiregistration.k8s.io/v1",
            "APIService",
            {},
            {COND: [{"type": "Available", "status": "False"}]},
        ),
        D,
    ),
    ("namespace terminating", obj("v1", "Namespace", {}, {"phase": "Terminating"}), P),
    (
        "crd established",
        obj(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            {},
            {COND: [{"type": "Established", "status": "True"}]},
        ),
        H,
    ),
    ("configmap", obj("v1", "ConfigMap"), H),
    (
        "child app synced and healthy",
        obj(
            "argoproj.io/v1alpha1",
            "Application",
            {},
            {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
        ),
        H,
    ),
    (
        "child app healthy but out of sync",
        obj(
            "argoproj.io/v1alpha1",
            "Application",
            {},
            {"sync": {"status": "OutOfSync"}, "health": {"status": "Healthy"}},
        ),
        P,
    ),
    ("child app never reconciled", obj("argoproj.io/v1alpha1", "Application"), P),
]


@pytest.mark.parametrize(("case", "live", "expected"), CASES, ids=[c[0] for c in CASES])
def test_health_of_each_kind(case: str, live: dict[str, Any], expected: health.Status) -> None:
    assert health.assess(live).status is expected


def test_a_missing_object_is_missing() -> None:
    assert health.assess(None).status is M


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([H, H], H),
        ([H, S], S),
        ([S, P, H], P),
        ([P, M], M),
        ([M, D, H], D),
        ([D, health.Status.UNKNOWN], health.Status.UNKNOWN),
        ([], H),
    ],
)
def test_app_health_is_the_worst_resource_health(
    statuses: list[health.Status], expected: health.Status
) -> None:
    assert health.worst(statuses) is expected
