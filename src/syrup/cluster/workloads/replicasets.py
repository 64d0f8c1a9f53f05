"""The ReplicaSet controller: keep ``spec.replicas`` pods alive and report how many are ready.

Pods are matched by the set's selector and owned through a controller ``ownerReference``;
surplus pods are deleted in the order the real controller prefers (unscheduled before
scheduled, pending before running, not ready before ready, restarting before stable, newer
before older). ``availableReplicas`` counts pods Ready for at least ``minReadySeconds``
(scaled by speed). Creating and deleting reads fresh state from storage every time, so a
restarted server never duplicates pods. Events match the real controller's
(``SuccessfulCreate``, ``SuccessfulDelete``).
"""

from __future__ import annotations

from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import objects, runtime

Obj = dict[str, Any]

COMPONENT = "replicaset-controller"
_BURST = 500
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: Obj) -> bool:
    return objects.status(pod).get("phase") not in ("Succeeded", "Failed") and not objects.deleting(
        pod
    )


def ready_since(pod: Obj) -> str | None:
    """When the pod became Ready, or None when it is not Ready."""
    cond = objects.condition(objects.status(pod), "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return str(cond.get("lastTransitionTime") or "")


def available(pod: Obj, *, min_ready_real: float, now: float) -> tuple[bool, float | None]:
    """(available now, wall seconds until it will be) for a pod under ``minReadySeconds``."""
    since = ready_since(pod)
    if since is None:
        return False, None
    if min_ready_real <= 0:
        return True, None
    from syrup.cluster.workloads.settings import Clock

    began = Clock.parse(since) or now
    left = began + min_ready_real - now
    return (left <= 0), (left if left > 0 else None)


def deletion_rank(pod: Obj) -> tuple[int, int, int, int, str]:
    """Sort key: the pods to delete first come first."""
    pspec, st = objects.spec(pod), objects.status(pod)
    restarts = sum(int(s.get("restartCount") or 0) for s in st.get("containerStatuses") or [])
    return (
        1 if pspec.get("nodeName") else 0,
        _PHASE_RANK.get(str(st.get("phase") or "Pending"), 0),
        1 if ready_since(pod) is not None else 0,
        -restarts,
        _invert(str(objects.meta(pod).get("creationTimestamp") or "")),
    )


def _invert(stamp: str) -> str:
    """Newer timestamps first when sorted ascending."""
    return "".join(chr(255 - ord(ch)) for ch in stamp)


def pod_from_template(owner: Obj, template: Obj, *, generate_name: str) -> Obj:
    """A pod for ``owner`` built from its pod template, owned by it."""
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": generate_name,
        "namespace": objects.namespace(owner),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [objects.owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": objects.deep_copy(template.get("spec") or {}),
    }


async def create_pod(ctx: runtime.Context, owner: Obj, pod: Obj, *, component: str) -> Obj:
    """Create one pod (retrying a generated-name clash) and record SuccessfulCreate."""
    rt = ctx.rt("", "v1", "pods")
    for _ in range(5):
        try:
            created = await ctx.store.create(
                rt, objects.deep_copy(pod), field_manager=objects.MANAGER
            )
            ctx.informer("", "v1", "pods").remember(created)
            break
        except errors.AlreadyExists:
            continue
    else:
        raise syrup_errors.Unavailable("could not find a free generated pod name")
    await ctx.recorder.record(
        owner,
        reason="SuccessfulCreate",
        message=f"Created pod: {objects.name(created)}",
        component=component,
    )
    return created


async def delete_pod(ctx: runtime.Context, owner: Obj, pod: Obj, *, component: str) -> None:
    rt = ctx.rt("", "v1", "pods")
    gone = await runtime.ignore_missing(
        ctx.store.delete(
            rt, objects.namespace(pod), objects.name(pod), preconditions={"uid": objects.uid(pod)}
        )
    )
    if gone is not None:
        pods = ctx.informer("", "v1", "pods")
        if objects.deleting(gone):
            pods.remember(gone)
        else:
            pods.forget(gone)
        await ctx.recorder.record(
            owner,
            reason="SuccessfulDelete",
            message=f"Deleted pod: {objects.name(pod)}",
            component=component,
        )


async def owned_pods(ctx: runtime.Context, owner: Obj, selector: Obj | None) -> list[Obj]:
    """Pods ``owner`` controls that its selector matches, from the write-through cache."""
    if not objects.selector_text(selector):
        return []
    owned = ctx.informer("", "v1", "pods").owned_by(objects.uid(owner))
    return [p for p in owned if objects.selects(selector, p)]


class ReplicaSets(runtime.Controller):
    """See the module docstring."""

    name = "replicaset"
    workers = 2
    primary = ("apps", "v1", "replicasets")

    def setup(self) -> None:
        self.ctx.informer("apps", "v1", "replicasets").subscribe(self._on_rs)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)

    def _on_rs(self, etype: str, rs: Obj) -> None:
        if etype != "DELETED":
            self.enqueue((objects.namespace(rs), objects.name(rs)))

    def _on_pod(self, etype: str, pod: Obj) -> None:
        key = objects.owner_key(pod, "ReplicaSet")
        if key is not None:
            self.enqueue(key)

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("apps", "v1", "replicasets")
        try:
            rs = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(rs):
            return None
        rspec = objects.spec(rs)
        want = int(rspec.get("replicas", 1) or 0)
        pods = await owned_pods(self.ctx, rs, rspec.get("selector"))
        active = [p for p in pods if is_active(p)]

        # Converge the pod count: create the missing, delete the surplus.
        diff = len(active) - want
        if diff < 0:
            template = rspec.get("template") or {}
            for _ in range(min(-diff, _BURST)):
                pod = pod_from_template(rs, template, generate_name=f"{objects.name(rs)}-")
                active.append(await create_pod(self.ctx, rs, pod, component=COMPONENT))
        elif diff > 0:
            doomed = sorted(active, key=deletion_rank)[:diff]
            for pod in doomed:
                await delete_pod(self.ctx, rs, pod, component=COMPONENT)
            gone = {objects.uid(p) for p in doomed}
            active = [p for p in active if objects.uid(p) not in gone]

        # Report what exists now.
        min_ready = self.clock.real(float(rspec.get("minReadySeconds") or 0))
        now = self.clock.wall()
        ready = avail = 0
        waits: list[float] = []
        tlabels = ((rspec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        labelled = 0
        for pod in active:
            if ready_since(pod) is not None:
                ready += 1
            ok, left = available(pod, min_ready_real=min_ready, now=now)
            avail += ok
            if left is not None:
                waits.append(left)
            plabels = objects.labels(pod)
            labelled += all(plabels.get(k) == v for k, v in tlabels.items())
        new_status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": labelled,
            "readyReplicas": ready,
            "availableReplicas": avail,
            "observedGeneration": objects.generation(rs),
        }
        new_status = {k: v for k, v in new_status.items() if v}
        new_status.setdefault("replicas", 0)
        await runtime.write_status(self.store, rt, rs, new_status, manager=objects.MANAGER)
        return min(waits) + 0.01 if waits else None


def event_for_scale(old: int, new: int, rs_name: str) -> tuple[str, str]:
    direction = "up" if new > old else "down"
    return "ScalingReplicaSet", f"Scaled {direction} replica set {rs_name} to {new} from {old}"
