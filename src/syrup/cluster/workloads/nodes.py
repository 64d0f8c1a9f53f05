"""Simulated nodes: Node objects, their heartbeat Leases, and the kubelet that runs their pods.

Each node is a ``v1`` Node with the labels, capacity, addresses and ``nodeInfo`` a real
kubelet registers, a ``Ready`` condition kept fresh by a heartbeat, and a Lease in
``kube-node-lease`` renewed on the kubelet's 10-second rhythm (scaled by speed, never more
often than every two wall seconds, to keep a fast cluster from spending itself on heartbeats).
Nodes are labelled ``workloads.syrup.dev/simulated=true`` so a restart with fewer ``--nodes``
removes the extra ones.

The :class:`Kubelet` controller drives pods bound to these nodes through
:mod:`~syrup.cluster.workloads.lifecycle`, writing pod status as field manager ``kubelet``.
Capacity is generous (1000 pods, 64 CPUs, 256 GiB per node) because a local cluster's nodes
stand for a whole cluster's worth of machines; pod IPs come from the node's ``podCIDR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import lifecycle, objects, pulls, runtime, settings

Obj = dict[str, Any]

SIMULATED_LABEL = "workloads.syrup.dev/simulated"
KUBELET = "kubelet"
LEASE_NAMESPACE = "kube-node-lease"
#: Matches the version the API server reports (``syrup.cluster.server.KUBE_VERSION``).
KUBELET_VERSION = "v1.37.0"
CAPACITY = {
    "cpu": "64",
    "memory": "256Gi",
    "pods": "1000",
    "ephemeral-storage": "500Gi",
    "hugepages-2Mi": "0",
}
_MIN_HEARTBEAT_REAL = 2.0


def node_name(index: int) -> str:
    return f"syrup-node-{index + 1}"


def node_index(name: str) -> int | None:
    prefix = "syrup-node-"
    if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
        return None
    return int(name[len(prefix) :]) - 1


def pod_cidr(index: int) -> ipaddress.IPv4Network:
    """A /22 per node inside 10.244.0.0/16 (about a thousand pod IPs each)."""
    return ipaddress.IPv4Network(f"10.244.{(index * 4) % 256}.0/22")


def host_ip(index: int) -> str:
    return str(ipaddress.IPv4Address("172.18.0.2") + index)


def node_object(index: int) -> Obj:
    """The Node a simulated kubelet registers (metadata and spec)."""
    name = node_name(index)
    cidr = str(pod_cidr(index))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "syrup-simulated",
                SIMULATED_LABEL: "true",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "providerID": f"syrup://{name}"},
    }


def node_status(index: int, *, now: str, previous: Obj | None) -> Obj:
    """A healthy node's status; transition times survive heartbeats."""
    conds: list[Obj] = list((previous or {}).get("conditions") or [])
    healthy = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    out: list[Obj] = []
    for ctype, cstatus, reason, message in healthy:
        old = next((c for c in conds if c.get("type") == ctype), None)
        changed = old is None or old.get("status") != cstatus
        out.append(
            {
                "type": ctype,
                "status": cstatus,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),  # type: ignore[union-attr]  # changed is False only when old exists
            }
        )
    name = node_name(index)
    return {
        "capacity": dict(CAPACITY),
        "allocatable": dict(CAPACITY),
        "conditions": out,
        "addresses": [
            {"type": "InternalIP", "address": host_ip(index)},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": objects.fnv32a(name.encode()).to_bytes(4, "big").hex() * 4,
            "systemUUID": f"{objects.fnv32a(name.encode()):08x}-0000-4000-8000-000000000000",
            "bootID": f"{objects.fnv32a(b'boot' + name.encode()):08x}-0000-4000-8000-000000000000",
            "kernelVersion": "6.1.0-syrup",
            "osImage": "Syrup simulated node",
            "containerRuntimeVersion": "containerd://1.7.13",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": [],
    }


class Kubelet(runtime.Controller):
    """Registers the simulated nodes and runs the pods bound to them."""

    name = "kubelet"
    workers = 4

    def setup(self) -> None:
        self.pods = self.ctx.informer("", "v1", "pods")
        self.pods.subscribe(self._on_pod)
        self.puller = pulls.Puller(self.ctx.settings.registries)
        self.count = self.ctx.settings.nodes
        self.runs: dict[str, tuple[lifecycle.Run, float]] = {}
        self.ips: dict[str, str] = {}
        self.used_ips: set[str] = set()
        self._next_ip: dict[int, int] = {}
        self.present: dict[str, set[str]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def resync_keys(self) -> list[runtime.Key]:
        """Pods on these nodes that are still alive (their next step may be due)."""
        return [
            (objects.namespace(p), objects.name(p))
            for p in self.pods.items()
            if self._ours(p) is not None
            and objects.status(p).get("phase") not in ("Succeeded", "Failed")
        ]

    def _ours(self, pod: Obj) -> int | None:
        index = node_index(str(objects.spec(pod).get("nodeName") or ""))
        return index if index is not None and index < self.count else None

    def _on_pod(self, etype: str, pod: Obj) -> None:
        if self._ours(pod) is None:
            return
        uid = objects.uid(pod)
        if etype == "DELETED":
            self.runs.pop(uid, None)
            ip = self.ips.pop(uid, None)
            if ip:
                self.used_ips.discard(ip)
            if objects.status(pod).get("phase") not in ("Succeeded", "Failed"):
                task = asyncio.get_running_loop().create_task(self._killed(pod))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        ip = objects.status(pod).get("podIP")
        if ip and uid not in self.ips:
            self.ips[uid] = str(ip)
            self.used_ips.add(str(ip))
        self.enqueue((objects.namespace(pod), objects.name(pod)))

    async def _killed(self, pod: Obj) -> None:
        for c in lifecycle.containers(pod):
            await self.ctx.recorder.record(
                pod,
                reason="Killing",
                message=f"Stopping container {c.get('name')}",
                component=KUBELET,
                host=str(objects.spec(pod).get("nodeName")),
            )

    async def startup(self) -> None:
        """Register nodes (and remove simulated ones beyond ``--nodes``), start heartbeats."""
        nodes_rt = self.ctx.rt("", "v1", "nodes")
        for index in range(self.count):
            await self._register(index)
        existing, _ = await self.store.list(nodes_rt, label_selector=f"{SIMULATED_LABEL}=true")
        for node in existing:
            position = node_index(objects.name(node))
            if position is None or position >= self.count:
                await runtime.ignore_missing(self.store.delete(nodes_rt, None, objects.name(node)))
                self.log.info("removed simulated node", node=objects.name(node))
        await self._collect_orphans()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _collect_orphans(self) -> None:
        """Delete pods bound to simulated nodes that no longer exist, as the pod GC does."""
        pods_rt = self.ctx.rt("", "v1", "pods")
        for pod in self.pods.items():
            index = node_index(str(objects.spec(pod).get("nodeName") or ""))
            if index is None or index < self.count:
                continue
            await runtime.ignore_missing(
                self.store.delete(
                    pods_rt,
                    objects.namespace(pod),
                    objects.name(pod),
                    preconditions={"uid": objects.uid(pod)},
                )
            )
            self.log.info(
                "deleted pod of a removed node",
                namespace=objects.namespace(pod),
                name=objects.name(pod),
                node=objects.spec(pod).get("nodeName"),
            )

    async def _register(self, index: int) -> None:
        nodes_rt = self.ctx.rt("", "v1", "nodes")
        name = node_name(index)
        try:
            node = await self.store.get(nodes_rt, None, name)
        except syrup_errors.NotFound:
            node = await self.store.create(nodes_rt, node_object(index), field_manager=KUBELET)
            self.log.info("registered node", node=name)
        status = node_status(index, now=self.clock.stamp(), previous=objects.status(node))
        await runtime.write_status(self.store, nodes_rt, node, status, manager=KUBELET)
        await self._renew_lease(name)

    async def _renew_lease(self, name: str) -> None:
        rt = self.ctx.rt("coordination.k8s.io", "v1", "leases")
        now = self.clock.wall()
        micro = self._micro(now)
        try:
            lease = await self.store.get(rt, LEASE_NAMESPACE, name)
            lease.setdefault("spec", {})["renewTime"] = micro
            await self.store.update(rt, lease, field_manager=KUBELET)
        except syrup_errors.NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 40,
                    "renewTime": micro,
                },
            }
            with contextlib.suppress(errors.AlreadyExists):
                await self.store.create(rt, body, field_manager=KUBELET)

    @staticmethod
    def _micro(at: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def _beat(self) -> None:
        period = max(self.clock.real(settings.HEARTBEAT_SECONDS), _MIN_HEARTBEAT_REAL)
        beats = 0
        while True:
            await asyncio.sleep(period)
            beats += 1
            for index in range(self.count):
                try:
                    await self._renew_lease(node_name(index))
                    # The node status itself is refreshed less often, as kubelets do.
                    if beats % 6 == 0:
                        await self._register(index)
                except syrup_errors.SyrupError as exc:
                    self.log.warning("heartbeat failed", node=node_name(index), error=str(exc))

    def _ip_for(self, pod: Obj, index: int) -> str:
        uid = objects.uid(pod)
        known = self.ips.get(uid) or objects.status(pod).get("podIP")
        if known:
            return str(known)
        network = pod_cidr(index)
        size = network.num_addresses
        start = self._next_ip.get(index, 2)  # .0 is the network, .1 the node's bridge
        for step in range(size - 3):
            offset = 2 + (start - 2 + step) % (size - 3)
            text = str(network.network_address + offset)
            if text.endswith(".0") or text.endswith(".255") or text in self.used_ips:
                continue
            self._next_ip[index] = offset + 1
            self.used_ips.add(text)
            self.ips[uid] = text
            return text
        raise syrup_errors.Unavailable(f"node {node_name(index)} has no free pod IPs")

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("", "v1", "pods")
        try:
            pod = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        index = self._ours(pod)
        if index is None or objects.deleting(pod):
            return None
        uid = objects.uid(pod)
        mono = self.clock.monotonic()
        remembered = self.runs.get(uid)
        if remembered is None:
            run = lifecycle.recover(pod)
            since = mono
            elapsed = 0.0
        else:
            run, since = remembered
            elapsed = self.clock.sim(mono - since)
        if run.stage in lifecycle.TERMINAL and objects.status(pod).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            return None

        node = node_name(index)
        present = self.present.setdefault(node, set())
        pull_time = lifecycle.pull_seconds(pod, present)
        pull = None
        if run.stage is lifecycle.Stage.PULLING and elapsed >= pull_time + settings.START_SECONDS:
            pull = await self._pull(pod, present)

        step = lifecycle.advance(
            pod,
            run,
            elapsed=elapsed,
            pull=pull,
            pull_time=pull_time,
            now=self.clock.stamp(),
            pod_ip=self._ip_for(pod, index),
            host_ip=host_ip(index),
        )
        moved = (
            remembered is None
            or step.run.stage is not run.stage
            or step.run.init_index != run.init_index
            or step.run.restarts != run.restarts
        )
        self.runs[uid] = (step.run, mono if moved else since)
        written = await runtime.write_status(self.store, rt, pod, step.status, manager=KUBELET)
        if written is not None and step.run.stage is not run.stage:
            self.log.debug("pod stage", namespace=key[0], name=key[1], stage=step.run.stage.value)
        for type_, reason, message in step.events:
            await self.ctx.recorder.record(
                pod, reason=reason, message=message, component=KUBELET, type_=type_, host=node
            )
        if step.wait is None:
            return None
        return self.clock.real(step.wait) + 0.001

    async def _pull(self, pod: Obj, present: set[str]) -> lifecycle.Pull:
        for image in lifecycle.images_to_pull(pod, present):
            error = await self.puller.pull(image)
            if error:
                return lifecycle.Pull(image=image, error=error)
            present.add(image)
        return lifecycle.Pull()

    async def shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.puller.close()
