"""The machinery every controller runs on: shared informers, work queues, reconcile loops.

Controllers follow the client-go pattern over the storage interface the HTTP layer uses: an
:class:`Informer` lists a resource once, then watches from the list's resourceVersion and
relists when the watch ends or expires (410 Gone). It keeps a cache for cheap lookups and fans
events out to controllers, which map them to keys on a :class:`Queue`. A key is reconciled by one
worker at a time; reconcile reads current objects from storage (in-memory there, so reads are
cheap and always fresh) and writes the difference, so a missed or doubled event never leads to
a wrong action and a restarted server simply reconciles everything once more.

A reconcile may ask to be called again after a delay (simulated time passing); errors are
logged and retried with back-off, never allowed to stop a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from syrup import errors as syrup_errors
from syrup import logs
from syrup.cluster import errors
from syrup.cluster.resources import ResourceType
from syrup.cluster.storage import Store
from syrup.cluster.workloads import objects, settings

log = logs.get(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]
Handler = Callable[[str, Obj], None]

#: Deleted keys remembered (with their last resourceVersion) to drop stale events; bounded.
_GONE_MEMORY = 50_000


def version(obj: Obj) -> int | None:
    """The object's resourceVersion as a number, when it is one.

    Clients must treat resourceVersions as opaque; these controllers run in the server's own
    process, whose storage hands out one increasing integer sequence (see
    :mod:`syrup.cluster.storage`), so ordering them is safe here and nowhere else.
    """
    try:
        return int(objects.meta(obj).get("resourceVersion") or "")
    except ValueError:
        return None


class Informer:
    """List-then-watch one resource type; keep a cache; tell subscribers about changes.

    The cache is indexed by controller owner uid, and controllers write through it
    (:meth:`remember`, :meth:`forget`) so their next look sees their own creations and
    deletions even before the watch delivers them; an event older than what the cache holds
    is ignored, so a write-through is never undone by a stale event.
    """

    def __init__(self, store: Store, rt: ResourceType) -> None:
        self.store = store
        self.rt = rt
        self.cache: dict[Key, Obj] = {}
        self.by_owner: dict[str, dict[Key, Obj]] = {}
        self._owner_of: dict[Key, str] = {}
        self._gone: dict[Key, int] = {}
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self._log = log.bind(resource=rt.group_resource)

    def subscribe(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def items(self, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            return list(self.cache.values())
        return [o for (ns, _), o in self.cache.items() if ns == namespace]

    def owned_by(self, owner_uid: str) -> list[Obj]:
        """Cached objects whose controller reference points at ``owner_uid``."""
        return list(self.by_owner.get(owner_uid, {}).values())

    def _put(self, key: Key, obj: Obj) -> None:
        self._unindex(key)
        self.cache[key] = obj
        ref = objects.controller_ref(obj)
        if ref is not None and ref.get("uid"):
            owner = str(ref["uid"])
            self.by_owner.setdefault(owner, {})[key] = obj
            self._owner_of[key] = owner

    def _unindex(self, key: Key) -> None:
        owner = self._owner_of.pop(key, None)
        if owner is not None:
            siblings = self.by_owner.get(owner)
            if siblings is not None:
                siblings.pop(key, None)
                if not siblings:
                    del self.by_owner[owner]

    def _apply(self, etype: str, obj: Obj) -> bool:
        """Fold one change into the cache; False when it is older than what is known."""
        key = (objects.namespace(obj), objects.name(obj))
        incoming = version(obj)
        known = self.cache.get(key)
        newest = version(known) if known is not None else self._gone.get(key)
        if incoming is not None and newest is not None and incoming < newest:
            return False
        if etype == "DELETED":
            self._unindex(key)
            self.cache.pop(key, None)
            if incoming is not None:
                if len(self._gone) >= _GONE_MEMORY:
                    self._gone.clear()
                self._gone[key] = incoming
        else:
            self._gone.pop(key, None)
            self._put(key, obj)
        return True

    def remember(self, obj: Obj) -> None:
        """Write-through: the caller just stored ``obj``."""
        self._apply("MODIFIED", obj)

    def forget(self, obj: Obj) -> None:
        """Write-through: the caller just deleted ``obj`` (as storage returned it)."""
        self._apply("DELETED", obj)

    def _dispatch(self, etype: str, obj: Obj) -> None:
        for handler in self.handlers:
            try:
                handler(etype, obj)
            except Exception:
                self._log.exception("event handler failed", change=etype, name=objects.name(obj))

    def _relist(self, items: list[Obj]) -> None:
        fresh = {(objects.namespace(o), objects.name(o)): o for o in items}
        gone = [o for k, o in self.cache.items() if k not in fresh]
        self.cache = {}
        self.by_owner = {}
        self._owner_of = {}
        self._gone = {}
        for key, obj in fresh.items():
            self._put(key, obj)
        for obj in gone:
            self._dispatch("DELETED", obj)
        for obj in items:
            self._dispatch("ADDED", obj)

    async def run(self) -> None:
        while True:
            try:
                items, rv = await self.store.list(self.rt)
                self._relist(items)
                self.synced.set()
                await self._follow(rv)
            except asyncio.CancelledError:
                raise
            except errors.Gone:
                self._log.debug("watch expired; relisting")
            except Exception:
                self._log.exception("watch failed; relisting")
                await asyncio.sleep(1.0)

    async def _follow(self, rv: str) -> None:
        watch = self.store.watch(self.rt, resource_version=rv)
        try:
            async for etype, obj in watch:
                if etype not in ("ADDED", "MODIFIED", "DELETED"):
                    continue
                if self._apply(etype, obj) or etype == "DELETED":
                    self._dispatch(etype, obj)
        finally:
            watch.close()


class Queue:
    """A de-duplicating work queue with delayed adds; one worker holds a key at a time."""

    def __init__(self) -> None:
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._processing: set[Key] = set()
        self._again: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        #: The earliest pending wake-up per key (later heap entries for it are stale).
        self._due: dict[Key, float] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: Key) -> None:
        if key in self._processing:
            self._again.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wake.set()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        earlier = self._due.get(key)
        if earlier is not None and earlier <= due:
            return  # An earlier wake-up is already set; the key can ask again then.
        self._due[key] = due
        heapq.heappush(self._delayed, (due, next(self._seq), key))
        if self._timer is None or self._timer.when() > due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(due, self._promote)

    def _promote(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._delayed and self._delayed[0][0] <= now + 0.001:
            due, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self.add(key)
        if self._delayed:
            self._timer = loop.call_at(self._delayed[0][0], self._promote)

    async def get(self) -> Key:
        while True:
            for index, key in enumerate(self._ready):
                if key not in self._processing:
                    del self._ready[index]
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
            self._wake.clear()
            await self._wake.wait()

    def done(self, key: Key) -> None:
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)
        elif self._ready:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Context:
    """What every controller shares: storage, settings, clock, informers, event recorder."""

    def __init__(self, store: Store, config: settings.Settings) -> None:
        from syrup.cluster.workloads import events

        self.store = store
        self.settings = config
        self.clock = settings.Clock(config.speed)
        self.informers: dict[str, Informer] = {}
        self.recorder = events.Recorder(self)

    def rt(self, group: str, version: str, plural: str) -> ResourceType:
        found = self.store.registry.get(group, version, plural)
        if found is None:
            raise syrup_errors.ConfigError(f"the cluster does not serve {plural}.{group or 'core'}")
        return found

    def informer(self, group: str, version: str, plural: str) -> Informer:
        rt = self.rt(group, version, plural)
        existing = self.informers.get(rt.group_resource)
        if existing is None:
            existing = self.informers[rt.group_resource] = Informer(self.store, rt)
        return existing


class Controller:
    """One reconcile loop: subclasses set ``name`` and implement :meth:`reconcile`."""

    name = "controller"
    workers = 2
    #: (group, version, plural) of the objects this controller reconciles, for resyncs.
    primary: tuple[str, str, str] | None = None
    #: Wall seconds between looks at every primary object, as client-go's resync period: a
    #: safety net so that no lost wake-up can stall an object for good.
    resync_seconds: float = 30.0

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.clock = ctx.clock
        self.queue = Queue()
        self.log = logs.get(type(self).__module__, controller=self.name)
        self._failures: dict[Key, int] = {}
        #: Reconciles run so far (for benchmarks and diagnosing busy loops).
        self.reconciles = 0

    def setup(self) -> None:
        """Subscribe to informers; called once before anything runs."""

    async def reconcile(self, key: Key) -> float | None:
        """Bring ``key`` to its desired state; return wall seconds until the next look, or None."""
        raise NotImplementedError

    async def startup(self) -> None:
        """One-off work before the loop starts (creating nodes, for example)."""

    async def shutdown(self) -> None:
        """Release what :meth:`startup` acquired."""

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        self.queue.add_after(key, delay)

    def resync_keys(self) -> list[Key]:
        """Keys to look at again on each resync: by default every primary object."""
        if self.primary is None:
            return []
        return list(self.ctx.informer(*self.primary).cache)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in self.resync_keys():
                self.queue.add(key)

    async def run(self) -> None:
        """Work the queue until cancelled (:meth:`startup` has run already)."""
        tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        tasks.append(asyncio.create_task(self._resync()))
        try:
            while True:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                # A loop must never end quietly: log what ended it and start it again.
                for task in done:
                    index = tasks.index(task)
                    if not task.cancelled() and task.exception() is not None:
                        self.log.error(
                            "controller loop ended; restarting it",
                            error=repr(task.exception()),
                        )
                    tasks[index] = asyncio.create_task(
                        self._resync() if index == len(tasks) - 1 else self._work()
                    )
        finally:
            for task in tasks:
                task.cancel()
            self.queue.close()

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            self.reconciles += 1
            try:
                again = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except (errors.Conflict, errors.AlreadyExists, errors.NotFound) as exc:
                # Someone changed the object under us: look again soon with fresh reads. A race
                # that keeps happening (a name taken by someone else) backs off, then warns.
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                log_race = self.log.warning if count == 8 else self.log.debug
                log_race("retrying after a race", namespace=key[0], name=key[1], reason=str(exc))
                self.queue.done(key)
                self.enqueue(key, min(0.05 * 2 ** (count - 1), 10.0))
                continue
            except Exception:
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                self.log.exception("reconcile failed", namespace=key[0], name=key[1], retry=count)
                self.queue.done(key)
                self.enqueue(key, min(0.1 * 2**count, 30.0))
                continue
            self._failures.pop(key, None)
            self.queue.done(key)
            if again is not None:
                self.enqueue(key, again)


async def write_status(
    store: Store, rt: ResourceType, obj: Obj, new_status: Obj, *, manager: str
) -> Obj | None:
    """Replace ``obj``'s status when it changed; a stale object raises Conflict (retry)."""
    if obj.get("status") == new_status:
        return None
    body = dict(obj)
    body["status"] = new_status
    return await store.update(rt, body, field_manager=manager, subresource="status")


async def ignore_missing(call: Awaitable[Any]) -> Any:
    """Await a write whose target may already be gone (a delete racing another delete)."""
    with contextlib.suppress(errors.NotFound):
        return await call
    return None
