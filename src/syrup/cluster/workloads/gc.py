"""The garbage collector: dependents follow their owners through ``ownerReferences``.

It behaves as the Kubernetes garbage collector documents:

* **Background**: once an owner is gone, each dependent whose owners are all gone is deleted
  (and a dependent that still has a live owner only loses the dangling reference).
* **Foreground**: storage keeps an owner marked for deletion with the ``foregroundDeletion``
  finalizer; the collector deletes its dependents (themselves in the foreground) and removes
  the finalizer once none are left, which completes the owner's deletion.
* **Orphan**: with the ``orphan`` finalizer, dependents lose their reference to the owner and
  stay; then the finalizer goes.

Objects of any other kind (custom resources, RBAC, Argo CD Applications...) deleted in the
foreground are seen through storage's change listeners: their dependents among the followed
kinds go first, then the finalizer, so a foreground delete never hangs on an unfollowed kind.

Owner existence is always checked against storage by kind and uid, so an owner recreated with
the same name does not adopt the old one's dependents. Dependent kinds are those controllers
create plus the usual namespaced kinds a chart may give an owner; owners of kinds the cluster
does not serve are left alone, as the real collector does with unresolvable owners.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from syrup import errors as syrup_errors
from syrup.cluster.resources import ResourceType
from syrup.cluster.storage import Event
from syrup.cluster.workloads import objects, runtime

Obj = dict[str, Any]

MANAGER = "generic-garbage-collector"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

#: (group, version, plural) of the kinds watched for owners and dependents.
WATCHED = (
    ("", "v1", "pods"),
    ("", "v1", "services"),
    ("", "v1", "endpoints"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "persistentvolumeclaims"),
    ("", "v1", "serviceaccounts"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "replicasets"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "daemonsets"),
    ("apps", "v1", "controllerrevisions"),
    ("batch", "v1", "jobs"),
    ("batch", "v1", "cronjobs"),
    ("discovery.k8s.io", "v1", "endpointslices"),
    ("networking.k8s.io", "v1", "ingresses"),
)

_SEP = "\x00"
_FOREGROUND_BYTES = FOREGROUND.encode()


def encode(rt: ResourceType, namespace: str) -> str:
    return f"{rt.group}/{rt.version}/{rt.plural}{_SEP}{namespace}"


class GarbageCollector(runtime.Controller):
    """See the module docstring."""

    name = "garbage-collector"
    workers = 2

    def setup(self) -> None:
        self.dependents: dict[str, set[runtime.Key]] = defaultdict(set)
        self.owners_of: dict[runtime.Key, set[str]] = {}
        self.types: dict[str, ResourceType] = {}
        #: Uids of watched objects known to exist (a shortcut; storage stays the authority).
        self.alive: set[str] = set()
        for gvr in WATCHED:
            informer = self.ctx.informer(*gvr)
            rt = informer.rt
            self.types[f"{rt.group}/{rt.version}/{rt.plural}"] = rt
            informer.subscribe(self._handler(rt))
        self.followed = {rt.group_resource for rt in self.types.values()}
        self.store.listeners.append(self._any_kind)

    def _any_kind(self, event: Event) -> None:
        """Pick up a foreground deletion of a kind no informer follows (storage listener)."""
        if (
            event.type == "DELETED"
            or event.group_resource in self.followed
            or _FOREGROUND_BYTES not in event.raw
        ):
            return
        rt = next(
            (t for t in self.store.registry if t.group_resource == event.group_resource), None
        )
        if rt is None:
            return
        obj = orjson.loads(event.raw)
        if not objects.deleting(obj) or FOREGROUND not in (
            objects.meta(obj).get("finalizers") or []
        ):
            return
        self.types.setdefault(f"{rt.group}/{rt.version}/{rt.plural}", rt)
        self.enqueue((encode(rt, objects.namespace(obj)), objects.name(obj)))

    def _handler(self, rt: ResourceType) -> runtime.Handler:
        def handle(etype: str, obj: Obj) -> None:
            key = (encode(rt, objects.namespace(obj)), objects.name(obj))
            refs = {str(r.get("uid")) for r in objects.meta(obj).get("ownerReferences") or []}
            if etype == "DELETED":
                self.alive.discard(objects.uid(obj))
            else:
                self.alive.add(objects.uid(obj))
            for owner_uid in self.owners_of.pop(key, set()):
                self.dependents[owner_uid].discard(key)
                if not self.dependents[owner_uid]:
                    del self.dependents[owner_uid]
            if etype == "DELETED":
                # Its dependents may now be orphans.
                for dep in list(self.dependents.get(objects.uid(obj), ())):
                    self.enqueue(dep)
                return
            if refs:
                self.owners_of[key] = refs
                for owner_uid in refs:
                    self.dependents[owner_uid].add(key)
                if etype == "ADDED" and not refs <= self.alive:
                    self.enqueue(key)
            finalizers = objects.meta(obj).get("finalizers") or []
            if objects.deleting(obj) and (FOREGROUND in finalizers or ORPHAN in finalizers):
                self.enqueue(key)
            elif objects.deleting(obj) and refs:
                # A dependent going away may unblock its owner's foreground deletion.
                for owner_uid in refs:
                    for owner_key in self._keys_with_uid(owner_uid):
                        self.enqueue(owner_key)

        return handle

    def _keys_with_uid(self, uid: str) -> list[runtime.Key]:
        out = []
        for rt in self.types.values():
            informer = self.ctx.informers.get(rt.group_resource)
            if informer is None:
                continue
            for obj in informer.cache.values():
                if objects.uid(obj) == uid:
                    out.append((encode(rt, objects.namespace(obj)), objects.name(obj)))
                    return out
        return out

    async def reconcile(self, key: runtime.Key) -> float | None:
        path, namespace = key[0].split(_SEP, 1)
        rt = self.types[path]
        try:
            obj = await self.store.get(rt, namespace or None, key[1])
        except syrup_errors.NotFound:
            return None
        finalizers = list(objects.meta(obj).get("finalizers") or [])
        if objects.deleting(obj) and ORPHAN in finalizers:
            await self._orphan(rt, obj)
            return None
        if objects.deleting(obj) and FOREGROUND in finalizers:
            return await self._foreground(rt, obj)
        await self._check_owners(rt, obj)
        return None

    async def _owner_state(self, obj: Obj, ref: Obj) -> str:
        """ "alive", "absent", "deleting-foreground" or "unknown" (kind not served)."""
        owner_rt = self.store.registry.by_kind(
            str(ref.get("apiVersion") or ""), str(ref.get("kind") or "")
        )
        if owner_rt is None:
            return "unknown"
        ns = objects.namespace(obj) if owner_rt.namespaced else None
        try:
            owner = await self.store.get(owner_rt, ns, str(ref.get("name") or ""))
        except syrup_errors.NotFound:
            return "absent"
        if objects.uid(owner) != ref.get("uid"):
            return "absent"
        if objects.deleting(owner) and FOREGROUND in (objects.meta(owner).get("finalizers") or []):
            return "deleting-foreground"
        return "alive"

    async def _check_owners(self, rt: ResourceType, obj: Obj) -> None:
        refs = [r for r in objects.meta(obj).get("ownerReferences") or [] if isinstance(r, dict)]
        if not refs or objects.deleting(obj):
            return
        states = [await self._owner_state(obj, ref) for ref in refs]
        if any(s in ("alive", "unknown") for s in states):
            dangling = [r for r, s in zip(refs, states, strict=True) if s == "absent"]
            if dangling:
                keep = [r for r, s in zip(refs, states, strict=True) if s != "absent"]
                await self._set_refs(rt, obj, keep)
            return
        policy = "Foreground" if "deleting-foreground" in states else "Background"
        await runtime.ignore_missing(
            self.store.delete(
                rt,
                objects.namespace(obj) or None,
                objects.name(obj),
                propagation_policy=policy,
                preconditions={"uid": objects.uid(obj)},
            )
        )
        self.log.info(
            "deleted dependent",
            kind=rt.kind,
            namespace=objects.namespace(obj),
            name=objects.name(obj),
            policy=policy,
        )

    async def _set_refs(self, rt: ResourceType, obj: Obj, refs: list[Obj]) -> None:
        patch = {
            "metadata": {
                "ownerReferences": refs or None,
                "resourceVersion": objects.meta(obj).get("resourceVersion"),
            }
        }
        await self.store.patch(
            rt, objects.namespace(obj) or None, objects.name(obj), patch, field_manager=MANAGER
        )

    async def _dependents(self, owner: Obj) -> list[tuple[ResourceType, Obj]]:
        out = []
        for dep_key in list(self.dependents.get(objects.uid(owner), ())):
            path, namespace = dep_key[0].split(_SEP, 1)
            rt = self.types[path]
            try:
                dep = await self.store.get(rt, namespace or None, dep_key[1])
            except syrup_errors.NotFound:
                continue
            if any(
                r.get("uid") == objects.uid(owner)
                for r in objects.meta(dep).get("ownerReferences") or []
            ):
                out.append((rt, dep))
        return out

    async def _remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        remaining = [f for f in objects.meta(obj).get("finalizers") or [] if f != finalizer]
        patch = {
            "metadata": {
                "finalizers": remaining or None,
                "resourceVersion": objects.meta(obj).get("resourceVersion"),
            }
        }
        await runtime.ignore_missing(
            self.store.patch(
                rt, objects.namespace(obj) or None, objects.name(obj), patch, field_manager=MANAGER
            )
        )

    async def _orphan(self, rt: ResourceType, owner: Obj) -> None:
        for dep_rt, dep in await self._dependents(owner):
            keep = [
                r
                for r in objects.meta(dep).get("ownerReferences") or []
                if r.get("uid") != objects.uid(owner)
            ]
            await runtime.ignore_missing(self._set_refs(dep_rt, dep, keep))
        await self._remove_finalizer(rt, owner, ORPHAN)
        self.log.info(
            "orphaned dependents",
            kind=rt.kind,
            namespace=objects.namespace(owner),
            name=objects.name(owner),
        )

    async def _foreground(self, rt: ResourceType, owner: Obj) -> float | None:
        deps = await self._dependents(owner)
        for dep_rt, dep in deps:
            if not objects.deleting(dep):
                await runtime.ignore_missing(
                    self.store.delete(
                        dep_rt,
                        objects.namespace(dep) or None,
                        objects.name(dep),
                        propagation_policy="Foreground",
                        preconditions={"uid": objects.uid(dep)},
                    )
                )
        if deps:
            # Dependents still exist (or were just marked): look again when they are gone.
            return 0.2
        await self._remove_finalizer(rt, owner, FOREGROUND)
        return None
