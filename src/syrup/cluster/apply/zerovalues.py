"""Which fields the empty Go object of a built-in kind already holds.

A Kubernetes API server records an ``Update`` in ``managedFields`` as the paths structured-merge-
diff's comparison of the old and the new object finds added or changed; a path that is *added*
(absent from the old object) is a member of the set, so a new map, pointer struct or list item
that has children is written with the ``".": {}`` marker. The old object is a Go struct turned
into JSON: on a create it is the empty object of the kind, on any later write the live object.
Either way a field is never absent when Go's JSON encoding always writes it, which is the case
for

* a struct held by value (``Strategy DeploymentStrategy``): written as an object even when
  ``omitempty``, because ``encoding/json`` never omits structs;
* a pointer, slice or map without ``omitempty`` (``Containers []Container `json:"containers"```):
  written as ``null``, present but empty.

So these fields are never "added" below an object that exists, and get no marker, while a
pointer struct (``RollingUpdate *RollingUpdateDeployment``), an ``omitempty`` map (labels,
``data``) or list (volumes) is. Neither the OpenAPI document nor ``+optional``/``omitempty``
tells a value struct from a pointer, so the table below is read off the Go types of
kubernetes/api (``types.go`` of each group, the release in :data:`schemas.KUBERNETES_VERSION`).
It lists only fields that can have children (structs, granular maps and lists); scalars and
atomic values are leaves either way. Top-level ``metadata``, ``spec`` and ``status`` of every
built-in kind are value structs, so they are derived rather than listed.

Custom resources have no Go type: their old object on a create holds only ``apiVersion`` and
``kind``, so every object a write creates, ``spec`` and ``status`` included, is added.

Trade-off: a kind or field missing from the table behaves like a pointer (it gains a marker
where a real cluster writes none); extend the table from the Go types when that shows.
"""

from __future__ import annotations

from functools import cache

from syrup.cluster.apply import schemas

_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_BATCH = "io.k8s.api.batch.v1."
_HPA = "io.k8s.api.autoscaling.v2."
_CRD = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."

#: Definition name → fields that Go always writes (value structs; ``null`` slices, maps and
#: pointers), beyond the top-level ``metadata``/``spec``/``status``.
_ALWAYS_WRITTEN: dict[str, frozenset[str]] = {
    name: frozenset(fields.split())
    for name, fields in {
        # apps/v1
        _APPS + "ControllerRevision": "data",
        _APPS + "DeploymentSpec": "strategy template",
        _APPS + "DaemonSetSpec": "template updateStrategy",
        _APPS + "ReplicaSetSpec": "template",
        _APPS + "StatefulSetSpec": "template updateStrategy",
        # batch/v1
        _BATCH + "CronJobSpec": "jobTemplate",
        _BATCH + "JobTemplateSpec": "metadata spec",
        _BATCH + "JobSpec": "template",
        # core/v1: pods and their templates
        _CORE + "PodTemplateSpec": "metadata spec",
        _CORE + "PodSpec": "containers",
        _CORE + "Container": "resources",
        _CORE + "EphemeralContainer": "resources",
        _CORE + "ContainerStatus": "state lastState",
        _CORE + "WeightedPodAffinityTerm": "podAffinityTerm",
        # core/v1: other kinds
        _CORE + "Event": "involvedObject source",
        _CORE + "NodeStatus": "daemonEndpoints nodeInfo",
        _CORE + "NodeDaemonEndpoints": "kubeletEndpoint",
        _CORE + "PersistentVolumeClaimSpec": "resources",
        _CORE + "PersistentVolumeClaimTemplate": "metadata spec",
        _CORE + "ServiceStatus": "loadBalancer",
        # autoscaling/v2
        _HPA + "HorizontalPodAutoscalerSpec": "scaleTargetRef",
        _HPA + "ResourceMetricSource": "target",
        _HPA + "ContainerResourceMetricSource": "target",
        _HPA + "ObjectMetricSource": "describedObject metric target",
        _HPA + "PodsMetricSource": "metric target",
        _HPA + "ExternalMetricSource": "metric target",
        _HPA + "ResourceMetricStatus": "current",
        _HPA + "ContainerResourceMetricStatus": "current",
        _HPA + "ObjectMetricStatus": "current describedObject metric",
        _HPA + "PodsMetricStatus": "current metric",
        _HPA + "ExternalMetricStatus": "current metric",
        # other groups
        "io.k8s.api.admissionregistration.v1.MutatingWebhook": "clientConfig",
        "io.k8s.api.admissionregistration.v1.ValidatingWebhook": "clientConfig",
        "io.k8s.api.discovery.v1.Endpoint": "addresses conditions",
        "io.k8s.api.events.v1.Event": "deprecatedSource regarding",
        "io.k8s.api.networking.v1.HTTPIngressPath": "backend",
        "io.k8s.api.networking.v1.IngressStatus": "loadBalancer",
        "io.k8s.api.rbac.v1.RoleBinding": "roleRef",
        "io.k8s.api.rbac.v1.ClusterRoleBinding": "roleRef",
        _CRD + "CustomResourceDefinitionSpec": "names",
        _CRD + "CustomResourceDefinitionStatus": "acceptedNames",
    }.items()
}

_TOP_LEVEL = frozenset({"metadata", "spec", "status"})
_NONE: frozenset[str] = frozenset()


@cache
def always_written(definition: str | None) -> frozenset[str]:
    """Fields of a built-in type that its empty Go object already holds (empty for CRs)."""
    if definition is None:
        return _NONE
    found = _ALWAYS_WRITTEN.get(definition, _NONE)
    raw = schemas.definitions().get(definition) or {}
    if len(raw.get("x-kubernetes-group-version-kind") or ()) == 1:
        found = found | (_TOP_LEVEL & set(raw.get("properties") or ()))
    return found
