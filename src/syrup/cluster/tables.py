"""Server-side ``Table`` responses, so ``kubectl get`` prints the columns people know.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints whatever columns
the server defines; columns with ``priority: 1`` appear only with ``-o wide``. The columns and
their cell values follow what a real API server prints for the same kinds (pods' READY and
STATUS, deployments' UP-TO-DATE, services' PORT(S) and so on). Kinds without a definition get
NAME and AGE; custom resources use their CRD's ``additionalPrinterColumns``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from syrup.cluster import selectors

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def age(obj: Obj) -> str:
    """kubectl's short human duration of the object's age (``5s``, ``3m12s``, ``4h``, ``2d``)."""
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - created).total_seconds())


def human_duration(seconds: float) -> str:
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest_min = (s % 3600) // 60
        return f"{hours}h{rest_min}m" if rest_min else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = s // 86400
    if days < 8:
        rest_h = (s % 86400) // 3600
        return f"{days}d{rest_h}h" if rest_h else f"{days}d"
    if days < 730:
        return f"{days}d"
    return f"{days // 365}y"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _pod_ready(obj: Obj) -> str:
    containers = _spec(obj).get("containers") or []
    ready = sum(1 for c in _status(obj).get("containerStatuses") or [] if c.get("ready"))
    return f"{ready}/{len(containers)}"


def pod_status(obj: Obj) -> str:
    """The STATUS column: the most telling reason, as kubectl's printer derives it."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = _status(obj)
    reason = status.get("reason") or status.get("phase") or "Pending"
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "waiting" in state and state["waiting"].get("reason", "PodInitializing") not in (
            "PodInitializing",
        ):
            return f"Init:{state['waiting']['reason']}"
        total = len(_spec(obj).get("initContainers") or [])
        return f"Init:{i}/{total}"
    for cs in reversed(status.get("containerStatuses") or []):
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    return str(reason)


def _restarts(obj: Obj) -> int:
    return sum(int(c.get("restartCount", 0)) for c in _status(obj).get("containerStatuses") or [])


def _containers(obj: Obj) -> list[Obj]:
    template = _spec(obj).get("template") or {}
    return list((template.get("spec") or {}).get("containers") or [])


def _svc_ports(obj: Obj) -> str:
    parts = []
    for p in _spec(obj).get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        parts.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _svc_external(obj: Obj) -> str:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress]
    if ips:
        return ",".join(str(i) for i in ips if i)
    external = _spec(obj).get("externalIPs") or []
    if external:
        return ",".join(external)
    return "<pending>" if _spec(obj).get("type") == "LoadBalancer" else "<none>"


def _selector_text(obj: Obj) -> str:
    sel = _spec(obj).get("selector") or {}
    if "matchLabels" in sel or "matchExpressions" in sel:
        return selectors.selector_to_string(sel) or "<none>"
    return ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>"


def _node_status(obj: Obj) -> str:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == "Ready":
            text = "Ready" if cond.get("status") == "True" else "NotReady"
            return text + (",SchedulingDisabled" if _spec(obj).get("unschedulable") else "")
    return "Unknown"


def _node_roles(obj: Obj) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = [k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")]
    return ",".join(sorted(roles)) or "<none>"


def _job_status(obj: Obj) -> str:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"])
        if cond.get("status") == "True" and cond.get("type") == "Suspended":
            return "Suspended"
    return "Running"


def _hpa_targets(obj: Obj) -> str:
    """``cpu: <unknown>/50%`` per metric, as kubectl prints before metrics arrive."""
    parts = []
    for metric in _spec(obj).get("metrics") or []:
        source = metric.get(str(metric.get("type", "")).lower() or "resource") or {}
        target = source.get("target") or {}
        want = target.get("averageUtilization")
        wanted = f"{want}%" if want is not None else target.get("averageValue") or "?"
        parts.append(f"{source.get('name', metric.get('type', ''))}: <unknown>/{wanted}")
    return ", ".join(parts) or "<none>"


NAME: Column = ("Name", "string", 0, _name)
AGE: Column = ("Age", "string", 0, age)

COLUMNS: dict[str, list[Column]] = {
    "pods": [
        NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, pod_status),
        ("Restarts", "string", 0, lambda o: str(_restarts(o))),
        AGE,
        ("IP", "string", 1, lambda o: _status(o).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda o: _spec(o).get("nodeName") or "<none>"),
        ("Nominated Node", "string", 1, lambda o: "<none>"),
        ("Readiness Gates", "string", 1, lambda o: "<none>"),
    ],
    "deployments.apps": [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
        ),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("availableReplicas", 0)),
        AGE,
        ("Containers", "string", 1, lambda o: ",".join(c["name"] for c in _containers(o))),
        ("Images", "string", 1, lambda o: ",".join(c.get("image", "") for c in _containers(o))),
        ("Selector", "string", 1, _selector_text),
    ],
    "replicasets.apps": [
        NAME,
        ("Desired", "integer", 0, lambda o: _spec(o).get("replicas", 1)),
        ("Current", "integer", 0, lambda o: _status(o).get("replicas", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("readyReplicas", 0)),
        AGE,
        ("Containers", "string", 1, lambda o: ",".join(c["name"] for c in _containers(o))),
        ("Images", "string", 1, lambda o: ",".join(c.get("image", "") for c in _containers(o))),
        ("Selector", "string", 1, _selector_text),
    ],
    "statefulsets.apps": [
        NAME,
        (
            "Ready",
            "string",
            0,
            lambda o: f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
        ),
        AGE,
    ],
    "daemonsets.apps": [
        NAME,
        ("Desired", "integer", 0, lambda o: _status(o).get("desiredNumberScheduled", 0)),
        ("Current", "integer", 0, lambda o: _status(o).get("currentNumberScheduled", 0)),
        ("Ready", "integer", 0, lambda o: _status(o).get("numberReady", 0)),
        ("Up-to-date", "integer", 0, lambda o: _status(o).get("updatedNumberScheduled", 0)),
        ("Available", "integer", 0, lambda o: _status(o).get("numberAvailable", 0)),
        AGE,
    ],
    "services": [
        NAME,
        ("Type", "string", 0, lambda o: _spec(o).get("type", "ClusterIP")),
        ("Cluster-IP", "string", 0, lambda o: _spec(o).get("clusterIP") or "<none>"),
        ("External-IP", "string", 0, _svc_external),
        ("Port(s)", "string", 0, _svc_ports),
        AGE,
        ("Selector", "string", 1, _selector_text),
    ],
    "namespaces": [NAME, ("Status", "string", 0, lambda o: _status(o).get("phase", "")), AGE],
    "configmaps": [NAME, ("Data", "integer", 0, lambda o: len(o.get("data") or {})), AGE],
    "secrets": [
        NAME,
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        AGE,
    ],
    "nodes": [
        NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        AGE,
        (
            "Version",
            "string",
            0,
            lambda o: (_status(o).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ),
    ],
    "jobs.batch": [
        NAME,
        ("Status", "string", 0, _job_status),
        (
            "Completions",
            "string",
            0,
            lambda o: f"{_status(o).get('succeeded', 0)}/{_spec(o).get('completions', 1)}",
        ),
        AGE,
    ],
    "cronjobs.batch": [
        NAME,
        ("Schedule", "string", 0, lambda o: _spec(o).get("schedule", "")),
        ("Suspend", "boolean", 0, lambda o: bool(_spec(o).get("suspend", False))),
        ("Active", "integer", 0, lambda o: len(_status(o).get("active") or [])),
        AGE,
    ],
    "events": [
        (
            "Last Seen",
            "string",
            0,
            lambda o: (
                age({"metadata": {"creationTimestamp": o.get("lastTimestamp")}})
                if o.get("lastTimestamp")
                else age(o)
            ),
        ),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        (
            "Object",
            "string",
            0,
            lambda o: (
                f"{str((o.get('involvedObject') or {}).get('kind', '')).lower()}/"
                f"{(o.get('involvedObject') or {}).get('name', '')}"
            ),
        ),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
    "horizontalpodautoscalers.autoscaling": [
        NAME,
        (
            "Reference",
            "string",
            0,
            lambda o: (
                f"{(_spec(o).get('scaleTargetRef') or {}).get('kind', '')}/"
                f"{(_spec(o).get('scaleTargetRef') or {}).get('name', '')}"
            ),
        ),
        ("Targets", "string", 0, _hpa_targets),
        ("MinPods", "integer", 0, lambda o: _spec(o).get("minReplicas", 1)),
        ("MaxPods", "integer", 0, lambda o: _spec(o).get("maxReplicas", 0)),
        ("Replicas", "integer", 0, lambda o: _status(o).get("currentReplicas", 0)),
        AGE,
    ],
    "persistentvolumeclaims": [
        NAME,
        ("Status", "string", 0, lambda o: _status(o).get("phase", "Pending")),
        ("Volume", "string", 0, lambda o: _spec(o).get("volumeName", "")),
        AGE,
    ],
    "ingresses.networking.k8s.io": [
        NAME,
        ("Class", "string", 0, lambda o: _spec(o).get("ingressClassName") or "<none>"),
        (
            "Hosts",
            "string",
            0,
            lambda o: ",".join(r.get("host", "*") for r in _spec(o).get("rules") or []) or "*",
        ),
        (
            "Address",
            "string",
            0,
            lambda o: ",".join(
                str(i.get("ip") or i.get("hostname"))
                for i in (_status(o).get("loadBalancer") or {}).get("ingress") or []
            ),
        ),
        AGE,
    ],
}


def _json_path_cell(obj: Obj, path: str) -> Any:
    node: Any = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _path_getter(path: str) -> Callable[[Obj], Any]:
    return lambda obj: _json_path_cell(obj, path)


def columns_for(group_resource: str, crd: Obj | None, version: str) -> list[Column]:
    if group_resource in COLUMNS:
        return COLUMNS[group_resource]
    if crd is not None:
        for v in (crd.get("spec") or {}).get("versions") or []:
            printer = v.get("additionalPrinterColumns") or []
            if v.get("name") == version and printer:
                cols: list[Column] = [NAME]
                for pc in printer:
                    path = str(pc.get("jsonPath", ""))
                    if pc.get("type") == "date" and path == ".metadata.creationTimestamp":
                        cols.append((str(pc.get("name")), "string", 0, age))
                        continue
                    cols.append(
                        (
                            str(pc.get("name")),
                            str(pc.get("type", "string")),
                            int(pc.get("priority", 0)),
                            _path_getter(path),
                        )
                    )
                return cols
    return [NAME, AGE]


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    objs: list[Obj],
    *,
    columns: list[Column],
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> Obj:
    rows = []
    for obj in objs:
        row: Obj = {"cells": [cell(obj) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    meta: Obj = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {
                "name": name,
                "type": typ,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": prio,
            }
            for name, typ, prio, _ in columns
        ],
        "rows": rows,
    }
