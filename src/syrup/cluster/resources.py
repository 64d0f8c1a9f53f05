"""The table of resource types the local cluster serves.

A :class:`ResourceType` is what discovery advertises and what routes, storage and apply key
on: group, version, plural, kind, scope, short names, categories, verbs and subresources.
Built-in types are listed here as Kubernetes defines them (short names and categories match
``kubectl api-resources`` on a real cluster); custom resources are added at run time from
CustomResourceDefinitions by :class:`Registry`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

VERBS_ALL = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)


@dataclass(frozen=True)
class ResourceType:
    """One served resource (``deployments`` in ``apps/v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS_ALL
    subresources: tuple[str, ...] = ()
    singular: str = ""
    list_kind: str = ""
    #: For custom resources: the CRD's name; built-in types leave it empty.
    crd: str = ""
    #: Other versions of the same resource (served from the same stored objects).
    storage_key: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` / ``pods``: the key storage uses, shared by all versions."""
        return self.storage_key or (f"{self.plural}.{self.group}" if self.group else self.plural)

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"


def _t(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    verbs: tuple[str, ...] = VERBS_ALL,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=cats,
        subresources=sub,
        verbs=verbs,
    )


_ALL = ("all",)
_NO_COLLECTION = tuple(v for v in VERBS_ALL if v != "deletecollection")

BUILTIN: tuple[ResourceType, ...] = (
    _t("", "v1", "namespaces", "Namespace", False, ("ns",), sub=("status",), verbs=_NO_COLLECTION),
    _t("", "v1", "configmaps", "ConfigMap", short=("cm",)),
    _t("", "v1", "secrets", "Secret"),
    _t("", "v1", "services", "Service", short=("svc",), cats=_ALL, sub=("status",)),
    _t("", "v1", "endpoints", "Endpoints", short=("ep",)),
    _t("", "v1", "pods", "Pod", short=("po",), cats=_ALL, sub=("status",)),
    _t("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _t(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), sub=("status",)
    ),
    _t("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), sub=("status",)),
    _t("", "v1", "nodes", "Node", False, ("no",), sub=("status",)),
    _t("", "v1", "events", "Event", short=("ev",)),
    _t("", "v1", "limitranges", "LimitRange", short=("limits",)),
    _t("", "v1", "resourcequotas", "ResourceQuota", short=("quota",), sub=("status",)),
    _t(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        short=("rc",),
        cats=_ALL,
        sub=("status", "scale"),
    ),
    _t(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        cats=_ALL,
        sub=("status", "scale"),
    ),
    _t(
        "apps", "v1", "replicasets", "ReplicaSet", short=("rs",), cats=_ALL, sub=("status", "scale")
    ),
    _t(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short=("sts",),
        cats=_ALL,
        sub=("status", "scale"),
    ),
    _t("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), cats=_ALL, sub=("status",)),
    _t("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _t("batch", "v1", "jobs", "Job", cats=_ALL, sub=("status",)),
    _t("batch", "v1", "cronjobs", "CronJob", short=("cj",), cats=_ALL, sub=("status",)),
    _t("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), sub=("status",)),
    _t("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _t(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short=("pdb",),
        sub=("status",),
    ),
    _t(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short=("hpa",),
        cats=_ALL,
        sub=("status",),
    ),
    _t("coordination.k8s.io", "v1", "leases", "Lease"),
    _t("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    _t("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    _t("events.k8s.io", "v1", "events", "Event", short=("ev",)),
    _t(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("crd", "crds"),
        sub=("status",),
    ),
    _t(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        cats=("api-extensions",),
    ),
    _t(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        cats=("api-extensions",),
    ),
    _t(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        False,
        cats=("api-extensions",),
        sub=("status",),
    ),
    _t("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
)

#: Groups whose versions a real server lists with a preferred version; ours serve one each.
CORE_GROUP = ""


class Registry:
    """Every resource type currently served: the built-ins plus CRD-defined ones."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, rt: ResourceType) -> None:
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [rt for rt in self._by_gvr.values() if rt.crd == crd_name]
        for rt in gone:
            del self._by_gvr[(rt.group, rt.version, rt.plural)]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._by_gvr.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, in first-registered order (core group excluded)."""
        out: dict[str, list[str]] = {}
        for rt in self._by_gvr.values():
            if rt.group and rt.version not in out.setdefault(rt.group, []):
                out[rt.group].append(rt.version)
        return out
