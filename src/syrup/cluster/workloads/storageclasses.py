"""Dynamic volume provisioning: a default StorageClass, and a PersistentVolume per claim.

The cluster starts with StorageClass ``standard`` (annotated as the default class, binding
mode ``Immediate``, reclaim policy ``Delete``), like kind's local-path provisioner. A claim
without ``storageClassName`` uses the default; a claim naming a class that exists is
provisioned whatever its provisioner says (no real storage backs any volume); a claim naming a
missing class stays Pending with a ``ProvisioningFailed`` event. Provisioning creates
``pvc-<claim uid>`` bound both ways (``claimRef`` and ``spec.volumeName``, with the
``pv.kubernetes.io/bind-completed`` annotations) and the claim's status turns ``Bound``.
Deleting a claim deletes its provisioned volume (reclaim policy Delete).
"""

from __future__ import annotations

import contextlib
from typing import Any

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import events, objects, runtime

Obj = dict[str, Any]

PROVISIONER = "syrup.dev/local-path"
DEFAULT_CLASS = "standard"
DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
MANAGER = "persistentvolume-binder-controller"
_PV_KEY = "\x00pv"


class Volumes(runtime.Controller):
    """See the module docstring."""

    name = "persistentvolume"
    workers = 1

    def setup(self) -> None:
        self.ctx.informer("", "v1", "persistentvolumeclaims").subscribe(self._on_claim)
        self.ctx.informer("", "v1", "persistentvolumes").subscribe(self._on_volume)
        self.classes = self.ctx.informer("storage.k8s.io", "v1", "storageclasses")
        self.classes.subscribe(self._on_class)
        self._pending: set[runtime.Key] = set()

    def _on_claim(self, etype: str, pvc: Obj) -> None:
        key = (objects.namespace(pvc), objects.name(pvc))
        if etype == "DELETED":
            self._pending.discard(key)
            self.enqueue((_PV_KEY, f"pvc-{objects.uid(pvc)}"))
            return
        self.enqueue(key)

    def _on_volume(self, etype: str, pv: Obj) -> None:
        claim = objects.spec(pv).get("claimRef") or {}
        if etype != "DELETED" and claim:
            self.enqueue((_PV_KEY, objects.name(pv)))

    def _on_class(self, etype: str, sc: Obj) -> None:
        for key in list(self._pending):
            self.enqueue(key)

    async def startup(self) -> None:
        rt = self.ctx.rt("storage.k8s.io", "v1", "storageclasses")
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": DEFAULT_CLASS, "annotations": {DEFAULT_ANNOTATION: "true"}},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        with contextlib.suppress(errors.AlreadyExists):
            await self.store.create(rt, body, field_manager=MANAGER)

    def _default_class(self) -> str | None:
        for sc in self.classes.items():
            if objects.annotations_of(sc).get(DEFAULT_ANNOTATION) == "true":
                return objects.name(sc)
        return None

    async def reconcile(self, key: runtime.Key) -> float | None:
        if key[0] == _PV_KEY:
            await self._reclaim(key[1])
            return None
        rt = self.ctx.rt("", "v1", "persistentvolumeclaims")
        try:
            pvc = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.status(pvc).get("phase") == "Bound" or objects.deleting(pvc):
            return None
        pspec = objects.spec(pvc)
        class_name = pspec.get("storageClassName")
        if class_name is None:
            class_name = self._default_class()
        if class_name == "" or class_name is None:
            return None  # Static binding only; nothing to provision.
        sc = self.classes.cache.get(("", str(class_name)))
        if sc is None:
            if key not in self._pending:
                self._pending.add(key)
                await self.ctx.recorder.record(
                    pvc,
                    reason="ProvisioningFailed",
                    message=f'storageclass.storage.k8s.io "{class_name}" not found',
                    component="persistentvolume-controller",
                    type_=events.WARNING,
                )
            st = {**objects.status(pvc), "phase": "Pending"}
            await runtime.write_status(self.store, rt, pvc, st, manager=MANAGER)
            return None
        self._pending.discard(key)
        await self._provision(rt, pvc, sc)
        return None

    async def _provision(self, rt: Any, pvc: Obj, sc: Obj) -> None:
        pspec = objects.spec(pvc)
        pv_name = f"pvc-{objects.uid(pvc)}"
        size = ((pspec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        modes = pspec.get("accessModes") or ["ReadWriteOnce"]
        pv_rt = self.ctx.rt("", "v1", "persistentvolumes")
        provisioner = str(sc.get("provisioner") or PROVISIONER)
        pv: Obj = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
                "finalizers": ["kubernetes.io/pv-protection"],
            },
            "spec": {
                "capacity": {"storage": size},
                "accessModes": list(modes),
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                "storageClassName": objects.name(sc),
                "volumeMode": pspec.get("volumeMode") or "Filesystem",
                "hostPath": {
                    "path": f"/var/lib/syrup/volumes/{pv_name}",
                    "type": "DirectoryOrCreate",
                },
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "name": objects.name(pvc),
                    "namespace": objects.namespace(pvc),
                    "uid": objects.uid(pvc),
                },
            },
        }
        try:
            created = await self.store.create(pv_rt, pv, field_manager=MANAGER)
        except errors.AlreadyExists:
            created = await self.store.get(pv_rt, None, pv_name)
        await runtime.write_status(self.store, pv_rt, created, {"phase": "Bound"}, manager=MANAGER)

        patch = {
            "metadata": {
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": provisioner,
                    "volume.kubernetes.io/storage-provisioner": provisioner,
                }
            },
            "spec": {"volumeName": pv_name, "storageClassName": objects.name(sc)},
        }
        bound = await self.store.patch(
            rt, objects.namespace(pvc), objects.name(pvc), patch, field_manager=MANAGER
        )
        st = {"phase": "Bound", "accessModes": list(modes), "capacity": {"storage": size}}
        await runtime.write_status(self.store, rt, bound, st, manager=MANAGER)
        await self.ctx.recorder.record(
            pvc,
            reason="ProvisioningSucceeded",
            message=f"Successfully provisioned volume {pv_name} using {provisioner}",
            component=provisioner,
        )
        self.log.info(
            "provisioned volume",
            namespace=objects.namespace(pvc),
            claim=objects.name(pvc),
            volume=pv_name,
        )

    async def _reclaim(self, pv_name: str) -> None:
        """Delete a provisioned volume whose claim is gone (reclaim policy Delete)."""
        pv_rt = self.ctx.rt("", "v1", "persistentvolumes")
        pvc_rt = self.ctx.rt("", "v1", "persistentvolumeclaims")
        try:
            pv = await self.store.get(pv_rt, None, pv_name)
        except syrup_errors.NotFound:
            return
        claim = objects.spec(pv).get("claimRef") or {}
        if objects.spec(pv).get("persistentVolumeReclaimPolicy", "Delete") != "Delete" or not claim:
            return
        try:
            live = await self.store.get(
                pvc_rt, str(claim.get("namespace") or ""), str(claim.get("name") or "")
            )
            if objects.uid(live) == claim.get("uid"):
                return
        except syrup_errors.NotFound:
            pass
        if objects.meta(pv).get("finalizers"):
            patch = {"metadata": {"finalizers": None}}
            pv = await self.store.patch(pv_rt, None, pv_name, patch, field_manager=MANAGER)
        await runtime.ignore_missing(self.store.delete(pv_rt, None, pv_name))
        self.log.info("deleted released volume", volume=pv_name)
