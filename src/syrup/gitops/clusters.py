"""Destination clusters: one client, live cache and comparer per cluster apps deploy to.

Argo CD registers clusters as Secrets labelled ``argocd.argoproj.io/secret-type: cluster``
in its namespace (REFERENCE.md; :mod:`syrup.gitops.credentials` reads them). An app's
``spec.destination`` names one by ``server`` or, without a server, by ``name``; the in-cluster
destination (``https://kubernetes.default.svc`` / ``in-cluster``) is always the controller's
own cluster. Applications themselves always live in the controller's cluster.

A destination's connection (a client, a watch-based cache of everything it holds, and a
comparer with its dry-run memo) is opened lazily, when the first app targets it, and shared by
every app that does. It is closed when the last of those apps leaves it, and when its Secret
changes or goes: apps that used it are reconciled again and reconnect (or report why they
cannot). Watching a cluster costs a list and a watch per kind, so an unused one is not kept.

Credentials never leave this module's objects: errors name the Secret and field, never the
values, and :class:`Connection` shows only its server and name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from syrup import errors, logs
from syrup.gitops import credentials, models, sync, tracking
from syrup.kube import cache as kcache
from syrup.kube import client as kclient
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

#: How long opening a destination (discovery, then listing every kind) may take.
CONNECT_TIMEOUT = 60.0
#: After a failed connect, apps get that failure without a new attempt for a while: first
#: this long, doubling up to RETRY_MAX_SECONDS (reset when a cluster Secret changes).
RETRY_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0


class Unusable(errors.InvalidInput):
    """No usable cluster for a destination: none registered, or its Secret is wrong."""


class Unreachable(errors.Unavailable):
    """The destination's API server did not answer (or refused the credentials)."""


@dataclass(eq=False)
class Connection:
    """Everything the controller needs to deploy to one cluster."""

    server: str
    name: str
    client: kclient.Client = field(repr=False)
    cache: kcache.LiveCache = field(repr=False)
    comparer: sync.Comparer = field(repr=False)
    #: The controller's own cluster (never closed by the pool).
    local: bool = False
    #: The Secret the connection was opened from, and a digest of what it held then.
    secret: kcache.Key | None = None
    digest: str = field(default="", repr=False)


def _digest(secret: Mapping[str, Any]) -> str:
    body = {"data": secret.get("data") or {}, "stringData": secret.get("stringData") or {}}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def is_cluster_secret(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and credentials.secret_type(obj) is credentials.SecretType.CLUSTER


class Pool:
    """The controller's own cluster plus every destination cluster apps currently use."""

    def __init__(
        self,
        local: Connection,
        *,
        namespaces: Iterable[str],
        tracker: tracking.Tracker,
        on_change: kcache.Listener,
        on_discovery: kcache.DiscoveryListener,
    ) -> None:
        self.local = local
        self.namespaces = frozenset(namespaces)
        self.tracker = tracker
        self._on_change = on_change
        self._on_discovery = on_discovery
        #: Cluster Secrets in the controller's namespaces, as the own cache holds them.
        self._secrets: dict[kcache.Key, dict[str, Any]] = {}
        self._open: dict[str, Connection] = {}
        self._opening: dict[str, asyncio.Task[Connection]] = {}
        #: server -> keys of the apps deploying there; app key -> its server.
        self._users: dict[str, set[str]] = {}
        self._server_of: dict[str, str] = {}
        self._closing: set[asyncio.Task[None]] = set()
        #: Apps whose last connect failed.
        self._waiting: set[str] = set()
        #: server -> (no new attempt before, failures in a row, the last failure).
        self._failed: dict[str, tuple[float, int, Unreachable]] = {}
        #: Connection attempts made (for metrics and tests).
        self.attempts = 0

    # -- the registry (cluster Secrets) -----------------------------------------------------

    def load(self, objects: Iterable[dict[str, Any]]) -> None:
        """Index the cluster Secrets already in the cache (at start)."""
        for obj in objects:
            self.secret_changed(kcache.key_of(obj), None, obj)

    def secret_changed(
        self, key: kcache.Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> set[str]:
        """Follow a Secret change; the apps to reconcile again because of it."""
        if key.namespace not in self.namespaces or not (
            is_cluster_secret(old) or is_cluster_secret(new)
        ):
            return set()
        if is_cluster_secret(new):
            assert new is not None
            self._secrets[key] = new
        else:
            self._secrets.pop(key, None)
        affected: set[str] = set()
        for server, conn in list(self._open.items()):
            if conn.secret == key and (new is None or _digest(new) != conn.digest):
                affected |= self._users.get(server, set())
                self._close(server, reason="its Secret changed or was deleted")
        # Apps whose cluster was missing, broken or unreachable: this Secret may be the fix.
        self._failed.clear()
        return affected | self._waiting

    def resolve(self, dest: models.Destination, *, app: str = "") -> credentials.Cluster:
        """The registered cluster a (not in-cluster) destination names.

        Argo CD's rule: ``server`` when it is set, else ``name``. When there is none (or its
        Secret is wrong), ``app`` is reconciled again on the next cluster Secret change.
        """
        try:
            return self._resolve(dest)
        except Unusable:
            if app:
                self._waiting.add(app)
            raise

    def _resolve(self, dest: models.Destination) -> credentials.Cluster:
        wanted_server = dest.server.rstrip("/")
        found: tuple[kcache.Key, dict[str, Any]] | None = None
        for key, secret in sorted(self._secrets.items()):
            server, name = credentials.cluster_identity(secret)
            hit = server.rstrip("/") == wanted_server if wanted_server else name == dest.name
            if hit:
                found = (key, secret)
                break
        if found is None:
            target = dest.server or dest.name or "(empty)"
            field_name = "server" if dest.server else "name"
            raise Unusable(
                f"cluster {target} is not configured (no Secret labelled "
                f"{credentials.SECRET_TYPE_LABEL}=cluster in "
                f"{', '.join(sorted(self.namespaces))} has this {field_name})",
                where="spec.destination",
            )
        try:
            registered = credentials.cluster(found[1])
        except credentials.InvalidCredentials as exc:
            raise Unusable(str(exc), where="spec.destination") from None
        if registered.namespaces:
            # NB: the live cache watches whole kinds; a namespace-scoped cluster would need one
            # watch per namespace and kind. Refused rather than managed cluster-wide.
            raise Unusable(
                f"Secret {found[0].namespace}/{found[0].name}: data.namespaces: "
                "namespace-scoped clusters are not supported",
                where="spec.destination",
            )
        return registered

    def _secret_of(self, target: credentials.Cluster) -> tuple[kcache.Key, dict[str, Any]]:
        for key, secret in sorted(self._secrets.items()):
            if credentials.cluster_identity(secret)[0].rstrip("/") == target.server.rstrip("/"):
                return key, secret
        raise Unusable(f"cluster {target.server} is not configured", where="spec.destination")

    # -- connections ------------------------------------------------------------------------

    async def connect(self, app: str, dest: models.Destination) -> Connection:
        """The connection for ``app``'s destination, opened if needed; the app becomes a user.

        Raises :class:`Unusable` (fix the Secret or the destination) or :class:`Unreachable`.
        """
        try:
            conn = await self._connect(app, dest)
        except (Unusable, Unreachable):
            self.release(app)
            self._waiting.add(app)
            raise
        self._waiting.discard(app)
        return conn

    async def _connect(self, app: str, dest: models.Destination) -> Connection:
        if dest.in_cluster:
            self.release(app)
            return self.local
        target = self._resolve(dest)
        server = target.server.rstrip("/")
        if self._server_of.get(app) != server:
            self.release(app)
        self._server_of[app] = server
        self._users.setdefault(server, set()).add(app)
        conn = self._open.get(server)
        if conn is not None:
            return conn
        failed = self._failed.get(server)
        if failed is not None and time.monotonic() < failed[0]:
            raise Unreachable(str(failed[2]))
        task = self._opening.get(server)
        if task is None:
            key, secret = self._secret_of(target)
            task = asyncio.create_task(self._open_one(target, key, _digest(secret)))
            self._opening[server] = task
            task.add_done_callback(lambda _: self._opening.pop(server, None))
        conn = await asyncio.shield(task)
        if not self._users.get(server):
            # Every app left while it was opening.
            self._close(server, reason="no application uses it")
        return conn

    def release(self, app: str) -> None:
        """``app`` no longer deploys where it did; close that cluster if nobody else does."""
        self._waiting.discard(app)
        server = self._server_of.pop(app, None)
        if server is None:
            return
        users = self._users.get(server, set())
        users.discard(app)
        if not users:
            self._users.pop(server, None)
            self._close(server, reason="no application uses it")

    async def _open_one(
        self, target: credentials.Cluster, secret: kcache.Key, digest: str
    ) -> Connection:
        self.attempts += 1
        where = f"Secret {secret.namespace}/{secret.name}"
        log = _log.bind(cluster=target.server, secret=f"{secret.namespace}/{secret.name}")
        try:
            client = kclient.Client.from_config(target.kubeconfig(), where=where)
        except errors.ConfigError as exc:
            raise Unusable(f"data.config: {exc}", where=where) from None
        try:
            discovery = await asyncio.wait_for(client.discover(), CONNECT_TIMEOUT)
            cache = kcache.LiveCache(
                client,
                discovery,
                tracking_label=tracking.LABEL,
                owner_of=self.tracker.owner,
            )
            cache.listeners.append(self._on_change)
            cache.discovery_listeners.append(self._on_discovery)
            try:
                await asyncio.wait_for(cache.start(), CONNECT_TIMEOUT)
            except BaseException:
                await cache.stop()
                raise
        except (kerrors.ApiError, TimeoutError) as exc:
            await client.close()
            reason = exc.message if isinstance(exc, kerrors.ApiError) else "timed out"
            log.warning("cannot connect to cluster", error=reason)
            failure = Unreachable(f"cluster {target.server} ({where}): {reason}")
            streak = self._failed.get(target.server.rstrip("/"), (0.0, 0, failure))[1] + 1
            delay = min(RETRY_SECONDS * 2 ** (streak - 1), RETRY_MAX_SECONDS)
            self._failed[target.server.rstrip("/")] = (time.monotonic() + delay, streak, failure)
            raise failure from None
        except BaseException:
            await client.close()
            raise
        log.info("connected to cluster", version=discovery.server_version)
        self._failed.pop(target.server.rstrip("/"), None)
        conn = Connection(
            server=target.server,
            name=target.name,
            client=client,
            cache=cache,
            comparer=sync.Comparer(client),
            secret=secret,
            digest=digest,
        )
        self._open[target.server.rstrip("/")] = conn
        return conn

    def _close(self, server: str, *, reason: str) -> None:
        conn = self._open.pop(server, None)
        if conn is None:
            return
        _log.info("disconnecting from cluster", cluster=server, reason=reason)
        task = asyncio.get_running_loop().create_task(_shutdown(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def connected(self) -> list[str]:
        """Servers of the destination clusters open right now."""
        return sorted(self._open)

    async def close(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for server in list(self._open):
            self._close(server, reason="the controller stops")
        for closing in list(self._closing):
            with contextlib.suppress(Exception):
                await closing


async def _shutdown(conn: Connection) -> None:
    await conn.cache.stop()
    await conn.client.close()
