"""The StatefulSet controller: ordinal pods, ordered or parallel, revisions and claims.

Pods are ``<set>-<ordinal>`` with the ``statefulset.kubernetes.io/pod-name``,
``apps.kubernetes.io/pod-index`` and ``controller-revision-hash`` labels, ``hostname`` and
``subdomain`` set, and one PersistentVolumeClaim per ``volumeClaimTemplates`` entry named
``<template>-<pod>`` (claims outlive the set unless ``persistentVolumeClaimRetentionPolicy``
says Delete). Templates are recorded as ControllerRevisions ``<set>-<hash>``.

``OrderedReady`` creates ordinal *n* only once 0…n-1 are Running and Ready and removes the
highest ordinal first, one at a time; ``Parallel`` does both at once. A ``RollingUpdate``
replaces pods from the highest ordinal down to ``partition``, one at a time, each once the rest
are Ready; ``OnDelete`` leaves pods alone. ``currentRevision`` becomes ``updateRevision`` when
every pod runs the update, which is what ``kubectl rollout status`` waits for.
"""

from __future__ import annotations

import contextlib
from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import objects, replicasets, runtime

Obj = dict[str, Any]

COMPONENT = "statefulset-controller"
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal(set_name: str, pod_name: str) -> int | None:
    prefix = f"{set_name}-"
    tail = pod_name[len(prefix) :] if pod_name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else None


def running_ready(pod: Obj) -> bool:
    return (
        objects.status(pod).get("phase") == "Running" and replicasets.ready_since(pod) is not None
    )


class StatefulSets(runtime.Controller):
    """See the module docstring."""

    name = "statefulset"
    workers = 2
    primary = ("apps", "v1", "statefulsets")

    def setup(self) -> None:
        self.ctx.informer("apps", "v1", "statefulsets").subscribe(self._on_set)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)

    def _on_set(self, etype: str, sts: Obj) -> None:
        if etype != "DELETED":
            self.enqueue((objects.namespace(sts), objects.name(sts)))

    def _on_pod(self, etype: str, pod: Obj) -> None:
        key = objects.owner_key(pod, "StatefulSet")
        if key is not None:
            self.enqueue(key)

    async def _revision(self, sts: Obj) -> str:
        """Name of the ControllerRevision for the current template, created when missing."""
        template = objects.spec(sts).get("template") or {}
        collisions = int(objects.status(sts).get("collisionCount") or 0)
        rev_name = f"{objects.name(sts)}-{objects.template_hash(template, collisions)}"
        rt = self.ctx.rt("apps", "v1", "controllerrevisions")
        existing, _ = await self.store.list(rt, objects.namespace(sts))
        owned = [r for r in existing if objects.controlled_by(r, objects.uid(sts))]
        if any(objects.name(r) == rev_name for r in owned):
            return rev_name
        number = max((int(r.get("revision") or 0) for r in owned), default=0) + 1
        body = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": rev_name,
                "namespace": objects.namespace(sts),
                "labels": {
                    **(objects.spec(sts).get("selector") or {}).get("matchLabels", {}),
                    REVISION_LABEL: rev_name,
                },
                "ownerReferences": [objects.owner_ref(sts)],
            },
            "data": {"spec": {"template": {**template, "$patch": "replace"}}},
            "revision": number,
        }
        with contextlib.suppress(errors.AlreadyExists):
            await self.store.create(rt, body, field_manager=objects.MANAGER)
        return rev_name

    def _pod(self, sts: Obj, index: int, revision: str) -> Obj:
        sspec = objects.spec(sts)
        template = objects.deep_copy(sspec.get("template") or {})
        pod_name = f"{objects.name(sts)}-{index}"
        pod = replicasets.pod_from_template(sts, template, generate_name="")
        meta = pod["metadata"]
        del meta["generateName"]
        meta["name"] = pod_name
        meta["labels"] = {
            **meta.get("labels", {}),
            REVISION_LABEL: revision,
            POD_NAME_LABEL: pod_name,
            POD_INDEX_LABEL: str(index),
        }
        pspec = pod["spec"]
        pspec["hostname"] = pod_name
        if sspec.get("serviceName"):
            pspec["subdomain"] = sspec["serviceName"]
        volumes = [v for v in pspec.get("volumes") or [] if isinstance(v, dict)]
        for claim in sspec.get("volumeClaimTemplates") or []:
            cname = (claim.get("metadata") or {}).get("name", "")
            volumes = [v for v in volumes if v.get("name") != cname]
            volumes.append(
                {"name": cname, "persistentVolumeClaim": {"claimName": f"{cname}-{pod_name}"}}
            )
        if volumes:
            pspec["volumes"] = volumes
        return pod

    async def _claims(self, sts: Obj, pod_name: str) -> None:
        sspec = objects.spec(sts)
        rt = self.ctx.rt("", "v1", "persistentvolumeclaims")
        retention = (sspec.get("persistentVolumeClaimRetentionPolicy") or {}).get(
            "whenDeleted", "Retain"
        )
        for claim in sspec.get("volumeClaimTemplates") or []:
            cmeta = claim.get("metadata") or {}
            body: Obj = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": f"{cmeta.get('name', '')}-{pod_name}",
                    "namespace": objects.namespace(sts),
                    "labels": {
                        **(cmeta.get("labels") or {}),
                        **((sspec.get("selector") or {}).get("matchLabels") or {}),
                    },
                },
                "spec": objects.deep_copy(claim.get("spec") or {}),
            }
            if cmeta.get("annotations"):
                body["metadata"]["annotations"] = dict(cmeta["annotations"])
            if retention == "Delete":
                body["metadata"]["ownerReferences"] = [objects.owner_ref(sts, controller=False)]
            try:
                await self.store.create(rt, body, field_manager=objects.MANAGER)
                await self.ctx.recorder.record(
                    sts,
                    reason="SuccessfulCreate",
                    message=f"create Claim {body['metadata']['name']} Pod {pod_name} in "
                    f"StatefulSet {objects.name(sts)} success",
                    component=COMPONENT,
                )
            except errors.AlreadyExists:
                pass

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("apps", "v1", "statefulsets")
        try:
            sts = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(sts):
            return None
        sspec = objects.spec(sts)
        want = int(sspec.get("replicas", 1) if sspec.get("replicas") is not None else 1)
        parallel = sspec.get("podManagementPolicy") == "Parallel"
        strategy = sspec.get("updateStrategy") or {}
        update_revision = await self._revision(sts)
        old = objects.status(sts)
        current_revision = str(old.get("currentRevision") or update_revision)

        pods = await replicasets.owned_pods(self.ctx, sts, sspec.get("selector"))
        by_ordinal: dict[int, Obj] = {}
        for found in pods:
            index = ordinal(key[1], objects.name(found))
            if index is not None:
                by_ordinal[index] = found

        # Replace failed pods and create missing ones, in order unless Parallel.
        for index in range(want):
            pod: Obj | None = by_ordinal.get(index)
            if (
                pod is not None
                and objects.status(pod).get("phase") in ("Failed", "Succeeded")
                and not objects.deleting(pod)
            ):
                await replicasets.delete_pod(self.ctx, sts, pod, component=COMPONENT)
                by_ordinal.pop(index)
                pod = None
            if pod is None:
                revision = (
                    current_revision
                    if index < int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
                    else update_revision
                )
                await self._claims(sts, f"{key[1]}-{index}")
                created = await self.store.create(
                    self.ctx.rt("", "v1", "pods"),
                    self._pod(sts, index, revision),
                    field_manager=objects.MANAGER,
                )
                self.ctx.informer("", "v1", "pods").remember(created)
                await self.ctx.recorder.record(
                    sts,
                    reason="SuccessfulCreate",
                    message=f"create Pod {objects.name(created)} in StatefulSet {key[1]} "
                    "successful",
                    component=COMPONENT,
                )
                by_ordinal[index] = created
                if not parallel:
                    break
            elif not parallel and not running_ready(pod):
                break

        # Scale down from the highest ordinal.
        all_ready = all(running_ready(p) for i, p in by_ordinal.items() if i < want)
        for index in sorted((i for i in by_ordinal if i >= want), reverse=True):
            doomed = by_ordinal[index]
            if not parallel and (not all_ready or objects.deleting(doomed)):
                break
            if not objects.deleting(doomed):
                await replicasets.delete_pod(self.ctx, sts, doomed, component=COMPONENT)
            if not parallel:
                break

        # Rolling update: one pod at a time from the top, down to the partition.
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if (
            strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and all_ready
            and len([i for i in by_ordinal if i < want]) == want
        ):
            for index in range(want - 1, partition - 1, -1):
                outdated = by_ordinal[index]
                if objects.labels(outdated).get(REVISION_LABEL) != update_revision:
                    if not objects.deleting(outdated):
                        await replicasets.delete_pod(self.ctx, sts, outdated, component=COMPONENT)
                    break

        pods = await replicasets.owned_pods(self.ctx, sts, sspec.get("selector"))
        active = [p for p in pods if replicasets.is_active(p)]
        ready = sum(1 for p in active if replicasets.ready_since(p) is not None)
        updated = sum(1 for p in active if objects.labels(p).get(REVISION_LABEL) == update_revision)
        current = sum(
            1 for p in active if objects.labels(p).get(REVISION_LABEL) == current_revision
        )
        if updated == want and ready == want and len(active) == want:
            current_revision, current = update_revision, updated
        new: Obj = {
            "observedGeneration": objects.generation(sts),
            "replicas": len(active),
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "availableReplicas": ready,
            "currentRevision": current_revision,
            "updateRevision": update_revision,
            "collisionCount": int(old.get("collisionCount") or 0),
        }
        new = {
            k: v
            for k, v in new.items()
            if v or k in ("replicas", "availableReplicas", "collisionCount")
        }
        await runtime.write_status(self.store, rt, sts, new, manager=objects.MANAGER)
        return None
