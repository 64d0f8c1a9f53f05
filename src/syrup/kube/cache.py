"""A watch-based cache of a cluster's live state, so a reconcile reads memory, not the API.

Argo CD's gitops-engine keeps the same kind of cache: list each resource type once, then follow
a watch from the list's resourceVersion; a watch that expires (410 Gone) relists. New resource
types appear when a CustomResourceDefinition becomes established: the cache watches CRDs,
re-runs discovery and starts watching the new types. Objects are stored without
``managedFields`` (the largest and least useful part for diffing) except the entries of the
managers :attr:`LiveCache.keep_managed_fields` names (ignoreDifferences by manager needs
them, for the apps that use it), and indexed by the tracking label, so "everything app X
owns" is one dictionary lookup.

Listeners get ``(key, old, new)`` for every change; they must be cheap (they run on the event
loop), typically putting an app on a work queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syrup import logs
from syrup.kube import client as kclient
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

#: Types that change constantly and are never an app's resource worth tracking.
SKIPPED = frozenset(
    {
        ("", "Event"),
        ("events.k8s.io", "Event"),
        ("coordination.k8s.io", "Lease"),
        ("discovery.k8s.io", "EndpointSlice"),
        ("", "Endpoints"),
    }
)


@dataclass(frozen=True, order=True)
class Key:
    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}.{self.group or 'core'} {where}{self.name}"


Listener = Callable[[Key, dict[str, Any] | None, dict[str, Any] | None], None]
DiscoveryListener = Callable[[kclient.Discovery], None]


def key_of(obj: dict[str, Any]) -> Key:
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    meta = obj.get("metadata") or {}
    return Key(group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta["name"]))


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _newer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether ``a`` is a later version of the same object than ``b`` (or as late)."""
    ra, rb = _rv(a), _rv(b)
    return ra.isdigit() and rb.isdigit() and int(ra) >= int(rb) and a is not b


class LiveCache:
    """Everything the watched cluster holds, kept current by one watch per resource type."""

    def __init__(
        self,
        client: kclient.Client,
        discovery: kclient.Discovery,
        *,
        tracking_label: str,
        skipped: Iterable[tuple[str, str]] = SKIPPED,
        owner_of: Callable[[Mapping[str, Any]], str | None] | None = None,
    ) -> None:
        self.client = client
        self.discovery = discovery
        self.tracking_label = tracking_label
        #: Which app an object is part of; by default, the tracking label's value. Annotation
        #: tracking (syrup.gitops.tracking) passes its own reading here.
        self.owner_of = owner_of
        self.skipped = frozenset(skipped)
        #: The managers whose ``metadata.managedFields`` entries an object keeps (every other
        #: entry is dropped to save memory; None or empty drops them all). The GitOps
        #: controller names the managers an app's ignoreDifferences rules ignore.
        self.keep_managed_fields: Callable[[dict[str, Any]], frozenset[str] | None] | None = None
        self.objects: dict[Key, dict[str, Any]] = {}
        #: The keys of ``objects`` by (group, kind), in insertion order: listing one kind must
        #: not scan them all.
        self._by_kind: dict[tuple[str, str], dict[Key, None]] = {}
        #: Recently deleted keys and the resourceVersion of their deletion.
        self._deleted: dict[Key, dict[str, Any]] = {}
        self.by_app: dict[str, set[Key]] = {}
        self.listeners: list[Listener] = []
        self.discovery_listeners: list[DiscoveryListener] = []
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._listed: dict[tuple[str, str], asyncio.Event] = {}
        self._rediscover: asyncio.Task[None] | None = None
        self._rediscover_again = False
        self.lists = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching every type; return once each has been listed once."""
        self._start_types(self.discovery)
        await self.wait_synced()

    async def wait_synced(self, timeout: float = 60.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._listed.values())), timeout)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        if self._rediscover is not None:
            tasks.append(self._rediscover)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _start_types(self, discovery: kclient.Discovery) -> None:
        for res in discovery.watchable():
            if res.group_kind in self.skipped or res.group_kind in self._tasks:
                continue
            self._listed[res.group_kind] = asyncio.Event()
            self._tasks[res.group_kind] = asyncio.create_task(
                self._follow(res), name=f"watch {res.plural}.{res.group}"
            )

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.objects.get(key)

    def tracked(self, app: str) -> list[dict[str, Any]]:
        return [self.objects[k] for k in sorted(self.by_app.get(app, ())) if k in self.objects]

    def of_kind(self, group: str, kind: str) -> list[dict[str, Any]]:
        keys = self._by_kind.get((group, kind), ())
        return [self.objects[k] for k in keys if k in self.objects]

    def watching(self, group: str, kind: str) -> bool:
        event = self._listed.get((group, kind))
        return event is not None and event.is_set()

    # -- writes from the outside (an apply's answer is fresher than the watch) -------------

    def record(self, obj: dict[str, Any]) -> None:
        """Store a write's answer at once, unless the watch already brought something newer.

        NB: resourceVersions are opaque by contract, but every real server (etcd revisions)
        and the local cluster issue increasing integers; comparing them here only avoids
        replacing a newer watched object with an older answer that arrived late. When they
        are not integers the answer is stored and the watch corrects it.
        """
        key = key_of(obj)
        current = self.objects.get(key) or self._deleted.get(key)
        if current is not None and _newer(current, obj):
            return
        self._store(key, obj)

    def forget(self, key: Key) -> None:
        self._remove(key)

    def add_managed_fields(self, obj: dict[str, Any]) -> None:
        """A fresh read of an object whose cached copy was stored without managedFields.

        The same version only lends its entries to the cached copy (listeners are not told:
        nothing changed in the cluster); a newer one is recorded as any write answer is.
        """
        current = self.objects.get(key_of(obj))
        if current is not None and _rv(current) == _rv(obj):
            self._trim_managed_fields(obj)
            current.setdefault("metadata", {})["managedFields"] = obj["metadata"].get(
                "managedFields", []
            )
        else:
            self.record(obj)

    def _trim_managed_fields(self, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        keep = self.keep_managed_fields(obj) if self.keep_managed_fields is not None else None
        if keep:
            entries = meta.get("managedFields") or []
            meta["managedFields"] = [e for e in entries if e.get("manager") in keep]
        else:
            meta.pop("managedFields", None)

    # -- internals ------------------------------------------------------------------------

    def owner(self, obj: Mapping[str, Any] | None) -> str:
        """The app whose tracking ``obj`` carries ("" when none)."""
        return self._app_of(obj) or ""

    def _app_of(self, obj: Mapping[str, Any] | None) -> str | None:
        if obj is None:
            return None
        if self.owner_of is not None:
            return self.owner_of(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        value = labels.get(self.tracking_label)
        return str(value) if value else None

    def _store(self, key: Key, obj: dict[str, Any]) -> None:
        self._trim_managed_fields(obj)
        old = self.objects.get(key)
        self.objects[key] = obj
        if old is None:
            self._by_kind.setdefault((key.group, key.kind), {})[key] = None
        old_app, new_app = self._app_of(old), self._app_of(obj)
        if old_app != new_app:
            if old_app:
                self.by_app.get(old_app, set()).discard(key)
            if new_app:
                self.by_app.setdefault(new_app, set()).add(key)
        self._notify(key, old, obj)

    def _tombstone(self, key: Key, obj: dict[str, Any]) -> None:
        """A deletion the watch reported: remembered so a late write answer cannot revive it."""
        self._deleted[key] = {"metadata": {"resourceVersion": _rv(obj)}}
        while len(self._deleted) > 10_000:
            self._deleted.pop(next(iter(self._deleted)))
        self._remove(key)

    def _remove(self, key: Key) -> None:
        old = self.objects.pop(key, None)
        self._by_kind.get((key.group, key.kind), {}).pop(key, None)
        app = self._app_of(old)
        if app:
            self.by_app.get(app, set()).discard(key)
        if old is not None:
            self._notify(key, old, None)

    def _notify(self, key: Key, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for listener in self.listeners:
            try:
                listener(key, old, new)
            except Exception:
                _log.exception("cache listener failed", key=str(key))
        if key.group == "apiextensions.k8s.io" and key.kind == "CustomResourceDefinition":
            self._schedule_rediscovery()

    def _schedule_rediscovery(self) -> None:
        if self._rediscover is None or self._rediscover.done():
            self._rediscover = asyncio.create_task(self._rediscover_soon())
        else:
            # NB: a discovery already in flight may predate this change (a CRD becoming
            # Established after it was read): run once more when it is done.
            self._rediscover_again = True

    async def _rediscover_soon(self) -> None:
        while True:
            self._rediscover_again = False
            # Several CRDs usually arrive together: one discovery for the batch.
            await asyncio.sleep(0.3)
            await self._rediscover_once()
            if not self._rediscover_again:
                return

    async def _rediscover_once(self) -> None:
        for attempt in range(20):
            try:
                discovery = await self.client.discover()
            except kerrors.ApiError as exc:
                _log.warning("discovery failed", error=str(exc), attempt=attempt)
                await asyncio.sleep(1)
                continue
            self.discovery = discovery
            self._start_types(discovery)
            served = {r.group_kind for r in discovery.resources}
            for gk, task in list(self._tasks.items()):
                if gk not in served:
                    task.cancel()
                    del self._tasks[gk]
                    self._listed.pop(gk, None)
                    for key in list(self._by_kind.get(gk, ())):
                        self._remove(key)
            for listener in self.discovery_listeners:
                listener(discovery)
            return

    async def _follow(self, res: kclient.ApiResource) -> None:
        log = _log.bind(resource=f"{res.plural}.{res.group}" if res.group else res.plural)
        backoff = 0.5
        while True:
            try:
                items, version = await self.client.list(res)
                self.lists += 1
                self._replace_all(res, items)
                self._listed[res.group_kind].set()
                backoff = 0.5
                while True:
                    async for kind, obj in self.client.watch(res, resource_version=version):
                        version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                        if kind == "BOOKMARK":
                            continue
                        obj.setdefault("apiVersion", res.api_version)
                        obj.setdefault("kind", res.kind)
                        if kind == "DELETED":
                            self._tombstone(key_of(obj), obj)
                        else:
                            self._deleted.pop(key_of(obj), None)
                            self._store(key_of(obj), obj)
            except asyncio.CancelledError:
                raise
            except kerrors.Gone:
                log.debug("watch expired; relisting")
            except kerrors.NotFound:
                # The type went away (its CRD was deleted); rediscovery will stop this task.
                self._listed[res.group_kind].set()
                await asyncio.sleep(5)
            except Exception as exc:
                log.warning("watch failed; retrying", error=str(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)

    def _replace_all(self, res: kclient.ApiResource, items: list[dict[str, Any]]) -> None:
        fresh = {key_of(o): o for o in items}
        for key in list(self._by_kind.get(res.group_kind, ())):
            if key not in fresh:
                self._remove(key)
        for key, obj in fresh.items():
            old = self.objects.get(key)
            old_rv = ((old or {}).get("metadata") or {}).get("resourceVersion")
            if old is None or old_rv != obj["metadata"].get("resourceVersion"):
                self._store(key, obj)
