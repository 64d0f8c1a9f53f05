"""Service endpoints, load-balancer addresses, Ingress addresses and HPA status.

* **Endpoints and EndpointSlices** list the pods a Service selects that have an IP: ready pods
  as ``addresses`` (slice condition ``ready``), others as ``notReadyAddresses`` (unless
  ``publishNotReadyAddresses``). Named ``targetPort``\\ s resolve against each pod's container
  ports. The EndpointSlice is named ``<service>-<hash>`` and owned by the Service, labelled
  ``kubernetes.io/service-name`` and managed-by ``endpointslice-controller.k8s.io``; Endpoints
  of a deleted Service are removed, as the endpoints controller does.
* **LoadBalancer Services** get ``status.loadBalancer.ingress[].ip`` from a local pool (after the
  first address, which Ingresses share, like an ingress controller's single address). Turning
  load balancers off in :class:`~syrup.cluster.workloads.settings.Settings` leaves them pending.
* **HorizontalPodAutoscalers** report their target's replicas and, because this cluster has no
  metrics API, ``ScalingActive=False`` with reason ``FailedGetResourceMetric``; no
  ``currentMetrics`` values, so ``kubectl get hpa`` shows ``<unknown>`` targets.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import objects, replicasets, runtime

Obj = dict[str, Any]

ENDPOINTS_MANAGER = "endpoint-controller"
SLICE_MANAGER = "endpointslice-controller"
MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def resolve_port(port: Obj, pod: Obj) -> int | None:
    """The container port a Service port targets on ``pod`` (named ports looked up)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in objects.spec(pod).get("containers") or []:
        for cport in c.get("ports") or []:
            if cport.get("name") == target and cport.get("protocol", "TCP") == port.get(
                "protocol", "TCP"
            ):
                return int(cport.get("containerPort") or 0)
    return None


def _target_ref(pod: Obj) -> Obj:
    return {
        "kind": "Pod",
        "namespace": objects.namespace(pod),
        "name": objects.name(pod),
        "uid": objects.uid(pod),
    }


def endpoints_for(svc: Obj, pods: list[Obj]) -> tuple[list[Obj] | None, list[Obj]]:
    """(Endpoints subsets, EndpointSlice endpoints) for a Service and the pods it selects."""
    sspec = objects.spec(svc)
    publish_all = bool(sspec.get("publishNotReadyAddresses"))
    ports = [p for p in sspec.get("ports") or [] if isinstance(p, dict)]
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    slice_eps: list[Obj] = []
    for pod in sorted(pods, key=objects.name):
        ip = objects.status(pod).get("podIP")
        if not ip or not replicasets.is_active(pod):
            continue
        resolved = []
        for port in ports:
            number = resolve_port(port, pod)
            if number:
                resolved.append(
                    (str(port.get("name") or ""), number, str(port.get("protocol") or "TCP"))
                )
        ready = replicasets.ready_since(pod) is not None
        address = {"ip": ip, "targetRef": _target_ref(pod)}
        node = objects.spec(pod).get("nodeName")
        if node:
            address["nodeName"] = node
        ready_list, unready_list = groups.setdefault(tuple(resolved), ([], []))
        (ready_list if ready or publish_all else unready_list).append(address)
        slice_ep: Obj = {
            "addresses": [ip],
            "conditions": {"ready": ready or publish_all, "serving": ready, "terminating": False},
            "targetRef": _target_ref(pod),
        }
        if node:
            slice_ep["nodeName"] = node
        slice_eps.append(slice_ep)
    subsets = []
    for resolved_ports, (ready_list, unready_list) in groups.items():
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = ready_list
        if unready_list:
            subset["notReadyAddresses"] = unready_list
        subset["ports"] = [
            {**({"name": n} if n else {}), "port": num, "protocol": proto}
            for n, num, proto in resolved_ports
        ]
        subsets.append(subset)
    return (subsets or None), slice_eps


class Endpoints(runtime.Controller):
    """Keeps Endpoints and EndpointSlices of selector Services; see the module docstring."""

    name = "endpoints"
    workers = 2

    def setup(self) -> None:
        self.services = self.ctx.informer("", "v1", "services")
        self.services.subscribe(self._on_service)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)

    def _on_service(self, etype: str, svc: Obj) -> None:
        self.enqueue((objects.namespace(svc), objects.name(svc)))

    def _on_pod(self, etype: str, pod: Obj) -> None:
        ns = objects.namespace(pod)
        for svc in self.services.items(ns):
            sel = objects.spec(svc).get("selector")
            if sel and objects.selects({"matchLabels": sel}, pod):
                self.enqueue((ns, objects.name(svc)))

    async def reconcile(self, key: runtime.Key) -> float | None:
        svc_rt = self.ctx.rt("", "v1", "services")
        ep_rt = self.ctx.rt("", "v1", "endpoints")
        try:
            svc = await self.store.get(svc_rt, *key)
        except syrup_errors.NotFound:
            await runtime.ignore_missing(self.store.delete(ep_rt, key[0], key[1]))
            return None
        sspec = objects.spec(svc)
        selector = sspec.get("selector")
        if not selector or sspec.get("type") == "ExternalName" or objects.deleting(svc):
            return None
        pods_rt = self.ctx.rt("", "v1", "pods")
        text = objects.selector_text({"matchLabels": selector})
        pods, _ = await self.store.list(pods_rt, key[0], label_selector=text)
        subsets, slice_eps = endpoints_for(svc, pods)
        labels = objects.labels(svc)

        endpoints: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": key[1], "namespace": key[0], "labels": labels or None},
        }
        if not labels:
            del endpoints["metadata"]["labels"]
        if subsets:
            endpoints["subsets"] = subsets
        await self._put(ep_rt, endpoints, manager=ENDPOINTS_MANAGER, fields=("subsets",))

        slice_rt = self.ctx.rt("discovery.k8s.io", "v1", "endpointslices")
        slice_name = (
            f"{key[1]}-{objects.safe_encode(str(objects.fnv32a(objects.uid(svc).encode())))[:5]}"
        )
        ports = []
        for port in sspec.get("ports") or []:
            number = resolve_port(port, pods[0]) if pods else None
            entry: Obj = {"port": number, "protocol": port.get("protocol") or "TCP"}
            if port.get("name"):
                entry["name"] = port["name"]
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        body: Obj = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name,
                "namespace": key[0],
                "labels": {
                    **labels,
                    SERVICE_NAME_LABEL: key[1],
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
                "ownerReferences": [objects.owner_ref(svc)],
            },
            "addressType": "IPv4",
            "endpoints": slice_eps or None,
            "ports": ports or None,
        }
        await self._put(
            slice_rt, body, manager=SLICE_MANAGER, fields=("endpoints", "ports", "addressType")
        )
        return None

    async def _put(self, rt: Any, body: Obj, *, manager: str, fields: tuple[str, ...]) -> None:
        ns, name = objects.namespace(body), objects.name(body)
        try:
            live = await self.store.get(rt, ns, name)
        except syrup_errors.NotFound:
            for f in fields:
                if body.get(f) is None:
                    body.pop(f, None)
            await self.store.create(rt, body, field_manager=manager)
            return
        changed = objects.deep_copy(live)
        for f in fields:
            if body.get(f) is None:
                changed.pop(f, None)
            else:
                changed[f] = body[f]
        want_labels = objects.meta(body).get("labels") or {}
        if want_labels != (objects.meta(live).get("labels") or {}):
            changed["metadata"]["labels"] = want_labels
        if changed != live:
            await self.store.update(rt, changed, field_manager=manager)


class LoadBalancers(runtime.Controller):
    """Addresses for LoadBalancer Services; see the module docstring."""

    name = "service-lb"
    workers = 1

    def setup(self) -> None:
        self.ctx.informer("", "v1", "services").subscribe(self._on_service)
        self.assigned: dict[str, str] = {}

    def _on_service(self, etype: str, svc: Obj) -> None:
        if etype == "DELETED":
            self.assigned.pop(objects.uid(svc), None)
            return
        for ing in (objects.status(svc).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip"):
                self.assigned.setdefault(objects.uid(svc), str(ing["ip"]))
        self.enqueue((objects.namespace(svc), objects.name(svc)))

    def _allocate(self, uid: str) -> str:
        if uid in self.assigned:
            return self.assigned[uid]
        base = ipaddress.IPv4Address(self.ctx.settings.load_balancer_base)
        used = set(self.assigned.values())
        n = 1
        while str(base + n) in used:
            n += 1
        self.assigned[uid] = str(base + n)
        return self.assigned[uid]

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("", "v1", "services")
        try:
            svc = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        st = objects.deep_copy(objects.status(svc))
        if objects.spec(svc).get("type") == "LoadBalancer" and self.ctx.settings.load_balancer:
            ip = self._allocate(objects.uid(svc))
            st["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
        elif st.get("loadBalancer"):
            st["loadBalancer"] = {}
        else:
            return None
        await runtime.write_status(self.store, rt, svc, st, manager="service-controller")
        return None


class Ingresses(runtime.Controller):
    """An address for every Ingress (the local ingress controller's single address)."""

    name = "ingress"
    workers = 1

    def setup(self) -> None:
        self.ctx.informer("networking.k8s.io", "v1", "ingresses").subscribe(
            lambda etype, ing: (
                None
                if etype == "DELETED"
                else self.enqueue((objects.namespace(ing), objects.name(ing)))
            )
        )

    async def reconcile(self, key: runtime.Key) -> float | None:
        if not self.ctx.settings.load_balancer:
            return None
        rt = self.ctx.rt("networking.k8s.io", "v1", "ingresses")
        try:
            ing = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        st = {"loadBalancer": {"ingress": [{"ip": self.ctx.settings.load_balancer_base}]}}
        await runtime.write_status(self.store, rt, ing, st, manager="ingress-controller")
        return None


class Autoscalers(runtime.Controller):
    """HPA status without a metrics API; see the module docstring."""

    name = "horizontal-pod-autoscaler"
    workers = 1
    _RESYNC_REAL = 15.0

    def setup(self) -> None:
        self.ctx.informer("autoscaling", "v2", "horizontalpodautoscalers").subscribe(
            lambda etype, hpa: (
                None
                if etype == "DELETED"
                else self.enqueue((objects.namespace(hpa), objects.name(hpa)))
            )
        )

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("autoscaling", "v2", "horizontalpodautoscalers")
        try:
            hpa = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        ref = objects.spec(hpa).get("scaleTargetRef") or {}
        now = self.clock.stamp()
        conds = list(objects.status(hpa).get("conditions") or [])
        target_rt = self.store.registry.by_kind(
            str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        )
        replicas: int | None = None
        if target_rt is not None:
            try:
                target = await self.store.get(target_rt, key[0], str(ref.get("name") or ""))
                replicas = int(objects.spec(target).get("replicas", 1) or 0)
            except (syrup_errors.NotFound, errors.ApiError):
                replicas = None
        if replicas is None:
            conds = objects.set_condition(
                conds,
                "AbleToScale",
                "False",
                reason="FailedGetScale",
                message=(
                    "the HPA controller was unable to get the target's current scale: "
                    f'{ref.get("kind")} "{ref.get("name")}" not found'
                ),
                now=now,
            )
            st: Obj = {"currentReplicas": 0, "desiredReplicas": 0, "conditions": conds}
        else:
            conds = objects.set_condition(
                conds,
                "AbleToScale",
                "True",
                reason="SucceededGetScale",
                message="the HPA controller was able to get the target's current scale",
                now=now,
            )
            conds = objects.set_condition(
                conds,
                "ScalingActive",
                "False",
                reason="FailedGetResourceMetric",
                message=(
                    "the HPA was unable to compute the replica count: unable to get metrics for "
                    "resource cpu: no metrics returned from resource metrics API"
                ),
                now=now,
            )
            st = {"currentReplicas": replicas, "desiredReplicas": replicas, "conditions": conds}
        await runtime.write_status(self.store, rt, hpa, st, manager="horizontal-pod-autoscaler")
        return self._RESYNC_REAL
