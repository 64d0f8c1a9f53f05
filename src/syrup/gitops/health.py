"""Health of live objects, per kind, following Argo CD's built-in checks (see REFERENCE.md).

Each check reads only the object's ``spec``/``status``; kinds without a check are Healthy once
they exist. An app's health is the worst of its resources, ordered Healthy < Suspended <
Progressing < Missing < Degraded < Unknown. A child ``Application`` (app-of-apps) is Healthy
only when it is both Synced and Healthy, so a parent waits for its children.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def severity(self) -> int:
        return _ORDER.index(self)


_ORDER = [
    Status.HEALTHY,
    Status.SUSPENDED,
    Status.PROGRESSING,
    Status.MISSING,
    Status.DEGRADED,
    Status.UNKNOWN,
]


@dataclass(frozen=True)
class Health:
    status: Status
    message: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"status": str(self.status)}
        if self.message:
            out["message"] = self.message
        return out


HEALTHY = Health(Status.HEALTHY)
MISSING = Health(Status.MISSING)


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity, default=Status.HEALTHY)


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, Mapping) else {}


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conds = _status(obj).get("conditions") or []
    return {str(c.get("type")): c for c in conds if isinstance(c, Mapping)}


def _observed(obj: Mapping[str, Any]) -> bool:
    gen = (obj.get("metadata") or {}).get("generation")
    seen = _status(obj).get("observedGeneration")
    return gen is None or seen is None or int(seen) >= int(gen)


def _deployment(obj: Mapping[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if spec.get("paused"):
        return Health(Status.SUSPENDED, "Deployment is paused")
    cond = _conditions(obj).get("Progressing")
    if cond and cond.get("reason") == "ProgressDeadlineExceeded":
        name = (obj.get("metadata") or {}).get("name")
        return Health(Status.DEGRADED, f'Deployment "{name}" exceeded its progress deadline')
    if not _observed(obj):
        return Health(Status.PROGRESSING, "Waiting for rollout to finish: observed generation")
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < want:
        return Health(
            Status.PROGRESSING, f"Waiting for rollout: {updated} of {want} replicas updated"
        )
    if total > updated:
        return Health(
            Status.PROGRESSING, f"Waiting for rollout: {total - updated} old replicas pending"
        )
    if available < updated:
        return Health(
            Status.PROGRESSING, f"Waiting for rollout: {available} of {updated} updated available"
        )
    return HEALTHY


def _statefulset(obj: Mapping[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if not _observed(obj):
        return Health(Status.PROGRESSING, "Waiting for statefulset spec update to be observed")
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    ready = int(status.get("readyReplicas") or 0)
    if ready < want:
        return Health(Status.PROGRESSING, f"Waiting for {want - ready} pods to be ready")
    strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy == "RollingUpdate":
        updated = int(status.get("updatedReplicas") or 0)
        if (
            status.get("updateRevision")
            and status.get("currentRevision") != status.get("updateRevision")
            and updated < want
        ):
            return Health(Status.PROGRESSING, f"Waiting for rolling update: {updated} of {want}")
    return HEALTHY


def _daemonset(obj: Mapping[str, Any]) -> Health:
    status = _status(obj)
    if not _observed(obj):
        return Health(Status.PROGRESSING, "Waiting for daemon set spec update to be observed")
    want = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < want:
        return Health(Status.PROGRESSING, f"Waiting for rollout: {updated} of {want} updated")
    if available < want:
        return Health(Status.PROGRESSING, f"Waiting for rollout: {available} of {want} available")
    return HEALTHY


def _replicaset(obj: Mapping[str, Any]) -> Health:
    spec, status = _spec(obj), _status(obj)
    if not _observed(obj):
        return Health(Status.PROGRESSING, "Waiting for rollout to finish: observed generation")
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    available = int(status.get("availableReplicas") or 0)
    failure = _conditions(obj).get("ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Health(Status.DEGRADED, str(failure.get("message", "replica failure")))
    if available < want:
        return Health(Status.PROGRESSING, f"Waiting for rollout: {available} of {want} available")
    return HEALTHY


def _pod(obj: Mapping[str, Any]) -> Health:
    status = _status(obj)
    phase = status.get("phase", "Pending")
    for cs in list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    ):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason.endswith(("Error", "BackOff")) or reason.startswith("Err"):
            return Health(Status.DEGRADED, str(waiting.get("message") or reason))
    if phase == "Succeeded":
        return Health(Status.HEALTHY, str(status.get("message", "")))
    if phase == "Failed":
        return Health(Status.DEGRADED, str(status.get("message") or "pod failed"))
    if phase == "Running":
        restart = (_spec(obj).get("restartPolicy") or "Always") == "Always"
        ready = _conditions(obj).get("Ready", {}).get("status") == "True"
        if restart and not ready:
            return Health(Status.PROGRESSING, "Waiting for pod to be ready")
        return HEALTHY
    return Health(Status.PROGRESSING, str(status.get("message") or f"Pod is {phase}"))


def _job(obj: Mapping[str, Any]) -> Health:
    conds = _conditions(obj)
    for kind, health in (("Failed", Status.DEGRADED), ("Complete", Status.HEALTHY)):
        cond = conds.get(kind)
        if cond and cond.get("status") == "True":
            return Health(health, str(cond.get("message") or ""))
    if _spec(obj).get("suspend"):
        return Health(Status.SUSPENDED, "Job is suspended")
    return Health(Status.PROGRESSING, "Job is running")


def _pvc(obj: Mapping[str, Any]) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return HEALTHY
    if phase == "Lost":
        return Health(Status.DEGRADED, "claim lost its volume")
    return Health(Status.PROGRESSING, f"claim is {phase or 'Pending'}")


def _has_address(obj: Mapping[str, Any]) -> bool:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    return bool(ingress)


def _service(obj: Mapping[str, Any]) -> Health:
    if _spec(obj).get("type") == "LoadBalancer" and not _has_address(obj):
        return Health(Status.PROGRESSING, "Waiting for a load balancer address")
    return HEALTHY


def _ingress(obj: Mapping[str, Any]) -> Health:
    if not _has_address(obj):
        return Health(Status.PROGRESSING, "Waiting for an address")
    return HEALTHY


def _hpa(obj: Mapping[str, Any]) -> Health:
    conds = _conditions(obj)
    for name in ("AbleToScale", "ScalingActive"):
        cond = conds.get(name)
        if cond and cond.get("status") == "False" and name == "AbleToScale":
            return Health(Status.DEGRADED, str(cond.get("message") or name))
    return HEALTHY


def _available_condition(obj: Mapping[str, Any]) -> Health:
    cond = _conditions(obj).get("Available")
    if cond is None:
        return Health(Status.PROGRESSING, "Waiting for the Available condition")
    if cond.get("status") == "True":
        return HEALTHY
    return Health(Status.DEGRADED, str(cond.get("message") or "not available"))


def _namespace(obj: Mapping[str, Any]) -> Health:
    if _status(obj).get("phase") == "Terminating":
        return Health(Status.PROGRESSING, "Namespace is terminating")
    return HEALTHY


def _crd(obj: Mapping[str, Any]) -> Health:
    conds = _conditions(obj)
    names = conds.get("NamesAccepted")
    if names and names.get("status") == "False":
        return Health(Status.DEGRADED, str(names.get("message") or "names not accepted"))
    established = conds.get("Established")
    if established is not None and established.get("status") != "True":
        return Health(Status.PROGRESSING, "Waiting for the CRD to be established")
    return HEALTHY


def _application(obj: Mapping[str, Any]) -> Health:
    status = _status(obj)
    sync = (status.get("sync") or {}).get("status", "Unknown")
    health = (status.get("health") or {}).get("status", "Unknown")
    if health == "Healthy" and sync == "Synced":
        return HEALTHY
    if health in ("Degraded", "Missing") and sync == "Synced":
        return Health(Status(health), f"application is {health}")
    return Health(Status.PROGRESSING, f"application is {sync} and {health}")


_CHECKS: dict[tuple[str, str], Callable[[Mapping[str, Any]], Health]] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _ingress,
    ("extensions", "Ingress"): _ingress,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("apiregistration.k8s.io", "APIService"): _available_condition,
    ("", "Namespace"): _namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("argoproj.io", "Application"): _application,
}


def assess(obj: Mapping[str, Any] | None) -> Health:
    """Health of one live object (``None`` means it does not exist)."""
    if obj is None:
        return MISSING
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    check = _CHECKS.get((group, str(obj.get("kind", ""))))
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(Status.PROGRESSING, "Pending deletion")
    return check(obj) if check else HEALTHY
