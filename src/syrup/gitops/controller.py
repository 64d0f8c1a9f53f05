"""The GitOps controller: keep a cluster equal to what Applications' Git sources say.

Shape (after Argo CD's application controller, REFERENCE.md):

* Applications and AppProjects are custom resources (``argoproj.io/v1alpha1``) in the cluster
  the controller runs against; their CRDs and the ``default`` project are installed when
  missing. Applications are watched in a configurable set of namespaces.
* Everything reads watch-based :class:`~syrup.kube.cache.LiveCache` objects: one for the
  controller's own cluster, and one per destination cluster registered as an Argo CD cluster
  Secret that some app deploys to (:mod:`.clusters`). Objects are an app's by the configured
  tracking method (:mod:`.tracking`). A change to an
  Application's spec, to its refresh annotation or operation, or to any object it tracks puts
  the app on a de-duplicated work queue served by N workers; one app is never reconciled by
  two workers at once, and a slow app never blocks the others.
* A *refresh* (every ``refresh_seconds`` plus jitter, on the ``argocd.argoproj.io/refresh``
  annotation, on a spec change, or on :meth:`Controller.refresh_repo`) resolves the revision
  with one ``git ls-remote`` and renders through the cache; any other reconcile only compares
  the last render with the live cache.
* Automated sync runs when the (revision, spec) pair has not been synced yet, when selfHeal is
  on and the live state drifted, or on a backoff after a failed sync; a newly served kind
  (a CRD applied) retries failed apps at once.
* Status goes back in Argo CD's shape and is written only when it changed (apart from
  ``reconciledAt``), so an unchanged refresh cycle makes no API writes.
* A sync still going after :data:`RUNNING_AFTER` seconds is shown ``Running``. Terminating it
  (the API writes phase ``Terminating``, or removes a requested ``operation``) stops it at
  its next step or wait; it ends ``Failed`` with "Operation terminated", its running hooks
  deleted, and automation does not start that (revision, spec) again by itself.
* Issue 6 semantics come from their own modules: AppProject rules (:mod:`.projects`, checked
  before any sync, resources included), sync options (:mod:`.options`), ignoreDifferences
  (:mod:`.ignore`), ``syncPolicy.retry`` (:mod:`.retry`), history and rollback with the
  pause flag (:mod:`.history`: ``operation.rollback`` and the ``syrup.dev/resume-automation``
  annotation), and the resources finalizer's foreground/background variants.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrup import errors, logs, paths
from syrup.gitops import (
    clusters,
    crds,
    credentials,
    git,
    health,
    history,
    ignore,
    models,
    options,
    projects,
    render,
    retry,
    sync,
    tracking,
)
from syrup.gitops.render import chartrepo
from syrup.gitops.render import sources as rsources
from syrup.kube import cache as kcache
from syrup.kube import client as kclient
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

FINALIZER = "resources-finalizer.argocd.argoproj.io"
#: The background variant: resources are deleted with background propagation.
FINALIZER_BACKGROUND = f"{FINALIZER}/background"
FINALIZERS = (FINALIZER, FINALIZER_BACKGROUND, f"{FINALIZER}/foreground")
HISTORY_LIMIT = 10
#: Argo CD's ConfigMap of known SSH host keys for repositories.
KNOWN_HOSTS_CM = "argocd-ssh-known-hosts-cm"
#: A sync still going after this many seconds is marked Running in the Application's status.
RUNNING_AFTER = 1.0


@dataclass(frozen=True)
class Settings:
    """How one controller runs; one frozen object instead of many constructor arguments."""

    kubeconfig: Path | None = None
    context: str | None = None
    data_dir: Path | None = None
    namespaces: tuple[str, ...] = ("argocd",)
    workers: int = 8
    refresh_seconds: float = 120.0
    jitter_seconds: float = 60.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 120.0
    ls_remote_ttl: float = 2.0
    #: Multiplies ``syncPolicy.retry`` waits (tests run minutes-long backoffs in seconds).
    retry_time_scale: float = 1.0
    #: System-wide ignoreDifferences rules (see :func:`syrup.gitops.ignore.load_defaults`).
    ignore_defaults: Path | None = None
    #: How apps mark their objects: label, annotation or annotation+label (:mod:`.tracking`).
    tracking_method: str = "label"


@dataclass
class AppState:
    """What the controller remembers about one Application between reconciles."""

    sha: str | None = None
    spec_hash: str = ""
    result: render.Result | None = None
    targets: list[sync.Target] = field(default_factory=list)
    discovery_id: int = -1
    next_refresh: float = 0.0
    #: When a refresh was requested (``time.monotonic()``), or None.
    force_refresh: float | None = None
    error: str = ""
    error_type: str = ""
    failures: int = 0
    retry_at: float = 0.0
    #: The spec hash of the app when its last refresh failed.
    failed_spec: str = ""
    #: The ``retry_at`` the scheduler last woke the app for (each wakes it once).
    retry_fired: float = 0.0
    last_attempt: tuple[str, str] | None = None
    last_phase: sync.Phase | None = None
    heal_attempts: int = 0
    #: When each failed sync under a ``syncPolicy.retry`` finished (``time.monotonic()``).
    retry_times: list[float] = field(default_factory=list)
    #: The (revision, spec) whose sync was terminated: not retried automatically.
    terminated: tuple[str, str] | None = None
    #: The destination cluster of the last reconcile (None: the controller's own).
    conn: clusters.Connection | None = None
    #: The revision of each source (commit SHA or chart version) of the last render.
    revisions: tuple[str, ...] = ()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) turning ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            patch[key] = value
    return patch


def _relevant(obj: Mapping[str, Any] | None) -> Any:
    """The parts of an Application whose change needs a reconcile (not its status)."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return (
        obj.get("spec"),
        obj.get("operation"),
        meta.get("annotations"),
        meta.get("deletionTimestamp"),
        meta.get("finalizers"),
    )


class Controller:
    """One GitOps controller: Applications in its own cluster, resources on their destinations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = paths.ensure_data_dir(settings.data_dir)
        self.repos = git.RepoCache(data_dir / "gitops", ls_remote_ttl=settings.ls_remote_ttl)
        self.renders = render.RenderCache()
        self.charts = chartrepo.ChartRepos(data_dir / "gitops" / "charts")
        self.sources: rsources.Sources
        self._bad_secrets: set[str] = set()
        self.ignore_defaults: tuple[ignore.Rule, ...] = (
            tuple(ignore.load_defaults(settings.ignore_defaults))
            if settings.ignore_defaults is not None
            else ()
        )
        self.states: dict[str, AppState] = {}
        # The work queue: one token per queued app; apps a commit touched go to the front.
        self._queue: asyncio.Queue[None] = asyncio.Queue()
        self._urgent: collections.deque[str] = collections.deque()
        self._normal: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._discovery_id = 0
        self.client: kclient.Client
        self.cache: kcache.LiveCache
        self.comparer: sync.Comparer
        self.tracker = tracking.Tracker(tracking.parse_method(settings.tracking_method))
        self.clusters: clusters.Pool
        self.ready = asyncio.Event()
        self.reconciles = 0
        self.status_writes = 0
        self.syncs = 0
        #: Apps whose ignoreDifferences name managers (their objects keep managedFields).
        self._manager_apps: dict[str, frozenset[str]] = {}

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.client = kclient.Client.from_kubeconfig(
            self.settings.kubeconfig, context=self.settings.context
        )
        discovery = await self._ensure_crds(await self.client.discover())
        self.comparer = sync.Comparer(self.client)
        self.cache = kcache.LiveCache(
            self.client,
            discovery,
            tracking_label=models.TRACKING_LABEL,
            owner_of=self.tracker.owner if self.tracker.uses_annotation else None,
        )
        # Destination clusters; their registry (cluster Secrets) fills as the cache lists.
        self.clusters = clusters.Pool(
            clusters.Connection(
                server=self.client.server,
                name=models.IN_CLUSTER_NAME,
                client=self.client,
                cache=self.cache,
                comparer=self.comparer,
                local=True,
            ),
            namespaces=self.settings.namespaces,
            tracker=self.tracker,
            on_change=self._on_remote_change,
            on_discovery=self._on_discovery,
        )
        self.cache.listeners.append(self._on_change)
        self.cache.discovery_listeners.append(self._on_discovery)
        await self.cache.start()
        # Built here, not in __init__: a subclass may replace ``repos`` after construction.
        self.repos.credentials = self._git_credentials
        self.repos.known_hosts = self._known_hosts
        self.sources = rsources.Sources(
            self.repos, self.charts, self.renders, chart_auth=self._chart_auth
        )
        await self._ensure_projects()
        for _ in range(max(1, self.settings.workers)):
            self._tasks.append(asyncio.create_task(self._worker()))
        self._tasks.append(asyncio.create_task(self._scheduler()))
        for app_obj in self._applications():
            self._enqueue(self._app_key(app_obj))
        self.ready.set()
        _log.info(
            "controller started",
            server=self.client.server,
            namespaces=",".join(self.settings.namespaces),
            workers=self.settings.workers,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.clusters.close()
        await self.cache.stop()
        await self.client.close()

    async def _ensure_crds(self, discovery: kclient.Discovery) -> kclient.Discovery:
        crd_res = discovery.find("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        missing = [
            c
            for c in crds.ALL
            if discovery.find(models.API_VERSION, c["spec"]["names"]["kind"]) is None
        ]
        if not missing:
            return discovery
        if crd_res is None:
            raise errors.ConfigError("the cluster does not serve CustomResourceDefinitions")
        for crd in missing:
            _log.info("installing CRD", crd=crd["metadata"]["name"])
            await self.client.apply(crd_res, crd, field_manager=sync.FIELD_MANAGER)
        for _ in range(120):
            discovery = await self.client.discover()
            if all(discovery.find(models.API_VERSION, k) for k in ("Application", "AppProject")):
                return discovery
            await asyncio.sleep(0.25)
        raise errors.Unavailable("the Application CRD was installed but is not served")

    async def _ensure_projects(self) -> None:
        ns_res = self.cache.discovery.find("v1", "Namespace")
        proj_res = self.cache.discovery.find(models.API_VERSION, "AppProject")
        assert ns_res is not None and proj_res is not None
        for namespace in self.settings.namespaces:
            if self.cache.get(kcache.Key("", "Namespace", "", namespace)) is None:
                obj = await self.client.apply(
                    ns_res,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                    field_manager=sync.FIELD_MANAGER,
                )
                self.cache.record(obj)
            key = kcache.Key(models.GROUP, "AppProject", namespace, "default")
            if self.cache.get(key) is None:
                obj = await self.client.apply(
                    proj_res, crds.default_project(namespace), field_manager=sync.FIELD_MANAGER
                )
                self.cache.record(obj)

    # -- public triggers ------------------------------------------------------------------

    def refresh_repo(self, url: str) -> int:
        """Refresh at once every app with a source at ``url`` (webhooks, the image updater)."""
        wanted = git.normalize_url(url)
        requested = time.monotonic()
        apps: list[tuple[str, str | None]] = []
        for app_obj in self._applications():
            spec = app_obj.get("spec") or {}
            many = spec.get("sources") if isinstance(spec.get("sources"), list) else None
            listed = many or [spec.get("source")]
            hits = [
                s
                for s in listed
                if isinstance(s, Mapping)
                and s.get("repoURL")
                and git.normalize_url(str(s["repoURL"])) == wanted
            ]
            if hits:
                key = self._app_key(app_obj)
                self.states.setdefault(key, AppState()).force_refresh = requested
                # A multi-source app is re-rendered through its cache entries, source by source.
                revision = None if many else str(hits[0].get("targetRevision") or "")
                apps.append((key, revision))
        task = asyncio.get_running_loop().create_task(
            self._refresh_touched_first(wanted, apps, requested)
        )
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)
        return len(apps)

    async def _refresh_touched_first(
        self, url: str, apps: list[tuple[str, str | None]], requested: float
    ) -> None:
        """Reconcile the apps a new commit touches before the rest of the repository's apps.

        In a monorepo a push changes the revision of every app, but usually the manifests of
        one: resolving once and diffing once (both shared with the reconciles that follow)
        lets that app sync first instead of waiting behind hundreds of unchanged ones.
        """
        touched: list[str] = []
        rest: list[str] = []
        for key, revision in apps:
            state = self.states.get(key)
            if state is None or state.result is None or state.sha is None or revision is None:
                touched.append(key)
                continue
            try:
                resolved = await self.repos.resolve(url, revision, fresh_after=requested)
                changed = (
                    frozenset()
                    if resolved.sha == state.sha
                    else await self.repos.changed_paths(url, state.sha, resolved.sha)
                )
            except git.GitError:
                touched.append(key)  # the reconcile will report it
                continue
            (touched if render.touches(changed, state.result.watched) else rest).append(key)
        for key in touched:
            self._enqueue(key, urgent=True)
        # The unchanged apps only move to the new revision: let the touched ones sync against
        # an uncontended API server first (for a few seconds at most).
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(
            k in self._queued or k in self._active for k in touched
        ):
            await asyncio.sleep(0.05)
        for key in rest:
            self._enqueue(key)

    def refresh(self, namespace: str, name: str) -> None:
        key = f"{namespace}/{name}"
        self.states.setdefault(key, AppState()).force_refresh = time.monotonic()
        self._enqueue(key)

    def idle(self) -> bool:
        """No application is queued, being reconciled or about to be queued right now."""
        return not self._queued and not self._active and not self._side_tasks

    async def diff(self, namespace: str, name: str) -> dict[str, str]:
        """Unified YAML diffs (Secrets masked) of every OutOfSync resource of an app."""
        state = self.states.get(f"{namespace}/{name}")
        if state is None:
            return {}
        out = {}
        conn = state.conn or self.clusters.local
        for target in state.targets:
            if target.hook:
                continue
            live = conn.cache.get(target.key)
            status, _ = await conn.comparer.compare(target, live)
            if status is sync.SyncStatus.OUT_OF_SYNC:
                try:
                    text = await conn.comparer.diff_text(target, live)
                except kerrors.ApiError as exc:
                    text = f"# dry run failed: {exc.message}\n"
                out[str(target.key)] = text
        return out

    # -- queue ----------------------------------------------------------------------------

    def _applications(self) -> list[dict[str, Any]]:
        return [
            o
            for o in self.cache.of_kind(models.GROUP, "Application")
            if (o.get("metadata") or {}).get("namespace") in self.settings.namespaces
        ]

    @staticmethod
    def _app_key(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}"

    def _enqueue(self, key: str, *, urgent: bool = False) -> None:
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            if urgent and key in self._normal:
                self._normal.remove(key)
                self._urgent.append(key)
            return
        self._queued.add(key)
        (self._urgent if urgent else self._normal).append(key)
        self._queue.put_nowait(None)

    def _on_change(
        self, key: kcache.Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        if (
            key.group == models.GROUP
            and key.kind == "Application"
            and key.namespace in self.settings.namespaces
            and _relevant(old) != _relevant(new)
        ):
            self._enqueue(f"{key.namespace}/{key.name}")
        self._on_remote_change(key, old, new)
        if key.kind == "Secret" and not key.group:
            for app_key in self.clusters.secret_changed(key, old, new):
                self._enqueue(app_key)
        default_gone = (key.group, key.kind, key.name, new) == (
            models.GROUP,
            "AppProject",
            "default",
            None,
        )
        if default_gone and key.namespace in self.settings.namespaces:
            # Keep the default project present, as Argo CD does.
            task = asyncio.get_running_loop().create_task(self._ensure_projects())
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    def _on_remote_change(
        self, key: kcache.Key, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        """A change to an object some app tracks (in any cluster) queues that app."""
        for obj in (old, new):
            owner = self.tracker.owner(obj)
            if owner:
                for namespace in self.settings.namespaces:
                    app_key = f"{namespace}/{owner}"
                    if app_key in self.states:
                        self._enqueue(app_key)

    def _on_discovery(self, discovery: kclient.Discovery) -> None:
        self._discovery_id += 1
        for key, state in self.states.items():
            missing = any(t.res is None for t in state.targets)
            # An app under syncPolicy.retry keeps its backoff unless a kind it needs was missing.
            failed = state.last_phase is sync.Phase.FAILED and not state.retry_times
            if missing or failed:
                state.retry_at = 0.0
                self._enqueue(key)

    async def _scheduler(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for key, state in list(self.states.items()):
                # A retry time wakes the app once; later passes leave it to the refresh period.
                retry = 0.0 < state.retry_at <= now and state.retry_fired != state.retry_at
                if retry:
                    state.retry_fired = state.retry_at
                if retry or now >= state.next_refresh:
                    self._enqueue(key)

    async def _worker(self) -> None:
        while True:
            await self._queue.get()
            key = self._urgent.popleft() if self._urgent else self._normal.popleft()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.exception("reconcile failed", app=key, error=str(exc))
                state = self.states.setdefault(key, AppState())
                self._backoff(state)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self._enqueue(key)

    def _backoff(self, state: AppState) -> None:
        state.failures += 1
        # NB: the exponent is capped; an app failing for hours would overflow a float.
        delay = min(
            self.settings.retry_base_seconds * 2.0 ** min(state.failures - 1, 32),
            self.settings.retry_max_seconds,
        )
        state.retry_at = time.monotonic() + delay

    # -- reconcile ------------------------------------------------------------------------

    async def _reconcile(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        obj = self.cache.get(kcache.Key(models.GROUP, "Application", namespace, name))
        if obj is None:
            self.states.pop(key, None)
            self.clusters.release(key)
            return
        self.reconciles += 1
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            await self._finalize(obj, name=name)
            return
        state = self.states.setdefault(key, AppState())
        log = _log.bind(app=key)
        try:
            app = models.parse_application(obj)
        except models.InvalidSpec as exc:
            await self._write_error(obj, state, "InvalidSpecError", str(exc))
            return
        try:
            options.parse(app.sync_policy.options)
            ignore.parse((obj.get("spec") or {}).get("ignoreDifferences"))
        except (options.InvalidOption, ignore.InvalidRule) as exc:
            await self._write_error(obj, state, "InvalidSpecError", str(exc))
            return
        problem = self._check_project(app)
        if problem:
            await self._write_error(obj, state, "InvalidSpecError", problem)
            return
        conn = await self._connect(obj, key, app, state)
        if conn is None:
            return
        if history.resume_requested(obj):
            await self._patch_app(
                obj,
                {
                    "metadata": {"annotations": {history.RESUME_ANNOTATION: None}},
                    **history.pause_patch(paused=False),
                },
            )
            obj = self.cache.get(kcache.Key(models.GROUP, "Application", namespace, name)) or obj
            log.info("automation resumed")

        if self._refresh_due(app, state):
            refreshed = await self._refresh(obj, app, state, log)
            if not refreshed:
                await self._write_error(obj, state, state.error_type, state.error)
                return
        elif state.error:
            # Still waiting to retry a failed refresh: the last good manifests are not what Git
            # holds now, so the app stays Unknown with the error rather than compared to them.
            await self._write_error(obj, state, state.error_type, state.error)
            return
        elif state.discovery_id != self._discovery_id and state.result is not None:
            state.targets = self._prepare(app, state.result)
            state.discovery_id = self._discovery_id
        violation = self._check_resources(app, state.targets)
        if violation:
            await self._write_error(obj, state, "InvalidSpecError", violation)
            return

        if app.name in self._manager_apps:
            await self._fill_managed_fields(conn.cache, state.targets)
        comparison = await sync.compare(
            state.targets, app=app.name, cache=conn.cache, comparer=conn.comparer
        )
        operation_state = await self._maybe_sync(obj, app, state, comparison, log)
        if operation_state is not None:
            comparison = await sync.compare(
                state.targets, app=app.name, cache=conn.cache, comparer=conn.comparer
            )
            # The status to write over is the latest one (a sync may have marked it Running).
            obj = self.cache.get(kcache.Key(models.GROUP, "Application", namespace, name)) or obj
        await self._write_status(obj, app, state, comparison, operation_state)

    def _check_project(self, app: models.Application) -> str | None:
        proj_obj = self.cache.get(
            kcache.Key(models.GROUP, "AppProject", app.namespace, app.project)
        )
        if proj_obj is None:
            return f"spec.project: AppProject '{app.project}' does not exist"
        try:
            project = projects.parse(proj_obj)
        except projects.InvalidProject as exc:
            return f"AppProject '{app.project}': {exc}"
        server, cluster_name = app.destination.server, app.destination.name
        if not app.destination.in_cluster:
            # Argo CD checks the project's rules against the registered cluster's own fields.
            try:
                registered = self.clusters.resolve(
                    app.destination, app=f"{app.namespace}/{app.name}"
                )
            except clusters.Unusable as exc:
                return str(exc)
            server, cluster_name = registered.server, registered.name
        found = next(
            (f for f in map(project.check_source, app.repo_urls) if f), None
        ) or project.check_destination(
            server=server,
            name=cluster_name,
            namespace=app.destination.namespace,
        )
        return found.condition()["message"] if found else None

    def _check_resources(self, app: models.Application, targets: list[sync.Target]) -> str | None:
        """The project's resource white/blacklists over what the app would apply."""
        proj_obj = self.cache.get(
            kcache.Key(models.GROUP, "AppProject", app.namespace, app.project)
        )
        if proj_obj is None:
            return None
        try:
            project = projects.parse(proj_obj)
        except projects.InvalidProject as exc:
            return f"AppProject '{app.project}': {exc}"
        kinds = [
            (t.key.group, t.key.kind, t.res.namespaced if t.res is not None else True)
            for t in targets
        ]
        found = project.check_app(
            repos=(), server="", name=models.IN_CLUSTER_NAME, namespace="", resources=kinds
        )
        found = [v for v in found if v.rule != "spec.destinations"]
        return "; ".join(v.condition()["message"] for v in found) or None

    def _refresh_due(self, app: models.Application, state: AppState) -> bool:
        now = time.monotonic()
        # After a failed refresh of this very spec, only its retry time, a requested refresh or
        # an operation try again: other wake-ups (status writes, commits to other paths) do not.
        backing_off = (
            bool(state.error) and now < state.retry_at and state.failed_spec == app.spec_hash
        )
        return (
            state.force_refresh is not None
            or app.refresh is not None
            or app.operation is not None
            or (state.result is None and not backing_off)
            or (state.spec_hash != app.spec_hash and not backing_off)
            or now >= state.next_refresh
            or (state.retry_at > 0 and now >= state.retry_at and bool(state.error))
        )

    def _conn(self, app: models.Application) -> clusters.Connection:
        """The destination cluster ``app`` was last reconciled against."""
        state = self.states.get(f"{app.namespace}/{app.name}")
        return (state.conn if state is not None else None) or self.clusters.local

    async def _connect(
        self, obj: dict[str, Any], key: str, app: models.Application, state: AppState
    ) -> clusters.Connection | None:
        """The app's destination cluster, or None once the app's status says why not."""
        try:
            state.conn = await self.clusters.connect(key, app.destination)
        except clusters.Unusable as exc:
            state.conn = None
            await self._write_error(obj, state, "InvalidSpecError", str(exc))
            return None
        except clusters.Unreachable as exc:
            state.conn = None
            self._backoff(state)
            state.next_refresh = state.retry_at
            await self._write_error(obj, state, "ComparisonError", str(exc))
            return None
        return state.conn

    def _repo_secrets(self) -> list[credentials.RepoCredentials]:
        """``repository`` and ``repo-creds`` Secrets of the watched namespaces, as the cache
        holds them now (a Secret added or fixed counts from the next git call on)."""
        out = []
        for secret in self.cache.of_kind("", "Secret"):
            meta = secret.get("metadata") or {}
            if meta.get("namespace") not in self.settings.namespaces:
                continue
            if credentials.secret_type(secret) not in {
                credentials.SecretType.REPOSITORY,
                credentials.SecretType.REPO_CREDS,
            }:
                continue
            try:
                out.append(credentials.repo_credentials(secret))
            except credentials.InvalidCredentials as exc:
                name = f"{meta.get('namespace')}/{meta.get('name')}"
                if name not in self._bad_secrets:
                    self._bad_secrets.add(name)
                    _log.warning("ignoring repository credentials", secret=name, error=str(exc))
        return out

    def _known_hosts(self) -> str:
        """``ssh_known_hosts`` of Argo CD's ``argocd-ssh-known-hosts-cm`` in the namespaces."""
        texts = []
        for namespace in self.settings.namespaces:
            cm = self.cache.get(kcache.Key("", "ConfigMap", namespace, KNOWN_HOSTS_CM)) or {}
            text = (cm.get("data") or {}).get("ssh_known_hosts")
            if text:
                texts.append(str(text))
        return "\n".join(texts)

    def _git_credentials(self, url: str) -> credentials.RepoCredentials | None:
        return credentials.match(url, credentials.git_candidates(self._repo_secrets()))

    def _chart_auth(self, url: str) -> chartrepo.Auth:
        found = credentials.match_chart(url, self._repo_secrets())
        if found is None:
            return chartrepo.Auth()
        return chartrepo.Auth(
            username=found.username or None,
            password=found.password or None,
            plain_http=found.force_http,
            insecure=found.insecure,
        )

    def _capabilities(self, app: models.Application | None = None) -> render.Capabilities:
        # Helm sees the destination cluster's version and APIs, as in Argo CD.
        discovery = (self._conn(app) if app is not None else self.clusters.local).cache.discovery
        return render.Capabilities(
            kube_version=discovery.server_version, api_versions=tuple(discovery.api_versions())
        )

    def _prepare(self, app: models.Application, result: render.Result) -> list[sync.Target]:
        targets = sync.prepare(
            result.manifests,
            app=app.name,
            namespace=app.destination.namespace,
            discovery=self._conn(app).cache.discovery,
            tracker=self.tracker,
        )
        # ignoreDifferences: the app's rules (checked in _reconcile) after the defaults.
        obj = self.cache.get(kcache.Key(models.GROUP, "Application", app.namespace, app.name))
        try:
            own = ignore.parse(((obj or {}).get("spec") or {}).get("ignoreDifferences"))
        except ignore.InvalidRule:
            own = []
        rules = (*self.ignore_defaults, *own)
        for target in targets:
            target.ignore_rules = tuple(r for r in rules if r.matches(target.obj))
        # managedFieldsManagers needs managedFields, which the cache keeps only when asked.
        cache = self._conn(app).cache
        managers = frozenset(m for t in targets for r in t.ignore_rules for m in r.managers)
        if managers:
            self._manager_apps[app.name] = managers
            cache.keep_managed_fields = lambda o: self._manager_apps.get(cache.owner(o))
        else:
            self._manager_apps.pop(app.name, None)
        # Client-side apply and RespectIgnoreDifferences change how targets are compared.
        with contextlib.suppress(options.InvalidOption):
            sync.configure(targets, options.parse(app.sync_policy.options))
        return targets

    async def _fill_managed_fields(
        self, cache: kcache.LiveCache, targets: list[sync.Target]
    ) -> None:
        """Fetch once the objects the cache listed before their app needed managedFields."""
        for target in targets:
            live = cache.get(target.key)
            if live is None or target.res is None or "managedFields" in live["metadata"]:
                continue
            with contextlib.suppress(kerrors.ApiError):
                cache.add_managed_fields(
                    await cache.client.get(
                        target.res, namespace=target.key.namespace or None, name=target.key.name
                    )
                )

    async def _refresh(
        self, obj: dict[str, Any], app: models.Application, state: AppState, log: Any
    ) -> bool:
        # A requested refresh must see the remote as it is now, not a cached answer.
        requested = state.force_refresh
        if app.refresh is not None:
            requested = time.monotonic()
        state.force_refresh = None
        try:
            rendered = await self.sources.render(
                app, capabilities=self._capabilities(app), fresh_after=requested
            )
        except (git.GitError, render.RenderError) as exc:
            state.error_type = "ComparisonError"
            state.error = str(exc)
            state.failed_spec = app.spec_hash
            self._backoff(state)
            # The periodic refresh waits for the retry, not for the next scheduler tick.
            state.next_refresh = state.retry_at
            log.warning(
                "refresh failed",
                error=str(exc),
                retry_in=round(state.retry_at - time.monotonic(), 1),
            )
            await self._clear_refresh_annotation(obj, app)
            return False
        if state.sha != rendered.sha:
            log.info("revision resolved", revision=app.source.target_revision, sha=rendered.sha)
        state.sha = rendered.sha
        state.revisions = rendered.revisions
        state.spec_hash = app.spec_hash
        result = rendered.result
        state.result = result
        state.targets = self._prepare(app, result)
        state.discovery_id = self._discovery_id
        state.error = state.error_type = ""
        state.failures = 0 if state.last_phase is not sync.Phase.FAILED else state.failures
        jitter = random.uniform(0, self.settings.jitter_seconds)
        state.next_refresh = time.monotonic() + self.settings.refresh_seconds + jitter
        await self._clear_refresh_annotation(obj, app)
        return True

    async def _clear_refresh_annotation(self, obj: dict[str, Any], app: models.Application) -> None:
        if app.refresh is None:
            return
        patch = {"metadata": {"annotations": {models.REFRESH_ANNOTATION: None}}}
        await self._patch_app(obj, patch)

    async def _patch_app(self, obj: dict[str, Any], patch: Mapping[str, Any]) -> None:
        res = self.cache.discovery.find(models.API_VERSION, "Application")
        assert res is not None
        meta = obj["metadata"]
        try:
            updated = await self.client.merge_patch(
                res, namespace=meta["namespace"], name=meta["name"], patch=patch
            )
        except kerrors.NotFound:
            return
        self.cache.record(updated)

    # -- sync decisions -------------------------------------------------------------------

    async def _maybe_sync(
        self,
        obj: dict[str, Any],
        app: models.Application,
        state: AppState,
        comparison: sync.Comparison,
        log: Any,
    ) -> dict[str, Any] | None:
        assert state.sha is not None
        try:
            rollback = history.rollback_request(obj)
        except history.RollbackRefused as exc:
            await self._patch_app(obj, {"operation": None})
            return self._refused(state, str(exc))
        if rollback is not None:
            result = await self._rollback(obj, app, state, rollback, log)
            await self._patch_app(obj, {"operation": None})
            return result
        if app.operation is not None:
            op = app.operation
            try:
                app_options = options.parse(op.options | app.sync_policy.options)
            except options.InvalidOption as exc:
                await self._patch_app(obj, {"operation": None})
                return self._refused(state, str(exc))
            # operation.sync.revision: another commit than the tracked one, rendered for it.
            targets, revision = state.targets, None
            if app.multi_source and op.revision and op.revision != state.sha:
                await self._patch_app(obj, {"operation": None})
                return self._refused(
                    state,
                    "operation.sync.revision: a multi-source application syncs each source "
                    "at its targetRevision (a revision for one source is not supported)",
                )
            if op.revision and op.revision not in (state.sha, app.source.target_revision):
                try:
                    # A chart source's revision is a chart version, not a commit.
                    revision = (
                        op.revision
                        if app.source.chart
                        else (await self.repos.resolve(app.source.repo_url, op.revision)).sha
                    )
                    targets = await self._targets_at(app, app.source.repo_url, revision)
                except (git.GitError, render.RenderError) as exc:
                    await self._patch_app(obj, {"operation": None})
                    return self._refused(state, f"sync to {op.revision} failed: {exc}")
            # operation.sync.resources: a subset; the rest is neither applied nor pruned.
            subset = ((obj.get("operation") or {}).get("sync") or {}).get("resources")
            if subset:
                targets = [t for t in targets if _selected(t, subset)]
                if not targets:
                    await self._patch_app(obj, {"operation": None})
                    return self._refused(
                        state,
                        "operation.sync.resources: no resource of the application matches "
                        + ", ".join(_describe(r) for r in subset if isinstance(r, Mapping)),
                    )
            opts = sync.Options(
                prune=op.prune and not subset,
                create_namespace="CreateNamespace=true" in (op.options | app.sync_policy.options),
                namespace=app.destination.namespace,
                dry_run=op.dry_run,
                validate="Validate=false" not in (op.options | app.sync_policy.options),
                app=app_options,
                subset=bool(subset),
            )
            initiated = dict((obj.get("operation") or {}).get("initiatedBy") or {})
            result = await self._sync(
                obj,
                app,
                state,
                opts,
                initiated=initiated or {"username": "syrup"},
                targets=targets,
                revision=revision,
            )
            await self._patch_app(obj, {"operation": None})
            return result

        policy = app.sync_policy
        if history.is_paused(obj.get("status") or {}):
            return None
        if not policy.automated or not comparison.drifted:
            if comparison.status is sync.SyncStatus.SYNCED:
                state.heal_attempts = 0
            return None
        if not state.targets and comparison.extra and policy.prune and not policy.allow_empty:
            log.warning("automated sync skipped: it would delete every resource (allowEmpty off)")
            return None
        attempt = (state.sha, app.spec_hash)
        now = time.monotonic()
        if state.last_attempt != attempt:
            reason = "new revision or spec"
        elif state.last_phase is sync.Phase.FAILED:
            if now < state.retry_at or state.terminated == attempt:
                return None
            reason = "retry after failure"
        elif policy.self_heal:
            if state.heal_attempts > 2 and now < state.retry_at:
                return None
            state.heal_attempts += 1
            if state.heal_attempts > 2:
                state.retry_at = now + min(2.0**state.heal_attempts, 60.0)
            reason = "self-heal"
        else:
            return None
        log.info("automated sync", reason=reason, revision=state.sha)
        opts = sync.Options(
            prune=policy.prune,
            create_namespace=policy.has("CreateNamespace=true"),
            namespace=app.destination.namespace,
            validate=not policy.has("Validate=false"),
            app=options.parse(policy.options),
        )
        return await self._sync(obj, app, state, opts, initiated={"automated": True})

    async def _targets_at(self, app: models.Application, url: str, sha: str) -> list[sync.Target]:
        """The app rendered at another commit (rollback, sync to a revision).

        A chart source takes a chart version instead of a commit.
        """
        source = dataclasses.replace(
            app.source,
            repo_url=app.source.repo_url if app.source.chart else url,
            target_revision=sha,
        )
        rendered = await self.sources.render(
            app, capabilities=self._capabilities(app), sources=(source,)
        )
        return self._prepare(app, rendered.result)

    async def _targets_of_sources(
        self, app: models.Application, revisions: list[str], raw_sources: list[Any]
    ) -> list[sync.Target]:
        """A multi-source app rendered with a history entry's sources, each at its revision."""
        if len(revisions) != len(raw_sources):
            raise models.InvalidSpec(
                "revisions and sources differ in length", where="status.history"
            )
        chosen = [
            dataclasses.replace(
                models.parse_source(raw, where=f"status.history sources[{i}]"),
                target_revision=revision,
            )
            for i, (raw, revision) in enumerate(zip(raw_sources, revisions, strict=True))
        ]
        rendered = await self.sources.render(
            app, capabilities=self._capabilities(app), sources=chosen
        )
        return self._prepare(app, rendered.result)

    def _refused(self, state: AppState, message: str) -> dict[str, Any]:
        """An operation that could not start: a Failed operationState saying why."""
        now = _now()
        return {
            "operation": {"sync": {"revision": state.sha or ""}, "initiatedBy": {}},
            "phase": "Failed",
            "message": message,
            "startedAt": now,
            "finishedAt": now,
        }

    async def _rollback(
        self,
        obj: dict[str, Any],
        app: models.Application,
        state: AppState,
        request: history.RollbackRequest,
        log: Any,
    ) -> dict[str, Any]:
        """Apply exactly a history entry's revision (see :mod:`syrup.gitops.history`)."""
        status = obj.get("status") or {}
        try:
            entries = history.parse(status.get("history"))
            plan = history.plan_rollback(
                entries,
                id=request.id,
                automated=app.sync_policy.automated,
                paused=history.is_paused(status),
                pause=request.pause,
            )
        except errors.InvalidInput as exc:
            log.warning("rollback refused", error=str(exc))
            return self._refused(state, str(exc))
        entry = plan.entry
        url = str(entry.source.get("repoURL") or app.source.repo_url)
        # A multi-source entry holds revisions/sources lists instead of revision/source.
        multi = _multi_source_entry(status, entry.id)
        try:
            if multi is not None:
                targets = await self._targets_of_sources(app, *multi)
            else:
                targets = await self._targets_at(app, url, entry.revision)
        except (git.GitError, render.RenderError, models.InvalidSpec) as exc:
            return self._refused(state, f"rollback to {entry.id} failed: {exc}")
        if plan.pause:
            await self._patch_app(
                obj, history.pause_patch(paused=True, reason=f"rollback to history id {entry.id}")
            )
            log.info("automation paused", reason=f"rollback to {entry.id}")
        opts = sync.Options(
            prune=True,
            create_namespace=app.sync_policy.has("CreateNamespace=true"),
            namespace=app.destination.namespace,
            validate=not app.sync_policy.has("Validate=false"),
            app=options.parse(app.sync_policy.options),
        )
        initiated = dict((obj.get("operation") or {}).get("initiatedBy") or {})
        return await self._sync(
            obj,
            app,
            state,
            opts,
            initiated=initiated or {"username": "syrup"},
            targets=targets,
            revision=entry.revision if multi is None else None,
            source=dict(entry.source) if multi is None else None,
            multi=multi,
        )

    async def _sync(
        self,
        obj: dict[str, Any],
        app: models.Application,
        state: AppState,
        opts: sync.Options,
        *,
        initiated: dict[str, Any],
        targets: list[sync.Target] | None = None,
        revision: str | None = None,
        source: dict[str, Any] | None = None,
        multi: tuple[list[str], list[Any]] | None = None,
    ) -> dict[str, Any]:
        assert state.sha is not None
        self.syncs += 1
        started = _now()
        conn = self._conn(app)
        syncer = sync.Syncer(
            conn.client,
            conn.cache,
            conn.comparer,
            app=app.name,
            should_stop=self._termination_check(obj),
        )
        running = asyncio.create_task(
            self._mark_running(obj, started, revision or state.sha, opts, initiated)
        )
        try:
            outcome = await syncer.run(state.targets if targets is None else targets, opts)
        except kerrors.ApiError as exc:
            outcome = sync.Outcome(sync.Phase.ERROR, exc.message, [])
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, kerrors.ApiError):
                await running
        state.last_attempt = (state.sha, app.spec_hash)
        state.last_phase = outcome.phase
        if outcome.phase is sync.Phase.SUCCEEDED:
            state.failures = 0
            state.retry_at = 0.0
            state.terminated = None
        else:
            self._backoff(state)
            self._retry_policy(obj, state)
            if syncer.terminated:
                # Someone stopped this sync on purpose: do not start it again by itself.
                state.terminated = state.last_attempt
        _log.info(
            "sync finished",
            app=f"{app.namespace}/{app.name}",
            phase=str(outcome.phase),
            message=outcome.message[:300],
        )
        # A multi-source app's sync is of all its sources (Argo CD writes lists then).
        if multi is None and app.multi_source and source is None and revision is None:
            multi = (list(state.revisions), list((obj.get("spec") or {}).get("sources") or []))
        if source is None:
            source = (obj.get("spec") or {}).get("source") or {}
        revision = revision or state.sha
        sync_op: dict[str, Any] = {
            "revision": revision,
            "prune": opts.prune,
            **({"dryRun": True} if opts.dry_run else {}),
        }
        if opts.subset:
            requested = ((obj.get("operation") or {}).get("sync") or {}).get("resources")
            sync_op["resources"] = copy.deepcopy(requested)
        op_state: dict[str, Any] = {
            "operation": {"sync": sync_op, "initiatedBy": initiated},
            "phase": str(outcome.phase),
            "message": outcome.message,
            "startedAt": started,
            "finishedAt": _now(),
            "syncResult": {
                "revision": revision,
                "source": source,
                "resources": [r.to_json() for r in outcome.results],
            },
        }
        if multi is not None:
            _as_multi_source(op_state, sources=multi[1], revisions=multi[0])
        return op_state

    def _termination_check(self, obj: Mapping[str, Any]) -> Callable[[], bool]:
        """Whether the operation was terminated since the sync started, read from the cache.

        The API marks a Running operation ``Terminating``; an operation not yet marked
        Running is terminated by removing ``operation`` (see :mod:`syrup.api.service`).
        """
        meta = obj.get("metadata") or {}
        key = kcache.Key(models.GROUP, "Application", str(meta.get("namespace")), meta["name"])
        had_operation = obj.get("operation") is not None

        def phase(o: Mapping[str, Any]) -> Any:
            return ((o.get("status") or {}).get("operationState") or {}).get("phase")

        was_terminating = phase(obj) == "Terminating"

        def terminated() -> bool:
            live = self.cache.get(key)
            if live is None:
                return True
            if phase(live) == "Terminating" and not was_terminating:
                return True
            return had_operation and live.get("operation") is None

        return terminated

    async def _mark_running(
        self,
        obj: dict[str, Any],
        started: str,
        revision: str,
        opts: sync.Options,
        initiated: dict[str, Any],
    ) -> None:
        """Show a sync that takes a while as ``Running`` (what terminate acts on).

        Quick syncs finish before :data:`RUNNING_AFTER` and never pay for this write.
        """
        await asyncio.sleep(RUNNING_AFTER)
        operation_state = {
            "operation": {
                "sync": {"revision": revision, "prune": opts.prune},
                "initiatedBy": initiated,
            },
            "phase": "Running",
            "message": "sync in progress",
            "startedAt": started,
            "finishedAt": None,
        }
        await self._patch_app(obj, {"status": {"operationState": operation_state}})

    def _retry_policy(self, obj: Mapping[str, Any], state: AppState) -> None:
        """``syncPolicy.retry``: its backoff replaces the controller's default one."""
        raw = ((obj.get("spec") or {}).get("syncPolicy") or {}).get("retry")
        try:
            policy = retry.parse(raw)
        except retry.InvalidRetry as exc:
            _log.warning("ignoring syncPolicy.retry", app=self._app_key(obj), error=str(exc))
            return
        if policy is None:
            return
        attempt = state.failures - 1
        if policy.allows(attempt):
            delay = policy.delay(attempt) * self.settings.retry_time_scale
            state.retry_at = time.monotonic() + delay
        else:
            state.retry_at = float("inf")
        state.retry_times.append(time.monotonic())

    # -- status ---------------------------------------------------------------------------

    def _images(self, state: AppState) -> list[str]:
        images: set[str] = set()
        for target in state.targets:
            live = (state.conn or self.clusters.local).cache.get(target.key) or target.obj
            spec = live.get("spec") or {}
            pod = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template") or {}
            pod_spec = pod.get("spec") or (spec if target.key.kind == "Pod" else {})
            for c in list(pod_spec.get("containers") or []) + list(
                pod_spec.get("initContainers") or []
            ):
                if c.get("image"):
                    images.add(str(c["image"]))
        return sorted(images)

    async def _write_status(
        self,
        obj: dict[str, Any],
        app: models.Application,
        state: AppState,
        comparison: sync.Comparison,
        operation_state: dict[str, Any] | None,
    ) -> None:
        old = dict(obj.get("status") or {})
        rows = [r for r in comparison.resources if not r.requires_pruning]
        app_health = health.worst(r.health.status for r in rows if r.health is not None)
        status: dict[str, Any] = {
            "sync": {
                "status": str(comparison.status),
                "revision": state.sha,
                "comparedTo": {
                    "source": (obj.get("spec") or {}).get("source") or {},
                    "destination": (obj.get("spec") or {}).get("destination") or {},
                },
            },
            "health": {"status": str(app_health)},
            "resources": [r.to_json() for r in comparison.resources],
            "sourceType": str(state.result.source_type) if state.result else "",
            "summary": {"images": self._images(state)},
            "reconciledAt": _now(),
        }
        if app.multi_source:
            sync_status = status["sync"]
            del sync_status["revision"], sync_status["comparedTo"]["source"]
            sync_status["revisions"] = list(state.revisions)
            sync_status["comparedTo"]["sources"] = (obj.get("spec") or {}).get("sources") or []
        conditions = self._conditions(
            old,
            comparison,
            operation_state,
            repeated=state.result.repeated if state.result else (),
        )
        if conditions:
            status["conditions"] = conditions
        status["operationState"] = operation_state or old.get("operationState")
        if status["operationState"] is None:
            del status["operationState"]
        entries = list(old.get("history") or [])
        if operation_state is not None and self._deployed(operation_state):
            result = operation_state["syncResult"]
            # revision/source, or revisions/sources for a multi-source app.
            what = {k: result[k] for k in ("revision", "revisions") if k in result}
            where = {k: result[k] for k in ("source", "sources") if k in result}
            entries.append(
                {
                    "id": (entries[-1]["id"] + 1) if entries else 0,
                    **what,
                    "deployStartedAt": operation_state["startedAt"],
                    "deployedAt": operation_state["finishedAt"],
                    **where,
                    "initiatedBy": operation_state["operation"]["initiatedBy"],
                }
            )
        try:
            limit = history.limit_of(obj.get("spec") or {})
        except errors.InvalidInput:
            limit = HISTORY_LIMIT
        if entries and limit:
            status["history"] = entries[-limit:]
        if history.is_paused(old):
            status[history.PAUSE_FIELD] = old[history.PAUSE_FIELD]
        await self._save_status(obj, old, status)

    @staticmethod
    def _deployed(operation_state: Mapping[str, Any]) -> bool:
        """A successful, real (not dry-run), whole (not a subset) sync goes into
        ``status.history``, as in Argo CD: a rollback to an entry deploys all of it."""
        sync_op = operation_state["operation"]["sync"]
        return (
            operation_state["phase"] == "Succeeded"
            and not sync_op.get("dryRun")
            and not sync_op.get("resources")
        )

    def _conditions(
        self,
        old: Mapping[str, Any],
        comparison: sync.Comparison,
        operation_state: dict[str, Any] | None,
        *,
        repeated: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        previous = {c.get("type"): c for c in old.get("conditions") or []}
        wanted: list[tuple[str, str]] = []
        op = operation_state or old.get("operationState") or {}
        if op.get("phase") in ("Failed", "Error"):
            wanted.append(("SyncError", str(op.get("message", ""))))
        unknown = [m for m in comparison.messages.values() if "CustomResourceDefinition" in m]
        if unknown:
            wanted.append(("ComparisonError", "; ".join(sorted(set(unknown)))))
        if comparison.shared:
            # Reported, never fought over: the sync leaves objects another app tracks alone.
            shared = "; ".join(
                f"{key} is also part of application {owner}"
                for key, owner in sorted(comparison.shared.items())
            )
            wanted.append(("SharedResourceWarning", shared))
        if repeated:
            # Several sources produced one object: the last source's copy is the one applied.
            wanted.append(
                (
                    "RepeatedResourceWarning",
                    "; ".join(
                        f"{key} appeared more than once; the last source wins" for key in repeated
                    ),
                )
            )
        out = []
        for kind, message in wanted:
            prev = previous.get(kind)
            stamp = (
                prev.get("lastTransitionTime")
                if prev and prev.get("message") == message
                else _now()
            )
            out.append({"type": kind, "message": message, "lastTransitionTime": stamp})
        return out

    async def _write_error(
        self, obj: dict[str, Any], state: AppState, kind: str, message: str
    ) -> None:
        """Status for an app that could not be compared: the condition names what is wrong.

        An operation waiting on the app cannot run: it fails at once with the same message,
        rather than waiting until the app can be compared again.
        """
        old = dict(obj.get("status") or {})
        previous = {c.get("type"): c for c in old.get("conditions") or []}
        prev = previous.get(kind)
        stamp = (
            prev.get("lastTransitionTime") if prev and prev.get("message") == message else _now()
        )
        status = {
            **old,
            "sync": {**(old.get("sync") or {}), "status": "Unknown"},
            "health": old.get("health") or {"status": "Unknown"},
            "conditions": [{"type": kind, "message": message, "lastTransitionTime": stamp}],
            "reconciledAt": _now(),
        }
        pending = obj.get("operation")
        if pending:
            refused = self._refused(state, f"{kind}: {message}")
            if isinstance(pending, Mapping):
                refused["operation"] = copy.deepcopy(dict(pending))
            status["operationState"] = refused
        await self._save_status(obj, old, status)
        if pending:
            await self._patch_app(obj, {"operation": None})
            _log.info("operation failed", app=self._app_key(obj), reason=kind)

    async def _save_status(
        self, obj: dict[str, Any], old: dict[str, Any], status: dict[str, Any]
    ) -> None:
        def comparable(s: Mapping[str, Any]) -> str:
            return json.dumps({k: v for k, v in s.items() if k != "reconciledAt"}, sort_keys=True)

        if comparable(old) == comparable(status):
            return
        self.status_writes += 1
        await self._patch_app(obj, {"status": merge_patch(old, status)})

    # -- deletion -------------------------------------------------------------------------

    async def _destination_of(self, obj: dict[str, Any]) -> clusters.Connection:
        """The cluster a (deleted) Application deployed to, connected if needed."""
        try:
            app = models.parse_application(obj)
        except models.InvalidSpec:
            return self.clusters.local
        return await self.clusters.connect(self._app_key(obj), app.destination)

    async def _finalize(self, obj: dict[str, Any], *, name: str) -> None:
        """Delete the app's resources, then let the Application go (Argo CD's finalizer).

        The plain finalizer (and ``/foreground``) deletes with foreground propagation, the
        ``/background`` variant with background propagation; objects marked
        ``argocd.argoproj.io/sync-options: Delete=false`` stay. The finalizer is removed only
        once every deleted object is gone; each deletion event brings the app back here.
        """
        finalizers = list((obj.get("metadata") or {}).get("finalizers") or [])
        mine = [f for f in finalizers if f in FINALIZERS]
        if not mine:
            return
        propagation = "Background" if FINALIZER_BACKGROUND in mine else "Foreground"
        meta = obj.get("metadata") or {}
        own_key = kcache.Key(models.GROUP, "Application", str(meta.get("namespace")), name)
        try:
            conn = await self._destination_of(obj)
        except clusters.Unusable as exc:
            # As Argo CD: with no usable destination nothing can be deleted; the app still goes
            # (its controller's invalid-cluster path, see argoproj/argo-cd#19571).
            _log.warning("resources left in place", app=self._app_key(obj), error=str(exc))
            conn = None
        except clusters.Unreachable as exc:
            _log.warning("cannot delete resources yet", app=self._app_key(obj), error=str(exc))
            self.states.setdefault(self._app_key(obj), AppState()).retry_at = time.monotonic() + 5
            return
        remaining = []
        for live in conn.cache.tracked(name) if conn is not None else []:
            assert conn is not None
            key = kcache.key_of(live)
            if key == own_key or (live.get("metadata") or {}).get("ownerReferences"):
                continue
            try:
                keep = not options.for_resource(live).may_delete
            except options.InvalidOption:
                keep = True
            if keep:
                continue
            remaining.append(key)
            if (live.get("metadata") or {}).get("deletionTimestamp"):
                continue
            res = conn.cache.discovery.by_group_kind(key.group, key.kind)
            if res is None:
                continue
            with contextlib.suppress(kerrors.NotFound):
                await conn.client.delete(
                    res, namespace=key.namespace or None, name=key.name, propagation=propagation
                )
        if remaining:
            # Come back when the deletions have landed (events re-queue the app too).
            self.states.setdefault(self._app_key(obj), AppState()).retry_at = time.monotonic() + 1.0
            return
        for f in mine:
            finalizers.remove(f)
        if finalizers:
            await self._patch_app(obj, {"metadata": {"finalizers": finalizers}})
            return
        # NB: with no finalizer left the server deletes the Application at once; recording the
        # patch answer could land after the watch's DELETED event and leave a ghost in the
        # cache (a parent would then wait for it forever), so the cache forgets it instead.
        res = self.cache.discovery.find(models.API_VERSION, "Application")
        assert res is not None
        with contextlib.suppress(kerrors.NotFound):
            await self.client.merge_patch(
                res,
                namespace=meta.get("namespace"),
                name=name,
                patch={"metadata": {"finalizers": []}},
            )
        self.cache.forget(own_key)


def _as_multi_source(op_state: dict[str, Any], *, sources: list[Any], revisions: list[str]) -> None:
    """Argo CD's shape of a multi-source sync: ``revisions`` and ``sources`` lists."""
    op_state["operation"]["sync"].pop("revision", None)
    op_state["operation"]["sync"]["revisions"] = list(revisions)
    result = op_state["syncResult"]
    result.pop("revision", None)
    result.pop("source", None)
    result["revisions"] = list(revisions)
    result["sources"] = list(sources)


def _multi_source_entry(status: Mapping[str, Any], id: int) -> tuple[list[str], list[Any]] | None:
    """The ``revisions`` and ``sources`` of a multi-source history entry, else None."""
    for item in status.get("history") or []:
        if isinstance(item, Mapping) and item.get("id") == id:
            revisions, sources = item.get("revisions"), item.get("sources")
            if isinstance(revisions, list) and isinstance(sources, list):
                return [str(r) for r in revisions], list(sources)
    return None


def _describe(item: Mapping[str, Any]) -> str:
    """A resource filter as the CLI takes it: ``GROUP:KIND:[NAMESPACE/]NAME``."""
    where = f"{item['namespace']}/" if item.get("namespace") else ""
    return f"{item.get('group') or ''}:{item.get('kind')}:{where}{item.get('name')}"


def _selected(target: sync.Target, wanted: Any) -> bool:
    """Whether ``operation.sync.resources`` ({group, kind, name, namespace}) names the target."""
    for item in wanted if isinstance(wanted, list) else []:
        if not isinstance(item, Mapping):
            continue
        if (
            str(item.get("group") or "") == target.key.group
            and item.get("kind") == target.key.kind
            and item.get("name") == target.key.name
            and (not item.get("namespace") or item.get("namespace") == target.key.namespace)
        ):
            return True
    return False


async def run(settings: Settings) -> None:
    """Run a controller until cancelled (``syrup controller`` and ``syrup up`` call this)."""
    controller = Controller(settings)
    await controller.start()
    try:
        await asyncio.Event().wait()
    finally:
        await controller.stop()
