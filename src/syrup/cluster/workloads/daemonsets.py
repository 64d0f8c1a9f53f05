"""The DaemonSet controller: one pod on every node the pod template fits.

Eligibility uses the scheduler's ``nodeSelector``/node-affinity check; pods are bound to their
node directly (with the ``metadata.name`` node-affinity term the real controller adds) so the
scheduler leaves them alone. Pods carry ``controller-revision-hash`` and
``pod-template-generation``; a ``RollingUpdate`` replaces outdated pods at most
``maxUnavailable`` (default 1) at a time. Status fields match what ``kubectl rollout status``
reads (``desiredNumberScheduled``, ``updatedNumberScheduled``, ``numberAvailable``...).
"""

from __future__ import annotations

from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster.workloads import objects, replicasets, rollout, runtime, scheduling

Obj = dict[str, Any]

COMPONENT = "daemonset-controller"
REVISION_LABEL = "controller-revision-hash"


class DaemonSets(runtime.Controller):
    """See the module docstring."""

    name = "daemonset"
    workers = 1
    primary = ("apps", "v1", "daemonsets")

    def setup(self) -> None:
        self.nodes = self.ctx.informer("", "v1", "nodes")
        self._node_shapes: dict[str, tuple[dict[str, str], bool]] = {}
        self.sets = self.ctx.informer("apps", "v1", "daemonsets")
        self.sets.subscribe(self._on_set)
        self.nodes.subscribe(self._on_node)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)

    def _on_set(self, etype: str, ds: Obj) -> None:
        if etype != "DELETED":
            self.enqueue((objects.namespace(ds), objects.name(ds)))

    def _on_node(self, etype: str, node: Obj) -> None:
        # Heartbeats modify nodes all the time; only a change in what pods select on matters.
        name = objects.name(node)
        shape = (objects.labels(node), bool(objects.spec(node).get("unschedulable")))
        if etype == "DELETED":
            self._node_shapes.pop(name, None)
        elif self._node_shapes.get(name) == shape:
            return
        else:
            self._node_shapes[name] = shape
        for ds in self.sets.items():
            self.enqueue((objects.namespace(ds), objects.name(ds)))

    def _on_pod(self, etype: str, pod: Obj) -> None:
        key = objects.owner_key(pod, "DaemonSet")
        if key is not None:
            self.enqueue(key)

    def _pod(self, ds: Obj, node: str, revision: str) -> Obj:
        template = objects.deep_copy(objects.spec(ds).get("template") or {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {
            **(tmeta.get("labels") or {}),
            REVISION_LABEL: revision,
            "pod-template-generation": str(objects.generation(ds)),
        }
        pod = replicasets.pod_from_template(ds, template, generate_name=f"{objects.name(ds)}-")
        pspec = pod["spec"]
        pspec["nodeName"] = node
        affinity = pspec.setdefault("affinity", {})
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        }
        return pod

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("apps", "v1", "daemonsets")
        try:
            ds = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(ds):
            return None
        dspec = objects.spec(ds)
        template = dspec.get("template") or {}
        revision = objects.template_hash(template)
        probe = {"spec": template.get("spec") or {}}
        eligible = sorted(
            (objects.name(n) for n in self.nodes.items() if scheduling.affinity_matches(probe, n)),
        )
        pods = await replicasets.owned_pods(self.ctx, ds, dspec.get("selector"))
        active = [p for p in pods if replicasets.is_active(p)]
        by_node: dict[str, list[Obj]] = {}
        for pod in active:
            by_node.setdefault(str(objects.spec(pod).get("nodeName") or ""), []).append(pod)

        # One pod per eligible node; none elsewhere.
        for node in eligible:
            if node not in by_node:
                created = await replicasets.create_pod(
                    self.ctx, ds, self._pod(ds, node, revision), component=COMPONENT
                )
                by_node[node] = [created]
            for extra in by_node[node][1:]:
                await replicasets.delete_pod(self.ctx, ds, extra, component=COMPONENT)
        for node, node_pods in list(by_node.items()):
            if node not in eligible:
                for pod in node_pods:
                    await replicasets.delete_pod(self.ctx, ds, pod, component=COMPONENT)
                del by_node[node]

        # Rolling update within maxUnavailable.
        strategy = dspec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            budget = rollout.scaled_value(
                (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                len(eligible),
                round_up=False,
                where=f"daemonset {key[0]}/{key[1]} spec.updateStrategy.rollingUpdate"
                ".maxUnavailable",
            )
            budget = max(budget, 1)
            unavailable = sum(
                1
                for n in eligible
                if not any(replicasets.ready_since(p) for p in by_node.get(n, []))
            )
            for node in eligible:
                if unavailable >= budget:
                    break
                pod = by_node[node][0]
                if objects.labels(pod).get(REVISION_LABEL) != revision:
                    await replicasets.delete_pod(self.ctx, ds, pod, component=COMPONENT)
                    unavailable += 1

        pods = await replicasets.owned_pods(self.ctx, ds, dspec.get("selector"))
        active = [p for p in pods if replicasets.is_active(p)]
        scheduled = {str(objects.spec(p).get("nodeName")) for p in active}
        ready = sum(1 for p in active if replicasets.ready_since(p) is not None)
        updated = sum(1 for p in active if objects.labels(p).get(REVISION_LABEL) == revision)
        new: Obj = {
            "currentNumberScheduled": len(scheduled & set(eligible)),
            "desiredNumberScheduled": len(eligible),
            "numberMisscheduled": len(scheduled - set(eligible)),
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(len(eligible) - ready, 0),
            "updatedNumberScheduled": updated,
            "observedGeneration": objects.generation(ds),
        }
        new = {
            k: v
            for k, v in new.items()
            if v
            or k
            in (
                "currentNumberScheduled",
                "desiredNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            )
        }
        await runtime.write_status(self.store, rt, ds, new, manager=objects.MANAGER)
        return None
