"""Defaults the API server fills in, so a round trip looks like one through a real cluster.

Built-in kinds follow kubernetes/kubernetes ``pkg/apis/{core,apps,batch}/v1/defaults.go`` for
the fields ``shared/REFERENCE.md`` lists (workloads, pod templates, containers, probes,
services, volumes, jobs) plus a few more a GitOps diff meets often (NetworkPolicy policy types,
RoleBinding subject groups, StorageClass policies, webhook configurations). Custom resources
get the ``default`` values of their CRD schema, applied where the parent object exists, as
Kubernetes' structural-schema defaulting does.

Every default is set only where the field is absent, so defaulting twice changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from syrup.cluster.apply.schemas import Schema

Obj = dict[str, Any]


def apply_defaults(
    obj: Obj,
    *,
    schema: Schema | None,
    old: Obj | None = None,
    custom: bool = False,
) -> None:
    """Fill in defaults in place. ``custom`` marks a custom resource (schema defaults only)."""
    if custom:
        if schema is not None:
            schema_defaults(obj, schema)
        return
    kind = obj.get("kind", "")
    handler = _BY_KIND.get(kind)
    if handler is not None:
        handler(obj)
    if kind == "Service":
        _service_ip(obj, old)


# -- custom resources --------------------------------------------------------------------------


def schema_defaults(value: Any, schema: Schema) -> None:
    """Apply ``default`` from the schema to absent fields of objects that exist."""
    if isinstance(value, dict):
        for name, sub in schema.properties.items():
            if name not in value and sub.default is not None:
                value[name] = copy.deepcopy(sub.default)
        for name, child in value.items():
            sub_schema = schema.properties.get(name) or schema.additional
            if sub_schema is not None and isinstance(child, dict | list):
                schema_defaults(child, sub_schema)
    elif isinstance(value, list) and schema.items is not None:
        for item in value:
            schema_defaults(item, schema.items)


# -- pods --------------------------------------------------------------------------------------


def _d(obj: Obj, key: str, value: Any) -> Any:
    """``setdefault`` that also replaces an explicit null, as decoding a Go struct does."""
    if obj.get(key) is None:
        obj[key] = value
    return obj[key]


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _d(probe, "timeoutSeconds", 1)
    _d(probe, "periodSeconds", 10)
    _d(probe, "successThreshold", 1)
    _d(probe, "failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        _d(http, "path", "/")
        _d(http, "scheme", "HTTP")


def _pull_policy(image: str) -> str:
    # The tag is after the last ':' that follows the last '/'; a digest pins the image.
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container(c: Any) -> None:
    if not isinstance(c, dict):
        return
    _d(c, "terminationMessagePath", "/dev/termination-log")
    _d(c, "terminationMessagePolicy", "File")
    _d(c, "imagePullPolicy", _pull_policy(str(c.get("image") or "")))
    # Resource requirements are a plain struct in Go, so the API always prints them.
    _d(c, "resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            _d(port, "protocol", "TCP")
    for env in c.get("env") or []:
        ref = ((env or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(ref, dict):
            _d(ref, "apiVersion", "v1")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(name))


def _volume(v: Any) -> None:
    if not isinstance(v, dict):
        return
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        body = v.get(source)
        if isinstance(body, dict):
            _d(body, "defaultMode", 420)
            if source == "projected":
                for p in body.get("sources") or []:
                    if isinstance(p, dict) and isinstance(p.get("serviceAccountToken"), dict):
                        _d(p["serviceAccountToken"], "expirationSeconds", 3600)
            if source == "downwardAPI":
                for item in body.get("items") or []:
                    ref = (item or {}).get("fieldRef")
                    if isinstance(ref, dict):
                        _d(ref, "apiVersion", "v1")
    if "emptyDir" in v and v["emptyDir"] is None:
        v["emptyDir"] = {}
    host = v.get("hostPath")
    if isinstance(host, dict):
        _d(host, "type", "")
    if len(v) == 1 and "name" in v:
        # A volume with no source is an emptyDir, as in the Go defaulting.
        v["emptyDir"] = {}


def pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    _d(spec, "restartPolicy", "Always")
    _d(spec, "dnsPolicy", "ClusterFirst")
    _d(spec, "terminationGracePeriodSeconds", 30)
    _d(spec, "schedulerName", "default-scheduler")
    _d(spec, "securityContext", {})
    if spec.get("serviceAccountName") and spec.get("serviceAccount") is None:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            _container(c)
    for v in spec.get("volumes") or []:
        _volume(v)


def _template(spec: Any) -> None:
    if isinstance(spec, dict):
        template = spec.get("template")
        if isinstance(template, dict):
            pod_spec(template.get("spec"))


def _rolling(strategy: Obj, **values: Any) -> None:
    if strategy.get("type") == "RollingUpdate":
        rolling = _d(strategy, "rollingUpdate", {})
        for key, value in values.items():
            _d(rolling, key, value)


# -- workloads ---------------------------------------------------------------------------------


def _deployment(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(spec, "replicas", 1)
    strategy = _d(spec, "strategy", {})
    _d(strategy, "type", "RollingUpdate")
    _rolling(strategy, maxUnavailable="25%", maxSurge="25%")
    _d(spec, "revisionHistoryLimit", 10)
    _d(spec, "progressDeadlineSeconds", 600)
    _template(spec)


def _replicaset(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(spec, "replicas", 1)
    _template(spec)


def _statefulset(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(spec, "replicas", 1)
    _d(spec, "podManagementPolicy", "OrderedReady")
    strategy = _d(spec, "updateStrategy", {})
    _d(strategy, "type", "RollingUpdate")
    _rolling(strategy, partition=0)
    _d(spec, "revisionHistoryLimit", 10)
    policy = _d(spec, "persistentVolumeClaimRetentionPolicy", {})
    _d(policy, "whenDeleted", "Retain")
    _d(policy, "whenScaled", "Retain")
    for pvc in spec.get("volumeClaimTemplates") or []:
        if isinstance(pvc, dict):
            _d(pvc, "apiVersion", "v1")
            _d(pvc, "kind", "PersistentVolumeClaim")
            _d(_d(pvc, "spec", {}), "volumeMode", "Filesystem")
            _d(_d(pvc, "status", {}), "phase", "Pending")
    _template(spec)


def _daemonset(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    strategy = _d(spec, "updateStrategy", {})
    _d(strategy, "type", "RollingUpdate")
    _rolling(strategy, maxUnavailable=1, maxSurge=0)
    _d(spec, "revisionHistoryLimit", 10)
    _template(spec)


def _job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    _d(spec, "parallelism", 1)
    _d(spec, "backoffLimit", 6)
    _d(spec, "completionMode", "NonIndexed")
    _d(spec, "suspend", False)
    _d(spec, "podReplacementPolicy", "TerminatingOrFailed")
    _template(spec)


def _job(obj: Obj) -> None:
    _job_spec(_d(obj, "spec", {}))


def _cronjob(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(spec, "concurrencyPolicy", "Allow")
    _d(spec, "suspend", False)
    _d(spec, "successfulJobsHistoryLimit", 3)
    _d(spec, "failedJobsHistoryLimit", 1)
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        _template(job.get("spec"))


def _pod(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    pod_spec(spec)
    _d(spec, "enableServiceLinks", True)
    _d(spec, "priority", 0)
    _d(spec, "preemptionPolicy", "PreemptLowerPriority")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            # A container's requests default to its limits (SetDefaults_Pod).
            resources = (c or {}).get("resources") or {}
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                requests = resources.setdefault("requests", {})
                for name, value in limits.items():
                    requests.setdefault(name, value)


def _pod_template(obj: Obj) -> None:
    template = obj.get("template")
    if isinstance(template, dict):
        pod_spec(template.get("spec"))


# -- services and others ----------------------------------------------------------------------


def _service(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    kind = _d(spec, "type", "ClusterIP")
    _d(spec, "sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            _d(port, "protocol", "TCP")
            if kind != "ExternalName":
                _d(port, "targetPort", port.get("port"))
    if kind != "ExternalName":
        _d(spec, "internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        _d(spec, "externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        _d(spec, "allocateLoadBalancerNodePorts", True)
    if spec.get("sessionAffinity") == "ClientIP":
        config = _d(spec, "sessionAffinityConfig", {})
        _d(_d(config, "clientIP", {}), "timeoutSeconds", 10800)
    status = _d(obj, "status", {})
    _d(status, "loadBalancer", {})


def _service_ip(obj: Obj, old: Obj | None) -> None:
    """Keep the addresses a Service was given when an update leaves them out."""
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return
    old_spec = (old or {}).get("spec") or {}
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        for key in ("clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if old_spec.get(key) and not spec.get(key):
                spec[key] = copy.deepcopy(old_spec[key])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        old_ports = {
            (p.get("port"), p.get("protocol")): p.get("nodePort")
            for p in old_spec.get("ports") or []
            if isinstance(p, dict)
        }
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                previous = old_ports.get((p.get("port"), p.get("protocol")))
                if previous:
                    p["nodePort"] = previous


def allocate_service_addresses(obj: Obj, allocate: Callable[[], str] | None) -> None:
    """Give a Service its clusterIP, IP families and node ports where it has none.

    A real API server allocates these in the Service registry, after the field manager has
    recorded the writer's fields, so no manager owns them; the caller runs this after
    ownership is recorded for the same reason. Idempotent: set fields are kept.
    """
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    if not spec.get("clusterIP") and allocate is not None:
        spec["clusterIP"] = allocate()
    ip = spec.get("clusterIP")
    if ip:
        _d(spec, "clusterIPs", [ip])
        _d(spec, "ipFamilies", ["IPv6" if ":" in ip else "IPv4"])
        _d(spec, "ipFamilyPolicy", "SingleStack")
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        used = {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                p["nodePort"] = _node_port(obj, p, used)
                used.add(p["nodePort"])


def _node_port(obj: Obj, port: Obj, used: set[Any]) -> int:
    """A stable node port from the Service's identity (the local cluster has no node ports)."""
    meta = obj.get("metadata") or {}
    seed = f"{meta.get('namespace')}/{meta.get('name')}/{port.get('port')}/{port.get('protocol')}"
    n = 30000 + sum(ord(ch) * (i + 1) for i, ch in enumerate(seed)) % 2768
    while n in used:
        n = 30000 + (n - 30000 + 1) % 2768
    return n


def _namespace(obj: Obj) -> None:
    name = (obj.get("metadata") or {}).get("name")
    if name:
        labels = _d(_d(obj, "metadata", {}), "labels", {})
        labels.setdefault("kubernetes.io/metadata.name", name)
    _d(_d(obj, "spec", {}), "finalizers", ["kubernetes"])
    _d(_d(obj, "status", {}), "phase", "Active")


def _secret(obj: Obj) -> None:
    _d(obj, "type", "Opaque")


def _pvc(obj: Obj) -> None:
    _d(_d(obj, "spec", {}), "volumeMode", "Filesystem")
    _d(_d(obj, "status", {}), "phase", "Pending")


def _network_policy(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    if spec.get("policyTypes") is None:
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types
    for rule_key in ("ingress", "egress"):
        for rule in spec.get(rule_key) or []:
            for port in (rule or {}).get("ports") or []:
                if isinstance(port, dict):
                    _d(port, "protocol", "TCP")


def _bindings(obj: Obj) -> None:
    # A ServiceAccount's group is "", which the API omits rather than prints.
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and subject.get("kind") in ("User", "Group"):
            _d(subject, "apiGroup", "rbac.authorization.k8s.io")


def _storage_class(obj: Obj) -> None:
    _d(obj, "reclaimPolicy", "Delete")
    _d(obj, "volumeBindingMode", "Immediate")


def _webhooks(obj: Obj) -> None:
    mutating = obj.get("kind") == "MutatingWebhookConfiguration"
    for hook in obj.get("webhooks") or []:
        if not isinstance(hook, dict):
            continue
        _d(hook, "failurePolicy", "Fail")
        _d(hook, "matchPolicy", "Equivalent")
        _d(hook, "namespaceSelector", {})
        _d(hook, "objectSelector", {})
        _d(hook, "timeoutSeconds", 10)
        if mutating:
            _d(hook, "reinvocationPolicy", "Never")
        service = (hook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            _d(service, "port", 443)
        for rule in hook.get("rules") or []:
            if isinstance(rule, dict):
                _d(rule, "scope", "*")


def _crd(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(_d(spec, "conversion", {}), "strategy", "None")
    names = spec.get("names")
    if isinstance(names, dict):
        _d(names, "singular", str(names.get("kind", "")).lower())
        _d(names, "listKind", f"{names.get('kind', '')}List")


def _priority_class(obj: Obj) -> None:
    _d(obj, "preemptionPolicy", "PreemptLowerPriority")


def _hpa(obj: Obj) -> None:
    spec = _d(obj, "spec", {})
    _d(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]


_BY_KIND: dict[str, Callable[[Obj], None]] = {
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "ReplicationController": _replicaset,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "Job": _job,
    "CronJob": _cronjob,
    "Pod": _pod,
    "PodTemplate": _pod_template,
    "Service": _service,
    "Namespace": _namespace,
    "Secret": _secret,
    "PersistentVolumeClaim": _pvc,
    "NetworkPolicy": _network_policy,
    "RoleBinding": _bindings,
    "ClusterRoleBinding": _bindings,
    "StorageClass": _storage_class,
    "ValidatingWebhookConfiguration": _webhooks,
    "MutatingWebhookConfiguration": _webhooks,
    "CustomResourceDefinition": _crd,
    "PriorityClass": _priority_class,
    "HorizontalPodAutoscaler": _hpa,
}
