"""The Deployment controller: ReplicaSets per pod template, rollouts, history and status.

Each reconcile finds the Deployment's ReplicaSets (owned through a controller reference), picks
the one whose template equals the Deployment's (ignoring ``pod-template-hash``) as the new one or
creates it as ``<name>-<hash>``, numbers revisions with ``deployment.kubernetes.io/revision``
(a rollback re-numbers the old set, as ``kubectl rollout undo`` expects), then takes one step of
the strategy: RollingUpdate within ``maxSurge``/``maxUnavailable`` (:mod:`.rollout`), or
Recreate (old pods gone before the new set scales up). Paused Deployments get status only.
Old sets beyond ``revisionHistoryLimit`` that are scaled to zero are deleted.

Status is written as the real controller writes it, so ``kubectl rollout status`` reads it the
same way: ``observedGeneration``, replica counts (zeros omitted), ``Available`` and
``Progressing`` conditions; a rollout that makes no progress within
``progressDeadlineSeconds`` (scaled by speed) turns ``Progressing`` False with reason
``ProgressDeadlineExceeded``.
"""

from __future__ import annotations

from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import events, objects, replicasets, rollout, runtime

Obj = dict[str, Any]

COMPONENT = "deployment-controller"
_SKIP_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    rollout.REVISION,
    "deployment.kubernetes.io/revision-history",
    rollout.DESIRED,
    rollout.MAX_REPLICAS,
)


class Deployments(runtime.Controller):
    """See the module docstring."""

    name = "deployment"
    workers = 2
    primary = ("apps", "v1", "deployments")

    def setup(self) -> None:
        self.ctx.informer("apps", "v1", "deployments").subscribe(self._on_deployment)
        self.ctx.informer("apps", "v1", "replicasets").subscribe(self._on_rs)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)
        #: Wall time of the last observed progress per Deployment uid (finer than timestamps).
        self.progress_at: dict[str, float] = {}

    def _on_deployment(self, etype: str, d: Obj) -> None:
        if etype == "DELETED":
            self.progress_at.pop(objects.uid(d), None)
            return
        self.enqueue((objects.namespace(d), objects.name(d)))

    def _on_rs(self, etype: str, rs: Obj) -> None:
        key = objects.owner_key(rs, "Deployment")
        if key is not None:
            self.enqueue(key)

    def _on_pod(self, etype: str, pod: Obj) -> None:
        # Recreate waits for old pods to disappear; a pod deletion is its signal.
        if etype != "DELETED":
            return
        rs_key = objects.owner_key(pod, "ReplicaSet")
        if rs_key is None:
            return
        rs = self.ctx.informer("apps", "v1", "replicasets").cache.get(rs_key)
        if rs is not None:
            key = objects.owner_key(rs, "Deployment")
            if key is not None:
                self.enqueue(key)

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("apps", "v1", "deployments")
        try:
            d = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(d):
            return None
        log = self.log.bind(namespace=key[0], name=key[1])
        dspec = objects.spec(d)
        all_rs = self._sets(d)
        new_rs = next((rs for rs in all_rs if rollout.same_template(rs, d)), None)
        old_rs = [rs for rs in all_rs if rs is not new_rs]
        paused = bool(dspec.get("paused"))
        recreate = (dspec.get("strategy") or {}).get("type") == "Recreate"
        created_new = False

        if paused or rollout.is_scaling_event(d, all_rs):
            # A paused Deployment, or one whose replicas changed, is only resized (the
            # controller's "sync"): no new template is rolled out in this step.
            targets = rollout.scale_targets(d, new_rs, old_rs)
            for rs in all_rs:
                await self._scale(d, rs, targets[objects.name(rs)])
            if not paused:
                self.enqueue(key)
        else:
            # Recreate: the new set appears only once the old pods are gone.
            old_running = await self._old_pods_running(d, old_rs) if recreate else 0
            if new_rs is None and not (
                recreate and (old_running or any(rollout.replicas_of(rs) for rs in old_rs))
            ):
                new_rs = await self._create_new_rs(d, all_rs, recreate=recreate)
                created_new = new_rs is not None
                if new_rs is not None:
                    all_rs.append(new_rs)
            if new_rs is not None:
                new_rs = await self._sync_revision(d, new_rs, old_rs)
                all_rs = [new_rs if objects.uid(rs) == objects.uid(new_rs) else rs for rs in all_rs]
            await self._sync_deployment_revision(d, new_rs)
            if recreate:
                await self._recreate(d, new_rs, old_rs, old_running)
            elif new_rs is not None:
                await self._rolling(d, new_rs, old_rs, all_rs)
            await self._cleanup(d, old_rs)

        # Status from what the sets report now.
        all_rs = self._sets(d)
        new_rs = next((rs for rs in all_rs if rollout.same_template(rs, d)), None)
        d = await self.store.get(rt, *key)
        wait = await self._write_status(d, new_rs, all_rs, created_new=created_new, paused=paused)
        log.debug("reconciled", sets=len(all_rs))
        return wait

    def _sets(self, d: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets (by controller reference) from the write-through cache."""
        owned = self.ctx.informer("apps", "v1", "replicasets").owned_by(objects.uid(d))
        return [rs for rs in owned if not objects.deleting(rs)]

    def _remember(self, rs: Obj) -> Obj:
        self.ctx.informer("apps", "v1", "replicasets").remember(rs)
        return rs

    async def _old_pods_running(self, d: Obj, old_rs: list[Obj]) -> int:
        count = 0
        for rs in old_rs:
            pods = await replicasets.owned_pods(self.ctx, rs, objects.spec(rs).get("selector"))
            count += sum(
                1 for p in pods if objects.status(p).get("phase") not in ("Succeeded", "Failed")
            )
        return count

    async def _create_new_rs(self, d: Obj, all_rs: list[Obj], *, recreate: bool) -> Obj | None:
        dspec = objects.spec(d)
        collisions = int(objects.status(d).get("collisionCount") or 0)
        template = objects.deep_copy(dspec.get("template") or {})
        phash = objects.template_hash(template, collisions)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), rollout.HASH_LABEL: phash}
        selector = objects.deep_copy(dspec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), rollout.HASH_LABEL: phash}
        revision = max((rollout.revision_of(rs) for rs in all_rs), default=0) + 1
        want = rollout.replicas_of(d)
        posts = rollout.fenceposts(d)
        if recreate:
            start = want
        else:
            total = sum(rollout.replicas_of(rs) for rs in all_rs)
            start = max(min(want + posts.surge - total, want), 0)
        annotations = {
            k: v for k, v in objects.annotations_of(d).items() if k not in _SKIP_ANNOTATIONS
        }
        annotations.update(
            {
                rollout.REVISION: str(revision),
                rollout.DESIRED: str(want),
                rollout.MAX_REPLICAS: str(want + posts.surge),
            }
        )
        body: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{objects.name(d)}-{phash}",
                "namespace": objects.namespace(d),
                "labels": dict(tmeta["labels"]),
                "annotations": annotations,
                "ownerReferences": [objects.owner_ref(d)],
            },
            "spec": {
                "replicas": start,
                "minReadySeconds": int(dspec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        rs_rt = self.ctx.rt("apps", "v1", "replicasets")
        try:
            created = self._remember(
                await self.store.create(rs_rt, body, field_manager=objects.MANAGER)
            )
        except errors.AlreadyExists:
            existing = await self.store.get(rs_rt, objects.namespace(d), body["metadata"]["name"])
            if objects.controlled_by(existing, objects.uid(d)) and rollout.same_template(
                existing, d
            ):
                return existing
            # A hash collision: count it so the next name differs (as the real controller does).
            d_rt = self.ctx.rt("apps", "v1", "deployments")
            st = {**objects.status(d), "collisionCount": collisions + 1}
            await runtime.write_status(self.store, d_rt, d, st, manager=objects.MANAGER)
            return None
        self.log.info(
            "created replica set",
            namespace=objects.namespace(d),
            name=objects.name(d),
            replicaset=objects.name(created),
            revision=revision,
        )
        if start:
            await self._scale_event(d, objects.name(created), 0, start)
        return created

    async def _sync_revision(self, d: Obj, new_rs: Obj, old_rs: list[Obj]) -> Obj:
        """The new set carries the highest revision (a rollback renumbers an old template)."""
        highest = max((rollout.revision_of(rs) for rs in old_rs), default=0)
        if rollout.revision_of(new_rs) > highest:
            return new_rs
        rs_rt = self.ctx.rt("apps", "v1", "replicasets")
        patch = {"metadata": {"annotations": {rollout.REVISION: str(highest + 1)}}}
        patched = await self.store.patch(
            rs_rt,
            objects.namespace(new_rs),
            objects.name(new_rs),
            patch,
            field_manager=objects.MANAGER,
        )
        return self._remember(patched)

    async def _sync_deployment_revision(self, d: Obj, new_rs: Obj | None) -> None:
        if new_rs is None:
            return
        revision = str(rollout.revision_of(new_rs))
        if objects.annotations_of(d).get(rollout.REVISION) == revision:
            return
        d_rt = self.ctx.rt("apps", "v1", "deployments")
        patch = {"metadata": {"annotations": {rollout.REVISION: revision}}}
        await self.store.patch(
            d_rt, objects.namespace(d), objects.name(d), patch, field_manager=objects.MANAGER
        )

    async def _scale(self, d: Obj, rs: Obj, count: int) -> Obj:
        """Resize a set and record the sizes it was made for (the scaling-event markers)."""
        old = rollout.replicas_of(rs)
        posts = rollout.fenceposts(d)
        want = rollout.replicas_of(d)
        notes = objects.annotations_of(rs)
        current = (notes.get(rollout.DESIRED), notes.get(rollout.MAX_REPLICAS))
        if old == count and current == (str(want), str(want + posts.surge)):
            return rs
        rs_rt = self.ctx.rt("apps", "v1", "replicasets")
        patch = {
            "metadata": {
                "annotations": {
                    rollout.DESIRED: str(want),
                    rollout.MAX_REPLICAS: str(want + posts.surge),
                }
            },
            "spec": {"replicas": count},
        }
        scaled = self._remember(
            await self.store.patch(
                rs_rt, objects.namespace(rs), objects.name(rs), patch, field_manager=objects.MANAGER
            )
        )
        if old != count:
            await self._scale_event(d, objects.name(rs), old, count)
        return scaled

    async def _scale_event(self, d: Obj, rs_name: str, old: int, new: int) -> None:
        reason, message = replicasets.event_for_scale(old, new, rs_name)
        await self.ctx.recorder.record(d, reason=reason, message=message, component=COMPONENT)

    async def _rolling(self, d: Obj, new_rs: Obj, old_rs: list[Obj], all_rs: list[Obj]) -> None:
        target = rollout.new_rs_target(d, all_rs, new_rs)
        if target != rollout.replicas_of(new_rs):
            new_rs = await self._scale(d, new_rs, target)
            all_rs = [new_rs if objects.uid(rs) == objects.uid(new_rs) else rs for rs in all_rs]
        targets = rollout.old_rs_targets(d, all_rs, new_rs, old_rs)
        for rs in old_rs:
            want = targets[objects.name(rs)]
            if want != rollout.replicas_of(rs):
                await self._scale(d, rs, want)

    async def _recreate(
        self, d: Obj, new_rs: Obj | None, old_rs: list[Obj], old_running: int
    ) -> None:
        for rs in old_rs:
            if rollout.replicas_of(rs):
                await self._scale(d, rs, 0)
        if new_rs is not None and old_running == 0:
            await self._scale(d, new_rs, rollout.replicas_of(d))

    async def _cleanup(self, d: Obj, old_rs: list[Obj]) -> None:
        limit = objects.spec(d).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        idle = [
            rs
            for rs in old_rs
            if rollout.replicas_of(rs) == 0 and not int(objects.status(rs).get("replicas") or 0)
        ]
        extra = len(idle) - limit
        if extra <= 0:
            return
        rs_rt = self.ctx.rt("apps", "v1", "replicasets")
        for rs in sorted(idle, key=rollout.revision_of)[:extra]:
            gone = await runtime.ignore_missing(
                self.store.delete(
                    rs_rt, objects.namespace(rs), objects.name(rs), propagation_policy="Background"
                )
            )
            if gone is not None and not objects.deleting(gone):
                self.ctx.informer("apps", "v1", "replicasets").forget(gone)
            self.log.info(
                "deleted old replica set",
                namespace=objects.namespace(d),
                replicaset=objects.name(rs),
            )

    async def _write_status(
        self, d: Obj, new_rs: Obj | None, all_rs: list[Obj], *, created_new: bool, paused: bool
    ) -> float | None:
        d_rt = self.ctx.rt("apps", "v1", "deployments")
        old = objects.status(d)
        want = rollout.replicas_of(d)
        posts = rollout.fenceposts(d)
        counts = {
            "observedGeneration": objects.generation(d),
            "replicas": sum(int(objects.status(rs).get("replicas") or 0) for rs in all_rs),
            "updatedReplicas": int(objects.status(new_rs).get("replicas") or 0) if new_rs else 0,
            "readyReplicas": sum(
                int(objects.status(rs).get("readyReplicas") or 0) for rs in all_rs
            ),
            "availableReplicas": sum(
                int(objects.status(rs).get("availableReplicas") or 0) for rs in all_rs
            ),
        }
        total_spec = sum(rollout.replicas_of(rs) for rs in all_rs)
        counts["unavailableReplicas"] = max(total_spec - counts["availableReplicas"], 0)
        new: Obj = {k: v for k, v in counts.items() if v}
        if old.get("collisionCount"):
            new["collisionCount"] = old["collisionCount"]
        now = self.clock.stamp()
        conds = list(old.get("conditions") or [])
        if counts["availableReplicas"] >= want - posts.unavailable:
            conds = objects.set_condition(
                conds,
                "Available",
                "True",
                reason="MinimumReplicasAvailable",
                message="Deployment has minimum availability.",
                now=now,
                update_time=True,
            )
        else:
            conds = objects.set_condition(
                conds,
                "Available",
                "False",
                reason="MinimumReplicasUnavailable",
                message="Deployment does not have minimum availability.",
                now=now,
                update_time=True,
            )

        # Progressing, as the documented deployment status rules describe it.
        uid = objects.uid(d)
        wall = self.clock.wall()
        rs_name = objects.name(new_rs) if new_rs else ""
        current = objects.condition(old, "Progressing")
        deadline = objects.spec(d).get("progressDeadlineSeconds")
        deadline = 600 if deadline is None else int(deadline)
        wait: float | None = None
        if paused:
            conds = objects.set_condition(
                conds,
                "Progressing",
                "Unknown",
                reason="DeploymentPaused",
                message="Deployment is paused",
                now=now,
                update_time=True,
            )
        elif rollout.complete(d, new) and new_rs is not None:
            conds = objects.set_condition(
                conds,
                "Progressing",
                "True",
                reason="NewReplicaSetAvailable",
                message=f'ReplicaSet "{rs_name}" has successfully progressed.',
                now=now,
                update_time=True,
            )
            self.progress_at.pop(uid, None)
        elif created_new:
            conds = objects.set_condition(
                conds,
                "Progressing",
                "True",
                reason="NewReplicaSetCreated",
                message=f'Created new replica set "{rs_name}"',
                now=now,
                update_time=True,
            )
            self.progress_at[uid] = wall
        elif (
            current is None
            or (current.get("reason") == "DeploymentPaused")
            or rollout.progressed(old, new)
            or (objects.generation(d) > int(old.get("observedGeneration") or 0))
        ):
            reason = "FoundNewReplicaSet" if current is None else "ReplicaSetUpdated"
            message = (
                f'Found new replica set "{rs_name}"'
                if current is None
                else f'ReplicaSet "{rs_name}" is progressing.'
            )
            conds = _progressing_now(conds, reason, message, now)
            self.progress_at[uid] = wall
        elif current.get("reason") != "ProgressDeadlineExceeded":
            since = self.progress_at.get(uid)
            if since is None:
                since = self.clock.parse(str(current.get("lastUpdateTime") or "")) or wall
                self.progress_at[uid] = since
            left = since + self.clock.real(deadline) - wall
            if left <= 0:
                conds = objects.set_condition(
                    conds,
                    "Progressing",
                    "False",
                    reason="ProgressDeadlineExceeded",
                    message=f'ReplicaSet "{rs_name}" has timed out progressing.',
                    now=now,
                    update_time=True,
                )
                await self.ctx.recorder.record(
                    d,
                    reason="ProgressDeadlineExceeded",
                    message=f'ReplicaSet "{rs_name}" has timed out progressing.',
                    component=COMPONENT,
                    type_=events.WARNING,
                )
                self.log.warning(
                    "rollout exceeded its progress deadline",
                    namespace=objects.namespace(d),
                    name=objects.name(d),
                )
            else:
                wait = left + 0.01
        if wait is None and not paused and not rollout.complete(d, new):
            cond = objects.condition({"conditions": conds}, "Progressing")
            if cond is not None and cond.get("reason") != "ProgressDeadlineExceeded":
                since = self.progress_at.get(uid, wall)
                wait = max(since + self.clock.real(deadline) - wall, 0) + 0.01
        new["conditions"] = conds
        await runtime.write_status(self.store, d_rt, d, new, manager=objects.MANAGER)
        return wait


def _progressing_now(conds: list[Obj], reason: str, message: str, now: str) -> list[Obj]:
    """Progressing True with a fresh ``lastUpdateTime`` (progress resets the deadline)."""
    out = objects.set_condition(
        conds, "Progressing", "True", reason=reason, message=message, now=now, update_time=True
    )
    for cond in out:
        if cond.get("type") == "Progressing":
            cond["lastUpdateTime"] = now
    return out
