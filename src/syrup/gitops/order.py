"""Argo CD's sync order: phase, then wave, then kind, then name.

The kind order is Helm's install order (REFERENCE.md); kinds not in the table come after it,
sorted by name. A hook's phase comes from ``argocd.argoproj.io/hook`` or, when no Argo CD hook
is set, from the Helm hook annotation. Namespaces and CRDs sort first within their wave by
kind order, so an object never lands before its namespace or its type.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any

HOOK = "argocd.argoproj.io/hook"
HELM_HOOK = "helm.sh/hook"
WAVE = "argocd.argoproj.io/sync-wave"
HELM_WEIGHT = "helm.sh/hook-weight"

KIND_ORDER = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
]
_KIND_INDEX = {kind: i for i, kind in enumerate(KIND_ORDER)}


class Phase(IntEnum):
    PRE_SYNC = 0
    SYNC = 1
    POST_SYNC = 2
    SYNC_FAIL = 3

    @property
    def label(self) -> str:
        return {0: "PreSync", 1: "Sync", 2: "PostSync", 3: "SyncFail"}[int(self)]


_ARGO_PHASES = {
    "PreSync": Phase.PRE_SYNC,
    "Sync": Phase.SYNC,
    "PostSync": Phase.POST_SYNC,
    "SyncFail": Phase.SYNC_FAIL,
}
_HELM_PHASES = {
    "pre-install": Phase.PRE_SYNC,
    "pre-upgrade": Phase.PRE_SYNC,
    "post-install": Phase.POST_SYNC,
    "post-upgrade": Phase.POST_SYNC,
}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def hook_phases(obj: Mapping[str, Any]) -> list[str]:
    """Argo CD hook types of the object (``Skip`` included); empty for a plain resource."""
    ann = _annotations(obj)
    if HOOK in ann:
        return [p.strip() for p in str(ann[HOOK]).split(",") if p.strip()]
    if HELM_HOOK in ann:
        phases = [_HELM_PHASES.get(h.strip()) for h in str(ann[HELM_HOOK]).split(",")]
        return [p.label for p in phases if p is not None]
    return []


def is_hook(obj: Mapping[str, Any]) -> bool:
    return bool(hook_phases(obj))


def is_skipped(obj: Mapping[str, Any]) -> bool:
    return "Skip" in hook_phases(obj)


def phase(obj: Mapping[str, Any]) -> Phase:
    phases = [_ARGO_PHASES[p] for p in hook_phases(obj) if p in _ARGO_PHASES]
    return min(phases) if phases else Phase.SYNC


def wave(obj: Mapping[str, Any]) -> int:
    ann = _annotations(obj)
    raw = ann.get(WAVE, ann.get(HELM_WEIGHT) if HELM_HOOK in ann else None)
    try:
        return int(str(raw).strip()) if raw is not None else 0
    except ValueError:
        return 0


def kind_rank(kind: str) -> int:
    return _KIND_INDEX.get(kind, len(KIND_ORDER))


def sort_key(obj: Mapping[str, Any]) -> tuple[int, int, int, str, str]:
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    # Unknown kinds sort after the table, by kind then name.
    return (int(phase(obj)), wave(obj), kind_rank(kind), kind, name)


def ordered(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=sort_key)
