"""The scheduler: which simulated node a pending pod runs on.

A pure fit (:func:`choose`) in the spirit of kube-scheduler's filter and score phases, limited
to what a local cluster needs: ``nodeSelector``, required node affinity
(``nodeSelectorTerms`` ORed, ``matchExpressions`` In/NotIn/Exists/DoesNotExist/Gt/Lt and
``matchFields`` on ``metadata.name``), node ``unschedulable``, and resource requests
(cpu, memory, pods) against allocatable. Among fitting nodes the least requested wins, which
spreads replicas the way the default scoring mostly does. A pod that fits nowhere keeps
``PodScheduled=False`` (reason Unschedulable) with the same summary message kube-scheduler
writes, and a FailedScheduling event; it is retried whenever nodes or pods change and
periodically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster.workloads import events, objects, quantity, runtime

Obj = dict[str, Any]

MANAGER = "kube-scheduler"
SCHEDULER_NAME = "default-scheduler"
_RETRY_REAL_SECONDS = 2.0


@dataclass
class Usage:
    """What is already requested on a node."""

    cpu: float = 0.0
    memory: float = 0.0
    pods: int = 0


@dataclass(frozen=True)
class Verdict:
    node: str | None
    #: Why nodes were rejected: reason text → node count (for the FailedScheduling message).
    reasons: dict[str, int] = field(default_factory=dict)

    def message(self, total: int) -> str:
        parts = sorted(f"{count} {reason}" for reason, count in self.reasons.items())
        detail = ", ".join(parts)
        return f"0/{total} nodes are available: {detail}." if detail else f"0/{total} nodes."


def requests(pod: Mapping[str, Any]) -> tuple[float, float]:
    """(cpu cores, memory bytes) a pod requests: the sum of containers, or the largest init."""
    pspec = objects.spec(pod)

    def total(containers: Iterable[Any]) -> tuple[float, float]:
        cpu = mem = 0.0
        for c in containers:
            req = ((c or {}).get("resources") or {}).get("requests") or {}
            where = f"container {c.get('name')} resources.requests"
            cpu += quantity.parse(req.get("cpu", 0), where=where + ".cpu")
            mem += quantity.parse(req.get("memory", 0), where=where + ".memory")
        return cpu, mem

    cpu, mem = total(pspec.get("containers") or [])
    for init in pspec.get("initContainers") or []:
        icpu, imem = total([init])
        cpu, mem = max(cpu, icpu), max(mem, imem)
    return cpu, mem


def _expression_matches(expr: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    key, op = expr.get("key", ""), expr.get("operator", "")
    wanted = [str(v) for v in expr.get("values") or []]
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and wanted:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def affinity_matches(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """``nodeSelector`` and required node affinity (terms are ORed, expressions ANDed)."""
    pspec = objects.spec(pod)
    node_labels = objects.labels(node)
    for key, value in (pspec.get("nodeSelector") or {}).items():
        if node_labels.get(key) != value:
            return False
    required = (
        ((pspec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if not required:
        return True
    fields = {"metadata.name": objects.name(node)}
    for term in required:
        exprs = term.get("matchExpressions") or []
        field_exprs = term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue
        if all(_expression_matches(e, node_labels) for e in exprs) and all(
            _expression_matches(e, fields) for e in field_exprs
        ):
            return True
    return False


def choose(pod: Mapping[str, Any], nodes: list[Obj], usage: Mapping[str, Usage]) -> Verdict:
    """The node ``pod`` should run on, or why none fits."""
    cpu, mem = requests(pod)
    reasons: dict[str, int] = {}
    best: tuple[float, str] | None = None
    for node in nodes:
        node_name = objects.name(node)
        alloc = objects.status(node).get("allocatable") or {}
        used = usage.get(node_name, Usage())
        problem = None
        if objects.spec(node).get("unschedulable"):
            problem = "node(s) were unschedulable"
        elif not affinity_matches(pod, node):
            problem = "node(s) didn't match Pod's node affinity/selector"
        elif used.pods + 1 > quantity.parse(alloc.get("pods", 110)):
            problem = "Too many pods"
        elif used.cpu + cpu > quantity.parse(alloc.get("cpu", 0)) + 1e-9:
            problem = "Insufficient cpu"
        elif used.memory + mem > quantity.parse(alloc.get("memory", 0)) + 1e-9:
            problem = "Insufficient memory"
        if problem is not None:
            reasons[problem] = reasons.get(problem, 0) + 1
            continue
        cap_cpu = quantity.parse(alloc.get("cpu", 1)) or 1.0
        cap_mem = quantity.parse(alloc.get("memory", 1)) or 1.0
        cap_pods = quantity.parse(alloc.get("pods", 110)) or 1.0
        load = (
            (used.cpu + cpu) / cap_cpu + (used.memory + mem) / cap_mem + (used.pods + 1) / cap_pods
        )
        if best is None or (load, node_name) < best:
            best = (load, node_name)
    return Verdict(node=best[1] if best else None, reasons=reasons)


class Scheduler(runtime.Controller):
    """Binds pending pods to nodes; see the module docstring."""

    name = "scheduler"
    workers = 1

    def setup(self) -> None:
        self.pods = self.ctx.informer("", "v1", "pods")
        self.nodes = self.ctx.informer("", "v1", "nodes")
        self.pods.subscribe(self._on_pod)
        self.nodes.subscribe(self._on_node)
        self._pending: set[tuple[str, str]] = set()
        #: Requests per node, kept up to date from pod events (and bindings made here).
        self.usage: dict[str, Usage] = {}
        self._counted: dict[tuple[str, str], tuple[str, float, float]] = {}

    def _account(self, key: tuple[str, str], pod: Obj | None) -> None:
        """Move ``pod``'s requests to the node it is bound to now (or release them)."""
        before = self._counted.pop(key, None)
        if before is not None:
            used = self.usage[before[0]]
            used.cpu -= before[1]
            used.memory -= before[2]
            used.pods -= 1
        if pod is None:
            return
        node = objects.spec(pod).get("nodeName")
        if not node or objects.status(pod).get("phase") in ("Succeeded", "Failed"):
            return
        try:
            cpu, mem = requests(pod)
        except syrup_errors.InvalidInput:
            cpu = mem = 0.0
        used = self.usage.setdefault(str(node), Usage())
        used.cpu += cpu
        used.memory += mem
        used.pods += 1
        self._counted[key] = (str(node), cpu, mem)

    def _on_pod(self, etype: str, pod: Obj) -> None:
        key = (objects.namespace(pod), objects.name(pod))
        self._account(key, None if etype == "DELETED" else pod)
        if etype == "DELETED":
            self._pending.discard(key)
            # Freed capacity may let a waiting pod in.
            for waiting in list(self._pending):
                self.enqueue(waiting)
            return
        if objects.spec(pod).get("nodeName") or objects.deleting(pod):
            self._pending.discard(key)
            return
        if (objects.spec(pod).get("schedulerName") or SCHEDULER_NAME) != SCHEDULER_NAME:
            return
        self._pending.add(key)
        self.enqueue(key)

    def _on_node(self, etype: str, node: Obj) -> None:
        for waiting in list(self._pending):
            self.enqueue(waiting)

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("", "v1", "pods")
        try:
            pod = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.spec(pod).get("nodeName") or objects.deleting(pod):
            return None
        nodes = sorted(self.nodes.items(), key=objects.name)
        try:
            verdict = choose(pod, nodes, self.usage)
        except syrup_errors.InvalidInput as exc:
            verdict = Verdict(node=None, reasons={str(exc): len(nodes)})
        now = self.clock.stamp()
        if verdict.node is None:
            message = verdict.message(len(nodes))
            conds = objects.set_condition(
                list(objects.status(pod).get("conditions") or []),
                "PodScheduled",
                "False",
                reason="Unschedulable",
                message=message,
                now=now,
                probe_time=True,
            )
            new_status = {**objects.status(pod), "phase": "Pending", "conditions": conds}
            if await runtime.write_status(self.store, rt, pod, new_status, manager=MANAGER):
                await self.ctx.recorder.record(
                    pod,
                    reason="FailedScheduling",
                    message=message,
                    component=SCHEDULER_NAME,
                    type_=events.WARNING,
                )
                self.log.info("pod unschedulable", namespace=key[0], name=key[1], why=message)
            return _RETRY_REAL_SECONDS

        # Bind: what the binding subresource does, then the PodScheduled condition.
        bound = await self.store.patch(
            rt, key[0], key[1], {"spec": {"nodeName": verdict.node}}, field_manager=MANAGER
        )
        self._account(key, bound)
        conds = objects.set_condition(
            list(objects.status(bound).get("conditions") or []),
            "PodScheduled",
            "True",
            reason="",
            message="",
            now=now,
            probe_time=True,
        )
        new_status = {**objects.status(bound), "phase": "Pending", "conditions": conds}
        await runtime.write_status(self.store, rt, bound, new_status, manager=MANAGER)
        await self.ctx.recorder.record(
            pod,
            reason="Scheduled",
            message=f"Successfully assigned {key[0]}/{key[1]} to {verdict.node}",
            component=SCHEDULER_NAME,
        )
        return None
