"""Durable object storage with a global resourceVersion and a bounded watch history.

Every object lives twice: as its exact JSON bytes in one SQLite file (WAL mode), and as the same
bytes in memory, indexed by resource and (namespace, name). Reads and lists come from memory;
writes go to SQLite first, in one transaction that stores the object, the watch event and the
new resourceVersion together, so a write either fully happens or not at all. WAL with
``synchronous=NORMAL`` survives ``kill -9`` of the server (the OS keeps what was committed);
only a power loss may drop the last transactions, a trade made for write throughput.

Keeping bytes rather than parsed dicts means a list of 10,000 objects is spliced, not
re-serialised, and every caller that asks for an object gets its own freshly parsed copy that
it may change freely.

Watch history is a bounded deque of events (by count and by age), persisted in the same file so
a watch may resume across a restart; resuming from a version older than the history answers
410 Gone, as etcd compaction does in a real cluster.

All methods run on one asyncio event loop and never await in the middle of a write, so writes
are serialised without locks.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import collections
import contextlib
import secrets
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from syrup import logs
from syrup.cluster import admission as admission_mod
from syrup.cluster import errors, resources, selectors
from syrup.cluster.resources import ResourceType

log = logs.get(__name__)

Obj = dict[str, Any]

#: Namespaces every cluster starts with.
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Resources whose objects carry ``metadata.generation`` (their REST strategies set it).
_GENERATION_GROUPS = frozenset(
    {"apps", "batch", "policy", "networking.k8s.io", "apiextensions.k8s.io"}
)
_GENERATION_CORE = frozenset({"pods", "replicationcontrollers"})

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


_last_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """Kubernetes timestamps: RFC 3339, UTC, whole seconds (formatted once per second)."""
    global _last_stamp
    second = int(time.time())
    if _last_stamp[0] != second:
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _last_stamp = (second, stamp)
    return _last_stamp[1]


@dataclass(frozen=True)
class StoreSettings:
    """Where and how much to keep."""

    path: Path
    #: Watch events kept for resuming watches (by count and by age in seconds).
    history_size: int = 100_000
    history_age: float = 900.0


@dataclass(frozen=True)
class Event:
    """One change: ``ADDED``, ``MODIFIED`` or ``DELETED`` of an object at ``rv``."""

    rv: int
    group_resource: str
    namespace: str
    type: str
    raw: bytes
    ts: float
    #: The object as it was before this change (for selector transitions), if any.
    old_raw: bytes | None = None


@dataclass
class _Record:
    rv: int
    raw: bytes
    labels: dict[str, str]


class _Watcher:
    def __init__(
        self,
        *,
        group_resource: str,
        namespace: str | None,
        label: selectors.Matcher | None,
        field: selectors.Matcher | None,
    ) -> None:
        self.group_resource = group_resource
        self.namespace = namespace
        self.label = label
        self.field = field
        self.queue: asyncio.Queue[tuple[str, bytes, int] | None] = asyncio.Queue()

    def _selected(self, raw: bytes | None) -> bool:
        if raw is None:
            return False
        if self.label is None and self.field is None:
            return True
        obj = orjson.loads(raw)
        return (self.label is None or self.label(obj)) and (self.field is None or self.field(obj))

    def offer(self, event: Event) -> None:
        """Queue the event as this watcher sees it (selectors turn moves into ADDED/DELETED)."""
        if self.namespace is not None and event.namespace != self.namespace:
            return
        if self.label is None and self.field is None:
            self.queue.put_nowait((event.type, event.raw, event.rv))
            return
        now_in = self._selected(event.raw)
        if event.type == "DELETED":
            if now_in:
                self.queue.put_nowait(("DELETED", event.raw, event.rv))
            return
        was_in = self._selected(event.old_raw)
        if now_in and was_in:
            self.queue.put_nowait(("MODIFIED", event.raw, event.rv))
        elif now_in:
            self.queue.put_nowait(("ADDED", event.raw, event.rv))
        elif was_in:
            self.queue.put_nowait(("DELETED", event.raw, event.rv))


class Watch:
    """An open watch: iterate ``(type, raw_json, rv)``; ``close()`` ends it."""

    def __init__(self, store: Store, watcher: _Watcher, backlog: list[tuple[str, bytes, int]]):
        self._store = store
        self._watcher = watcher
        self._backlog = collections.deque(backlog)
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._store._remove_watcher(self._watcher)
            self._watcher.queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes, int]]:
        return self

    async def __anext__(self) -> tuple[str, bytes, int]:
        if self._backlog:
            return self._backlog.popleft()
        if self._closed and self._watcher.queue.empty():
            raise StopAsyncIteration
        item = await self._watcher.queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def next_within(self, timeout: float) -> tuple[str, bytes, int] | None:
        """The next event, or ``None`` when ``timeout`` passes first (for bookmarks)."""
        if self._backlog:
            return self._backlog.popleft()
        try:
            item = await asyncio.wait_for(self._watcher.queue.get(), timeout)
        except TimeoutError:
            return None
        if item is None:
            raise StopAsyncIteration
        return item


class DictWatch:
    """A :class:`Watch` that yields parsed objects, for in-process controllers."""

    def __init__(self, inner: Watch) -> None:
        self._inner = inner

    def close(self) -> None:
        self._inner.close()

    def __aiter__(self) -> AsyncIterator[tuple[str, Obj]]:
        return self

    async def __anext__(self) -> tuple[str, Obj]:
        etype, raw, _ = await self._inner.__anext__()
        return etype, orjson.loads(raw)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _spec_view(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = orjson.dumps({"rv": rv, "ns": namespace, "name": name})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["rv"]), str(data["ns"]), str(data["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.BadRequest(f"invalid continue token: {exc}") from exc


class Store:
    """The cluster's objects; see the module docstring."""

    def __init__(
        self,
        settings: StoreSettings,
        *,
        registry: resources.Registry | None = None,
        admission: admission_mod.Admission | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or resources.Registry()
        self.admission = admission or admission_mod.Admission()
        if self.admission.allocate_cluster_ip is None:
            self.admission.allocate_cluster_ip = self.allocate_cluster_ip
        if getattr(self.admission, "crd_for", False) is None:
            self.admission.crd_for = self.crd_for  # type: ignore[attr-defined]
        self._db = self._open_db(settings.path)
        self._data: dict[str, dict[tuple[str, str], _Record]] = collections.defaultdict(dict)
        self._history: collections.deque[Event] = collections.deque()
        self._compacted_rv = 0
        self._rv = 0
        self._watchers: dict[str, set[_Watcher]] = collections.defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()
        self._writes_since_trim = 0
        #: Called after every committed change (controllers, metrics); must not block.
        self.listeners: list[Callable[[Event], None]] = []
        self._load()

    # -- opening and loading -------------------------------------------------------------

    @staticmethod
    def _open_db(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL, "
            "name TEXT NOT NULL, rv INTEGER NOT NULL, data BLOB NOT NULL, "
            "PRIMARY KEY (gr, ns, name))"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, gr TEXT NOT NULL, "
            "ns TEXT NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL, ts REAL NOT NULL)"
        )
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        return db

    def _load(self) -> None:
        for gr, ns, name, rv, data in self._db.execute(
            "SELECT gr, ns, name, rv, data FROM objects"
        ):
            raw = bytes(data)
            labels = (orjson.loads(raw).get("metadata") or {}).get("labels") or {}
            self._data[gr][(ns, name)] = _Record(rv, raw, labels)
        # The newest event always stays in the table (trimming keeps the latest), so the
        # current version is the highest one recorded anywhere; no per-write bookkeeping row.
        row = self._db.execute(
            "SELECT MAX(v) FROM (SELECT MAX(rv) AS v FROM events UNION ALL "
            "SELECT MAX(rv) FROM objects UNION ALL "
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key IN ('rv', 'compacted'))"
        ).fetchone()
        self._rv = int(row[0]) if row and row[0] is not None else 0
        row = self._db.execute("SELECT value FROM meta WHERE key='compacted'").fetchone()
        self._compacted_rv = int(row[0]) if row else 0
        for rv, gr, ns, etype, data, ts in self._db.execute(
            "SELECT rv, gr, ns, type, data, ts FROM events WHERE rv > ? ORDER BY rv",
            (self._compacted_rv,),
        ):
            self._history.append(Event(rv, gr, ns, etype, bytes(data), ts))
        self._register_stored_crds()
        if not self._data["namespaces"]:
            self._bootstrap()
        log.info("storage opened", path=str(self.settings.path), objects=self.count(), rv=self._rv)

    def _bootstrap(self) -> None:
        """Create what a new cluster has before anyone writes: the system namespaces."""
        rt = self._rt("", "v1", "namespaces")
        for name in INITIAL_NAMESPACES:
            obj: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self._create_sync(rt, obj, manager="kube-apiserver", dry_run=False)

    def _register_stored_crds(self) -> None:
        for rec in self._data.get("customresourcedefinitions.apiextensions.k8s.io", {}).values():
            self._register_crd(orjson.loads(rec.raw))

    def close_watches(self) -> None:
        """End every open watch (clients reconnect; used at shutdown)."""
        for watchers in self._watchers.values():
            for w in list(watchers):
                w.queue.put_nowait(None)
        self._watchers.clear()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.close_watches()
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    # -- small helpers -------------------------------------------------------------------

    def _rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise errors.NotFound(f"the server could not find the requested resource ({plural})")
        return rt

    def resource_version(self) -> str:
        return str(self._rv)

    def count(self) -> int:
        return sum(len(v) for v in self._data.values())

    def _records(self, rt: ResourceType) -> dict[tuple[str, str], _Record]:
        return self._data[rt.group_resource]

    def _not_found(self, rt: ResourceType, name: str) -> errors.NotFound:
        what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
        return errors.NotFound(
            f'{what} "{name}" not found', kind=rt.plural, group=rt.group, name=name
        )

    def _check_namespace(self, rt: ResourceType, namespace: str, *, creating: bool) -> None:
        if not rt.namespaced:
            return
        if not namespace:
            raise errors.BadRequest("the namespace of the object does not match the request")
        rec = self._data["namespaces"].get(("", namespace))
        if rec is None:
            raise errors.NotFound(
                f'namespaces "{namespace}" not found', kind="namespaces", name=namespace
            )
        if creating and b'"deletionTimestamp"' in rec.raw:
            raise errors.Forbidden(
                f"{rt.plural} is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated",
                kind=rt.plural,
                group=rt.group,
            )

    def allocate_cluster_ip(self) -> str:
        """Pick the lowest free address in 10.96.0.0/12 (10.96.0.1 is the API service)."""
        used = set()
        for rec in self._data.get("services", {}).values():
            spec = orjson.loads(rec.raw).get("spec") or {}
            used.add(spec.get("clusterIP"))
        for n in range(2, 1 << 20):
            ip = f"10.{96 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
            if ip not in used and not ip.endswith(".0") and not ip.endswith(".255"):
                return ip
        raise errors.InternalError("the service IP range 10.96.0.0/12 is exhausted")

    # -- the write path ------------------------------------------------------------------

    def _commit(
        self,
        rt: ResourceType,
        etype: str,
        obj: Obj,
        *,
        old_raw: bytes | None,
        dry_run: bool,
    ) -> bytes:
        """Assign the next resourceVersion, persist object + event atomically, notify."""
        namespace, name = _key(obj)
        if dry_run:
            # A dry run stores nothing, so it gets no version of its own: an update shows the
            # stored one, a create none (as the real API server answers).
            meta = obj.setdefault("metadata", {})
            old_rv = (
                (orjson.loads(old_raw).get("metadata") or {}).get("resourceVersion")
                if old_raw is not None
                else None
            )
            if old_rv is not None:
                meta["resourceVersion"] = old_rv
            else:
                meta.pop("resourceVersion", None)
            return orjson.dumps(obj)
        rv = self._rv + 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        raw = orjson.dumps(obj)
        gr = rt.group_resource
        ts = time.time()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if etype == "DELETED":
                self._db.execute(
                    "DELETE FROM objects WHERE gr=? AND ns=? AND name=?", (gr, namespace, name)
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (gr, ns, name, rv, data) VALUES (?,?,?,?,?)",
                    (gr, namespace, name, rv, raw),
                )
            self._db.execute(
                "INSERT INTO events (rv, gr, ns, type, data, ts) VALUES (?,?,?,?,?,?)",
                (rv, gr, namespace, etype, raw, ts),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise errors.InternalError(f"storage write failed: {exc}") from exc

        # Only now, with the write durable, does anyone in memory see it.
        self._rv = rv
        records = self._data[gr]
        if etype == "DELETED":
            records.pop((namespace, name), None)
        else:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            records[(namespace, name)] = _Record(rv, raw, dict(labels))
        event = Event(rv, gr, namespace, etype, raw, ts, old_raw)
        self._history.append(event)
        self._trim_history()
        for watcher in list(self._watchers.get(gr, ())):
            watcher.offer(event)
        for listener in self.listeners:
            listener(event)
        return raw

    def _trim_history(self) -> None:
        limit, max_age = self.settings.history_size, self.settings.history_age
        cutoff = time.time() - max_age
        trimmed = False
        while self._history and (len(self._history) > limit or self._history[0].ts < cutoff):
            self._compacted_rv = self._history.popleft().rv
            trimmed = True
        self._writes_since_trim += 1
        # Trimming the table costs a write; batch it rather than pay it on every event.
        if trimmed and self._writes_since_trim >= 500:
            self._writes_since_trim = 0
            self._db.execute("DELETE FROM events WHERE rv <= ?", (self._compacted_rv,))
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('compacted', ?)",
                (self._compacted_rv,),
            )

    def _has_generation(self, rt: ResourceType) -> bool:
        return (
            bool(rt.crd)
            or rt.group in _GENERATION_GROUPS
            or (rt.group == "" and rt.plural in _GENERATION_CORE)
        )

    # -- reads ---------------------------------------------------------------------------

    def get_raw(self, rt: ResourceType, namespace: str | None, name: str) -> bytes:
        rec = self._records(rt).get((namespace or "" if rt.namespaced else "", name))
        if rec is None:
            raise self._not_found(rt, name)
        return rec.raw

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj: Obj = orjson.loads(self.get_raw(rt, namespace, name))
        return obj

    def list_raw(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[bytes], str, str | None]:
        """Items (JSON bytes) sorted by namespace/name, the list's rv, and a continue token."""
        label = selectors.label_matcher(label_selector)
        field = selectors.field_matcher(field_selector)
        start: tuple[str, str] | None = None
        list_rv = self._rv
        if continue_token:
            token_rv, ns, name = _decode_continue(continue_token)
            if token_rv < self._compacted_rv:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            start = (ns, name)
            list_rv = token_rv
        records = self._records(rt)
        keys = sorted(records)
        items: list[bytes] = []
        next_token: str | None = None
        for key in keys:
            if namespace and key[0] != namespace:
                continue
            if start is not None and key <= start:
                continue
            rec = records[key]
            if label is not None and not label({"metadata": {"labels": rec.labels}}):
                continue
            if field is not None and not field(orjson.loads(rec.raw)):
                continue
            if limit and len(items) >= limit:
                last = _key(orjson.loads(items[-1]))
                next_token = _encode_continue(list_rv, *last)
                break
            items.append(rec.raw)
        return items, str(list_rv), next_token

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], str]:
        raws, rv, _ = self.list_raw(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [orjson.loads(r) for r in raws], rv

    def iter_all(self) -> Iterator[tuple[str, bytes]]:
        """Every stored object as (group_resource, raw), for benchmarks and diagnostics."""
        for gr, records in self._data.items():
            for rec in records.values():
                yield gr, rec.raw

    # -- watches -------------------------------------------------------------------------

    def watch_raw(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Watch:
        """Open a watch; from ``resource_version`` if given, else from the current state."""
        watcher = _Watcher(
            group_resource=rt.group_resource,
            namespace=namespace or None,
            label=selectors.label_matcher(label_selector),
            field=selectors.field_matcher(field_selector),
        )
        backlog: list[tuple[str, bytes, int]] = []
        if resource_version in (None, "", "0"):
            # "Start at most recent": synthetic ADDED events for what exists now.
            raws, _, _ = self.list_raw(
                rt, namespace, label_selector=label_selector, field_selector=field_selector
            )
            backlog = [("ADDED", raw, self._rv) for raw in raws]
        else:
            try:
                since = int(resource_version)
            except ValueError as exc:
                raise errors.BadRequest(f"invalid resourceVersion {resource_version!r}") from exc
            if since < self._compacted_rv:
                raise errors.Gone(f"too old resource version: {since} ({self._compacted_rv + 1})")
            probe = _Watcher(
                group_resource=watcher.group_resource,
                namespace=watcher.namespace,
                label=watcher.label,
                field=watcher.field,
            )
            for event in self._history:
                if event.rv > since and event.group_resource == rt.group_resource:
                    probe.offer(event)
            while not probe.queue.empty():
                item = probe.queue.get_nowait()
                if item is not None:
                    backlog.append(item)
        self._watchers[rt.group_resource].add(watcher)
        return Watch(self, watcher, backlog)

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> DictWatch:
        return DictWatch(
            self.watch_raw(
                rt,
                namespace,
                resource_version=resource_version,
                label_selector=label_selector,
                field_selector=field_selector,
            )
        )

    def _remove_watcher(self, watcher: _Watcher) -> None:
        self._watchers.get(watcher.group_resource, set()).discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(v) for v in self._watchers.values())

    # -- create --------------------------------------------------------------------------

    async def create(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        field_manager: str = "",
        dry_run: bool = False,
        field_validation: str = "Strict",
        namespace: str | None = None,
    ) -> Obj:
        raw = self._create_sync(
            rt,
            obj,
            manager=field_manager,
            dry_run=dry_run,
            field_validation=field_validation,
            namespace=namespace,
        )[0]
        out: Obj = orjson.loads(raw)
        return out

    def _create_sync(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        manager: str,
        dry_run: bool,
        field_validation: str = "Strict",
        namespace: str | None = None,
    ) -> tuple[bytes, builtins.list[str]]:
        """Create ``obj``; returns its stored bytes and any validation warnings."""
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise errors.BadRequest("the body must be a JSON object with an object 'metadata'")
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            ns = meta.get("namespace") or namespace or ""
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name") or ""
        ns = meta.get("namespace", "")
        self._check_namespace(rt, ns, creating=True)
        if (ns, name) in self._records(rt):
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise errors.AlreadyExists(
                f'{what} "{name}" already exists', kind=rt.plural, group=rt.group, name=name
            )

        # Server-owned metadata: whatever the client sent here is replaced.
        now = now_rfc3339()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        for server_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(server_field, None)
        if self._has_generation(rt):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if "status" in rt.subresources:
            # Status belongs to controllers: a create cannot set it (REST PrepareForCreate).
            obj.pop("status", None)
        self._prepare_special(rt, obj, old=None)
        warnings = self.admission.admit(
            rt,
            old=None,
            new=obj,
            manager=manager,
            subresource=None,
            field_validation=field_validation,
            now=now,
        )
        raw = self._commit(rt, "ADDED", obj, old_raw=None, dry_run=dry_run)
        if not dry_run:
            self._after_write(rt, obj, old=None)
        return raw, warnings

    # -- update --------------------------------------------------------------------------

    async def update(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        field_manager: str = "",
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> Obj:
        raw, _ = self._update_sync(
            rt,
            obj,
            manager=field_manager,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
        )
        out: Obj = orjson.loads(raw)
        return out

    def _update_sync(
        self,
        rt: ResourceType,
        obj: Obj,
        *,
        manager: str,
        subresource: str | None,
        dry_run: bool,
        field_validation: str = "Strict",
        namespace: str | None = None,
        name: str | None = None,
    ) -> tuple[bytes, builtins.list[str]]:
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise errors.BadRequest("the body must be a JSON object with an object 'metadata'")
        meta = obj.setdefault("metadata", {})
        if name is not None and meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        name = meta.get("name") or name or ""
        if rt.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.BadRequest(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = meta.get("namespace") or namespace or ""
        ns = meta.get("namespace", "") if rt.namespaced else ""
        rec = self._records(rt).get((ns, name))
        if rec is None:
            raise self._not_found(rt, name)
        sent_rv = meta.get("resourceVersion")
        if sent_rv and str(sent_rv) != str(rec.rv):
            what = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {what} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                kind=rt.plural,
                group=rt.group,
                name=name,
            )
        old: Obj = orjson.loads(rec.raw)
        new = self._merge_for_subresource(rt, old, obj, subresource)
        return self._replace(
            rt,
            old,
            new,
            old_raw=rec.raw,
            manager=manager,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
        )

    def _merge_for_subresource(
        self, rt: ResourceType, old: Obj, new: Obj, subresource: str | None
    ) -> Obj:
        """The status endpoint writes only status; the main one ignores status if split."""
        if subresource == "status":
            merged = dict(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        if subresource == "scale":
            scaled: Obj = orjson.loads(orjson.dumps(old))
            replicas = (new.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.Invalid(
                    'Scale.autoscaling "" is invalid: spec.replicas: must be a non-negative '
                    "integer",
                    causes=[errors.Cause("spec.replicas", "must be a non-negative integer")],
                )
            scaled.setdefault("spec", {})["replicas"] = replicas
            return scaled
        if "status" in rt.subresources:
            merged = dict(new)
            if "status" in old:
                merged["status"] = old["status"]
            else:
                merged.pop("status", None)
            return merged
        return new

    def _replace(
        self,
        rt: ResourceType,
        old: Obj,
        new: Obj,
        *,
        old_raw: bytes,
        manager: str,
        subresource: str | None,
        dry_run: bool,
        field_validation: str = "Strict",
    ) -> tuple[bytes, builtins.list[str]]:
        """Store ``new`` over ``old``, keeping what clients may not change."""
        meta = new.setdefault("metadata", {})
        old_meta = old.get("metadata") or {}
        for fixed in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "name"):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        if "deletionGracePeriodSeconds" in old_meta:
            meta["deletionGracePeriodSeconds"] = old_meta["deletionGracePeriodSeconds"]
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if self._has_generation(rt):
            meta["generation"] = int(old_meta.get("generation") or 1)
        self._prepare_special(rt, new, old=old)
        warnings = self.admission.admit(
            rt,
            old=old,
            new=new,
            manager=manager,
            subresource=subresource,
            field_validation=field_validation,
            now=now_rfc3339(),
        )
        # After defaulting: a spec that differs only by defaults is not a new generation.
        if self._has_generation(rt):
            generation = int(old_meta.get("generation") or 1)
            if _spec_view(old) != _spec_view(new) or (
                rt.crd
                and "status" not in rt.subresources
                and old.get("status") != new.get("status")
            ):
                generation += 1
            new.setdefault("metadata", {})["generation"] = generation

        # Removing the last finalizer of an object being deleted completes the deletion.
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            meta.pop("finalizers", None)
            raw = self._commit(rt, "DELETED", new, old_raw=old_raw, dry_run=dry_run)
            if not dry_run:
                self._after_delete(rt, new)
            return raw, warnings
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if new == old:
            # A no-op write is not a change: no new resourceVersion, no event.
            return old_raw, warnings
        raw = self._commit(rt, "MODIFIED", new, old_raw=old_raw, dry_run=dry_run)
        if not dry_run:
            self._after_write(rt, new, old=old)
        return raw, warnings

    # -- patch and apply -----------------------------------------------------------------

    async def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str = admission_mod.MERGE_PATCH,
        field_manager: str = "",
        subresource: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> Obj:
        raw, _ = self.patch_sync(
            rt,
            namespace,
            name,
            patch,
            patch_type=patch_type,
            manager=field_manager,
            subresource=subresource,
            force=force,
            dry_run=dry_run,
            field_validation=field_validation,
        )
        out: Obj = orjson.loads(raw)
        return out

    def patch_sync(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: str,
        manager: str,
        subresource: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        field_validation: str = "Strict",
    ) -> tuple[bytes, builtins.list[str]]:
        ns = (namespace or "") if rt.namespaced else ""
        rec = self._records(rt).get((ns, name))
        is_apply = patch_type in (admission_mod.APPLY_PATCH, admission_mod.APPLY_PATCH_CBOR)
        if is_apply and not manager:
            raise errors.BadRequest(
                "PATCH /apply requires a fieldManager query parameter (fieldManager is required "
                "for apply requests)"
            )
        if rec is None:
            if not is_apply:
                raise self._not_found(rt, name)
            if not isinstance(patch, dict):
                raise errors.BadRequest("the apply body must be an object")
            self._check_apply_identity(rt, patch, ns, name)
            applied = self.admission.apply(
                rt, live=None, applied=patch, manager=manager, force=force, now=now_rfc3339()
            )
            applied.setdefault("metadata", {})["name"] = name
            return self._create_sync(
                rt,
                applied,
                manager=manager,
                dry_run=dry_run,
                field_validation=field_validation,
                namespace=ns or None,
            )
        old: Obj = orjson.loads(rec.raw)
        if is_apply:
            if not isinstance(patch, dict):
                raise errors.BadRequest("the apply body must be an object")
            self._check_apply_identity(rt, patch, ns, name)
            new = self.admission.apply(
                rt, live=old, applied=patch, manager=manager, force=force, now=now_rfc3339()
            )
        else:
            new = self.admission.patch(
                rt, live=old, patch=patch, patch_type=patch_type, manager=manager
            )
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise errors.BadRequest("the patched object has no metadata")
        sent_rv = meta.get("resourceVersion")
        if sent_rv and str(sent_rv) != str(rec.rv):
            raise errors.Conflict(
                f'Operation cannot be fulfilled on {rt.plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                kind=rt.plural,
                group=rt.group,
                name=name,
            )
        new = self._merge_for_subresource(rt, old, new, subresource)
        return self._replace(
            rt,
            old,
            new,
            old_raw=rec.raw,
            manager=manager,
            subresource=subresource,
            dry_run=dry_run,
            field_validation=field_validation,
        )

    @staticmethod
    def _check_apply_identity(rt: ResourceType, body: Obj, namespace: str, name: str) -> None:
        meta = body.get("metadata")
        if not isinstance(meta, dict):
            raise errors.BadRequest("the apply body has no metadata")
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.BadRequest(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        if body.get("kind") and body["kind"] != rt.kind:
            raise errors.BadRequest(
                f"the kind of the applied object ({body['kind']}) does not match {rt.kind}"
            )

    # -- delete --------------------------------------------------------------------------

    async def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        raw = self.delete_sync(
            rt,
            namespace,
            name,
            propagation_policy=propagation_policy,
            grace_period_seconds=grace_period_seconds,
            preconditions=preconditions,
            dry_run=dry_run,
        )
        out: Obj = orjson.loads(raw)
        return out

    def delete_sync(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> bytes:
        """Delete now, or mark for deletion when finalizers (or a policy) must run first."""
        ns = (namespace or "") if rt.namespaced else ""
        rec = self._records(rt).get((ns, name))
        if rec is None:
            raise self._not_found(rt, name)
        obj: Obj = orjson.loads(rec.raw)
        meta = obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.Conflict(
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in "
                    f"object meta: {meta.get('uid')}",
                    kind=rt.plural,
                    name=name,
                )
            want_rv = preconditions.get("resourceVersion")
            if want_rv and str(want_rv) != str(rec.rv):
                raise errors.Conflict(
                    f"Precondition failed: ResourceVersion in precondition: {want_rv}, "
                    f"ResourceVersion in object meta: {rec.rv}",
                    kind=rt.plural,
                    name=name,
                )
        if propagation_policy not in (None, "", "Foreground", "Background", "Orphan"):
            raise errors.BadRequest(
                f"propagationPolicy: Unsupported value: {propagation_policy!r}: supported "
                'values: "Foreground", "Background", "Orphan"'
            )

        if rt.group_resource == "namespaces":
            return self._terminate_namespace(rt, obj, old_raw=rec.raw, dry_run=dry_run)

        finalizers = list(meta.get("finalizers") or [])
        if propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == meta.get("finalizers"):
                return rec.raw
            meta["finalizers"] = finalizers
            meta.setdefault("deletionTimestamp", now_rfc3339())
            meta.setdefault("deletionGracePeriodSeconds", grace_period_seconds or 0)
            return self._commit(rt, "MODIFIED", obj, old_raw=rec.raw, dry_run=dry_run)
        raw = self._commit(rt, "DELETED", obj, old_raw=rec.raw, dry_run=dry_run)
        if not dry_run:
            self._after_delete(rt, obj)
        return raw

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
    ) -> builtins.list[bytes]:
        raws, _, _ = self.list_raw(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        out = []
        for raw in raws:
            ns, name = _key(orjson.loads(raw))
            with contextlib.suppress(errors.NotFound):
                out.append(
                    self.delete_sync(
                        rt, ns, name, propagation_policy=propagation_policy, dry_run=dry_run
                    )
                )
        return out

    # -- namespaces ----------------------------------------------------------------------

    def _terminate_namespace(
        self, rt: ResourceType, obj: Obj, *, old_raw: bytes, dry_run: bool
    ) -> bytes:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return old_raw
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        obj.setdefault("status", {})["phase"] = "Terminating"
        raw = self._commit(rt, "MODIFIED", obj, old_raw=old_raw, dry_run=dry_run)
        if not dry_run:
            self._spawn(self._empty_namespace(meta["name"]))
        return raw

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _empty_namespace(self, namespace: str) -> None:
        """The namespace controller: delete everything inside, then the namespace itself."""
        nlog = log.bind(namespace=namespace)
        while True:
            remaining = 0
            for rt in list(self.registry):
                if not rt.namespaced:
                    continue
                for (ns, name), rec in list(self._records(rt).items()):
                    if ns != namespace:
                        continue
                    remaining += 1
                    if b'"deletionTimestamp"' in rec.raw:
                        continue
                    with contextlib.suppress(errors.NotFound):
                        self.delete_sync(rt, ns, name, propagation_policy="Background")
            if remaining == 0:
                break
            await asyncio.sleep(0.2)
        rt = self._rt("", "v1", "namespaces")
        ns_rec = self._records(rt).get(("", namespace))
        if ns_rec is not None:
            obj: Obj = orjson.loads(ns_rec.raw)
            self._commit(rt, "DELETED", obj, old_raw=ns_rec.raw, dry_run=False)
        nlog.info("namespace deleted")

    def resume_background_work(self) -> None:
        """After a restart, finish namespace deletions that were in progress."""
        for (_, name), rec in list(self._data["namespaces"].items()):
            if b'"deletionTimestamp"' in rec.raw:
                self._spawn(self._empty_namespace(name))

    # -- kinds with side effects ---------------------------------------------------------

    def _prepare_special(self, rt: ResourceType, obj: Obj, *, old: Obj | None) -> None:
        if rt.group_resource == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            status = obj.setdefault("status", {})
            if not (obj.get("metadata") or {}).get("deletionTimestamp"):
                status["phase"] = "Active"
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
        elif rt.group_resource == "customresourcedefinitions.apiextensions.k8s.io":
            self._crd_status(obj)

    def _after_write(self, rt: ResourceType, obj: Obj, *, old: Obj | None) -> None:
        if rt.group_resource == "customresourcedefinitions.apiextensions.k8s.io":
            if old is not None:
                self.registry.remove_crd(old["metadata"]["name"])
                self.admission.crd_removed(old["metadata"]["name"])
            self._register_crd(obj)

    def _after_delete(self, rt: ResourceType, obj: Obj) -> None:
        if rt.group_resource == "customresourcedefinitions.apiextensions.k8s.io":
            name = obj["metadata"]["name"]
            self.admission.crd_removed(name)
            for crt in self.registry.remove_crd(name):
                for rec in list(self._data[crt.group_resource].values()):
                    self._commit(
                        crt, "DELETED", orjson.loads(rec.raw), old_raw=rec.raw, dry_run=False
                    )

    @staticmethod
    def _crd_status(crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        now = now_rfc3339()
        accepted = {k: v for k, v in names.items() if v}
        accepted.setdefault("singular", str(names.get("kind", "")).lower())
        status = crd.setdefault("status", {})
        status["acceptedNames"] = accepted
        status["storedVersions"] = [
            v.get("name") for v in spec.get("versions") or [] if v.get("storage")
        ]
        status["conditions"] = [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ]

    def _register_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group") or ""
        plural = names.get("plural") or ""
        if not group or not plural or not names.get("kind"):
            return
        # The apply engine keeps each CRD's schemas (validation, defaults, OpenAPI) in step.
        self.admission.crd_registered(crd)
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            sub = version.get("subresources") or {}
            self.registry.add(
                ResourceType(
                    group=group,
                    version=str(version.get("name")),
                    plural=plural,
                    kind=str(names["kind"]),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=tuple(k for k in ("status", "scale") if k in sub),
                    singular=str(names.get("singular") or ""),
                    list_kind=str(names.get("listKind") or ""),
                    crd=str(crd["metadata"]["name"]),
                )
            )

    def crd_for(self, rt: ResourceType) -> Obj | None:
        """The CRD object behind a custom resource type."""
        if not rt.crd:
            return None
        rec = self._data["customresourcedefinitions.apiextensions.k8s.io"].get(("", rt.crd))
        if rec is None:
            return None
        crd: Obj = orjson.loads(rec.raw)
        return crd


def load_all(raws: Iterable[bytes]) -> list[Obj]:
    """Parse stored bytes (helper for callers of the raw API)."""
    return [orjson.loads(r) for r in raws]
