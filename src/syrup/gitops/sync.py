"""Plan, compare, apply and prune: one Application's desired manifests against the cluster.

The steps follow Argo CD's sync (REFERENCE.md):

* :func:`prepare` turns rendered manifests into :class:`Target` objects: the tracking label
  ``app.kubernetes.io/instance`` is added, namespaced objects without a namespace get the
  destination namespace, and each is matched to a served resource type through discovery.
* :class:`Comparer` decides Synced/OutOfSync per resource from a server-side dry-run apply
  compared with the live object (answers are memoised by desired and live content, so an
  unchanged refresh makes no API call).
* :func:`run` is a sync: a dry run of everything first (any failure stops the sync with
  nothing applied), then apply in sync order, each object pruned in its own wave (or, with
  ``PruneLast=true``, after the last one). Each resource's outcome becomes a
  :class:`ResourceResult` with the server's message instead of an exception.

Syrup applies server-side by default, where Argo CD defaults to ``kubectl apply``: the server
then knows which fields each writer owns, so what an autoscaler or a person set is neither
fought over nor shown as drift, and no copy of the manifest rides in an annotation.
``ServerSideApply=false`` (app-level, or a resource's ``sync-options``) selects kubectl's
client-side apply (:mod:`syrup.gitops.csa`) for those objects; ``Replace=true`` wins over
both. ``RespectIgnoreDifferences=true`` keeps the live value of ignored fields when applying,
and a terminated operation (:meth:`Syncer.stopping`) ends the sync before its next step.

Hooks (``argocd.argoproj.io/hook``) are not part of the app's sync status. The apply step
walks :func:`syrup.gitops.waves.plan` through :mod:`syrup.gitops.hooks`: phases and waves in
order, each wave healthy (hooks finished) before the next, hook delete policies, SyncFail
hooks after a failure. Per-resource and app-level options come from
:mod:`syrup.gitops.options`; ignoreDifferences rules (:mod:`syrup.gitops.ignore`) travel on
each :class:`Target`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from syrup import logs
from syrup.gitops import csa, diff, health, hooks, ignore, models, options, order, tracking, waves
from syrup.kube import cache as kcache
from syrup.kube import client as kclient
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

FIELD_MANAGER = "syrup"
PRUNE_FALSE = "Prune=false"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class ResultCode(StrEnum):
    SYNCED = "Synced"
    SYNC_FAILED = "SyncFailed"
    PRUNED = "Pruned"
    PRUNE_SKIPPED = "PruneSkipped"


class Phase(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"


@dataclass
class Target:
    """One desired object, ready to apply."""

    obj: dict[str, Any]
    key: kcache.Key
    version: str
    res: kclient.ApiResource | None
    hook: bool
    digest: str
    #: The app's ignoreDifferences rules (with system-wide defaults) for this object.
    ignore_rules: tuple[ignore.Rule, ...] = ()
    #: ``ServerSideApply=false``: written by client-side apply (see :mod:`.csa`).
    client_side: bool = False
    #: Client-side apply was asked for but the last-applied annotation would be too large.
    too_big_for_csa: bool = False
    #: ``RespectIgnoreDifferences=true``: ignored fields keep their live value on apply.
    respect_ignore: bool = False
    #: ``Validate=false``: the server ignores unknown fields instead of refusing them.
    validate: bool = True

    @property
    def display(self) -> str:
        group = f".{self.key.group}" if self.key.group else ""
        return f"{self.key.kind.lower()}{group}/{self.key.name}"


@dataclass
class ResourceStatus:
    """One row of ``status.resources``."""

    key: kcache.Key
    version: str
    status: SyncStatus
    health: health.Health | None
    requires_pruning: bool = False
    hook: bool = False
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.key.group,
            "version": self.version,
            "kind": self.key.kind,
            "namespace": self.key.namespace,
            "name": self.key.name,
            "status": str(self.status),
        }
        if self.health is not None:
            out["health"] = self.health.to_json()
        if self.requires_pruning:
            out["requiresPruning"] = True
        if self.hook:
            out["hook"] = True
        return out


@dataclass
class ResourceResult:
    """One row of ``operationState.syncResult.resources``."""

    key: kcache.Key
    version: str
    status: ResultCode
    message: str
    sync_phase: str = "Sync"
    hook_type: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "group": self.key.group,
            "version": self.version,
            "kind": self.key.kind,
            "namespace": self.key.namespace,
            "name": self.key.name,
            "status": str(self.status),
            "message": self.message,
            "syncPhase": self.sync_phase,
        }
        if self.hook_type:
            out["hookType"] = self.hook_type
        return out


@dataclass
class Outcome:
    phase: Phase
    message: str
    results: list[ResourceResult] = field(default_factory=list)


#: The message of an operation someone terminated (Argo CD's wording).
TERMINATED = "Operation terminated"


@dataclass
class PrunePlan:
    """Objects to prune: per wave, and those deferred until after the last wave."""

    by_wave: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    last: list[dict[str, Any]] = field(default_factory=list)

    def take_until(self, wave: int) -> list[list[dict[str, Any]]]:
        """The groups of waves up to ``wave``, in wave order, removed from the plan."""
        due = sorted(w for w in self.by_wave if w <= wave)
        return [self.by_wave.pop(w) for w in due]

    def take_rest(self) -> list[list[dict[str, Any]]]:
        """Every remaining wave, then the PruneLast group."""
        groups = self.take_until(1 << 62)
        if self.last:
            groups.append(self.last)
            self.last = []
        return groups

    @property
    def empty(self) -> bool:
        return not self.by_wave and not self.last


def _digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha1(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def prepare(
    manifests: Sequence[Mapping[str, Any]],
    *,
    app: str,
    namespace: str,
    discovery: kclient.Discovery,
    tracker: tracking.Tracker = tracking.DEFAULT,
) -> list[Target]:
    """Desired objects with the app's tracking mark and default namespace, in sync order."""
    targets = []
    for manifest in manifests:
        obj = copy.deepcopy(dict(manifest))
        if order.is_skipped(obj):
            continue
        meta = obj.setdefault("metadata", {})
        api_version = str(obj["apiVersion"])
        res = discovery.find(api_version, str(obj["kind"]))
        namespaced = res.namespaced if res is not None else True
        if namespaced and not meta.get("namespace") and namespace:
            meta["namespace"] = namespace
        if res is not None and not res.namespaced:
            meta.pop("namespace", None)
        group, _, version = api_version.rpartition("/")
        name = str(meta.get("name") or meta.get("generateName") or "")
        key = kcache.Key(group, str(obj["kind"]), str(meta.get("namespace") or ""), name)
        tracker.stamp(obj, app=app, key=key)
        targets.append(
            Target(
                obj=obj,
                key=key,
                version=version,
                res=res,
                hook=order.is_hook(obj),
                digest=_digest(obj),
            )
        )
    return order_targets(targets)


def order_targets(targets: list[Target]) -> list[Target]:
    return sorted(targets, key=lambda t: order.sort_key(t.obj))


def configure(targets: Sequence[Target], app_options: options.SyncOptions) -> None:
    """Set each target's apply mode from the app's options and the object's annotation.

    The controller calls this when it prepares an app's targets, so comparisons use the same
    mode (client- or server-side) that a sync would write with.
    """
    plain = (
        app_options.server_side_apply is None
        and not app_options.respect_ignore_differences
        and app_options.validates
    )
    for target in targets:
        if plain and options.SYNC_OPTIONS not in _annotations(target.obj):
            # The common case, kept cheap: it runs on every refresh of every app.
            target.client_side = target.too_big_for_csa = target.respect_ignore = False
            target.validate = True
            continue
        try:
            mine = options.effective(app_options, target.obj)
        except options.InvalidOption:
            mine = app_options
        target.validate = mine.validates
        if target.hook:
            continue
        # Replace=true wins over ServerSideApply=false, as in Argo CD.
        wants_csa = mine.server_side_apply is False and not mine.replace
        fits = csa.fits(target.obj) if wants_csa else True
        target.client_side = wants_csa and fits
        target.too_big_for_csa = wants_csa and not fits
        target.respect_ignore = bool(mine.respect_ignore_differences) and bool(target.ignore_rules)


async def write_client_side(
    client: kclient.Client,
    target: Target,
    live: Mapping[str, Any] | None,
    *,
    dry_run: bool = False,
    body: Mapping[str, Any] | None = None,
    validate: bool = True,
) -> dict[str, Any] | None:
    """Create, or three-way patch, ``target`` the way ``kubectl apply`` does.

    Returns the object as the server stores it (or would, with ``dry_run``); None, without a
    request, when there is nothing to patch.
    """
    assert target.res is not None
    desired = csa.annotated(body if body is not None else target.obj)
    params = {"fieldManager": FIELD_MANAGER}
    params["fieldValidation"] = "Strict" if validate and target.validate else "Ignore"
    if dry_run:
        params["dryRun"] = "All"
    if live is None:
        created: dict[str, Any] = await client.request(
            "POST", target.res.path(target.key.namespace or None), params=params, body=desired
        )
        return created
    meta = csa.meta_for(str(target.obj.get("apiVersion", "")), target.key.kind)
    patch = csa.three_way(csa.previous(live), live, desired, meta=meta)
    if not patch:
        return None
    patched: dict[str, Any] = await client.request(
        "PATCH",
        target.res.path(target.key.namespace or None, target.key.name),
        params=params,
        body=patch,
        content_type=csa.STRATEGIC if meta is not None else csa.MERGE,
    )
    return patched


def claimed_by(live: Mapping[str, Any] | None, cache: kcache.LiveCache | None = None) -> str:
    """The app whose tracking the live object carries ("" when none), read as ``cache`` does."""
    if cache is not None:
        return cache.owner(live)
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    return str(labels.get(models.TRACKING_LABEL) or "")


def is_top_level(obj: Mapping[str, Any]) -> bool:
    """Objects another object created (a Deployment's ReplicaSets) are not the app's own;
    neither is an object already being deleted."""
    meta = obj.get("metadata") or {}
    return not meta.get("ownerReferences") and not meta.get("deletionTimestamp")


def _missing_kind_message(target: Target) -> str:
    api = target.obj.get("apiVersion")
    return (
        f"the server does not serve kind {target.key.kind} in {api} "
        f"(is the CustomResourceDefinition for {target.key.kind} installed?)"
    )


class Comparer:
    """Synced or OutOfSync per resource, from dry-run answers memoised by content."""

    def __init__(self, client: kclient.Client) -> None:
        self.client = client
        self._memo: dict[tuple[str, str], tuple[bool, dict[str, Any] | None]] = {}
        self.dry_runs = 0

    def live_digest(self, live: Mapping[str, Any]) -> str:
        return _digest(diff.normalize(live))

    def remember(self, target: Target, live: Mapping[str, Any]) -> None:
        """After an apply, the object as stored is what Git asked for."""
        self._memo[self._memo_key(target, live)] = (True, None)

    def _memo_key(self, target: Target, live: Mapping[str, Any]) -> tuple[str, str]:
        rules = f"/{hash(target.ignore_rules)}" if target.ignore_rules else ""
        mode = "/csa" if target.client_side else ""
        return (target.digest + rules + mode, self.live_digest(live))

    @staticmethod
    def _equal(target: Target, predicted: dict[str, Any], live: Mapping[str, Any]) -> bool:
        """Equal once the fields ignoreDifferences names are left out of both sides."""
        if not target.ignore_rules:
            return diff.equal(predicted, live)
        rules = target.ignore_rules
        return diff.equal(
            ignore.normalize(predicted, rules, live=live), ignore.normalize(live, rules, live=live)
        )

    async def predicted(
        self, target: Target, live: Mapping[str, Any] | None = None, *, validate: bool = True
    ) -> dict[str, Any]:
        """What the server would hold after applying (raises the server's error).

        Client-side targets are predicted by a dry run of the very patch a sync would send
        (no request at all when there is nothing to patch).
        """
        assert target.res is not None
        if target.client_side:
            predicted = await write_client_side(
                self.client, target, live, dry_run=True, validate=validate
            )
            if predicted is None:
                return dict(live or {})
            self.dry_runs += 1
            return predicted
        self.dry_runs += 1
        return await self.client.apply(
            target.res,
            target.obj,
            field_manager=FIELD_MANAGER,
            dry_run=True,
            validate=validate and target.validate,
        )

    async def compare(
        self, target: Target, live: Mapping[str, Any] | None
    ) -> tuple[SyncStatus, str]:
        if target.res is None:
            return SyncStatus.OUT_OF_SYNC, _missing_kind_message(target)
        if live is None:
            return SyncStatus.OUT_OF_SYNC, ""
        memo_key = self._memo_key(target, live)
        known = self._memo.get(memo_key)
        if known is None:
            try:
                predicted = await self.predicted(target, live)
            except kerrors.ApiError as exc:
                return SyncStatus.OUT_OF_SYNC, exc.message
            known = (self._equal(target, predicted, live), predicted)
            if len(self._memo) > 50_000:
                self._memo.clear()
            self._memo[memo_key] = known
        return (SyncStatus.SYNCED if known[0] else SyncStatus.OUT_OF_SYNC), ""

    async def diff_text(self, target: Target, live: Mapping[str, Any] | None) -> str:
        if target.res is None:
            return ""
        predicted = await self.predicted(target, live)
        return diff.unified(live, predicted, name=target.display)


@dataclass
class Comparison:
    status: SyncStatus
    resources: list[ResourceStatus]
    extra: list[dict[str, Any]]
    messages: dict[kcache.Key, str]
    #: Desired objects whose live copy another app already tracks: key -> that app.
    shared: dict[kcache.Key, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return self.status is SyncStatus.OUT_OF_SYNC


async def compare(
    targets: Sequence[Target], *, app: str, cache: kcache.LiveCache, comparer: Comparer
) -> Comparison:
    """The app's sync status and one row per resource (desired, and live extras to prune)."""
    wanted = {t.key for t in targets}
    rows: list[ResourceStatus] = []
    messages: dict[kcache.Key, str] = {}

    shared: dict[kcache.Key, str] = {}

    async def one(target: Target) -> ResourceStatus:
        live = cache.get(target.key)
        owner = claimed_by(live, cache)
        if owner and owner != app:
            shared[target.key] = owner
        status, message = await comparer.compare(target, live)
        if message:
            messages[target.key] = message
        return ResourceStatus(
            key=target.key,
            version=target.version,
            status=status,
            health=health.assess(live) if not target.hook else None,
            hook=target.hook,
            message=message,
        )

    plain = [t for t in targets if not t.hook]
    rows = list(await asyncio.gather(*(one(t) for t in plain)))
    extra = [
        obj
        for obj in cache.tracked(app)
        if kcache.key_of(obj) not in wanted and is_top_level(obj) and not order.is_hook(obj)
    ]
    for obj in extra:
        key = kcache.key_of(obj)
        rows.append(
            ResourceStatus(
                key=key,
                version=str(obj.get("apiVersion", "")).rpartition("/")[2],
                status=SyncStatus.OUT_OF_SYNC,
                health=health.assess(obj),
                requires_pruning=True,
            )
        )
    rows.sort(key=lambda r: (r.key.group, r.key.kind, r.key.namespace, r.key.name))
    # compare-options IgnoreExtraneous: an extra object of that kind does not count.
    ignored = {kcache.key_of(o) for o in extra if _resource_options(o).ignore_extraneous}
    synced = all(r.status is SyncStatus.SYNCED or r.key in ignored for r in rows)
    return Comparison(
        status=SyncStatus.SYNCED if synced else SyncStatus.OUT_OF_SYNC,
        resources=rows,
        extra=extra,
        messages=messages,
        shared=shared,
    )


# -- the sync operation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    prune: bool
    create_namespace: bool
    namespace: str
    dry_run: bool = False
    validate: bool = True
    #: The app's sync options (resource annotations override them per object).
    app: options.SyncOptions = field(default_factory=options.SyncOptions)
    #: How long one wave may take to become healthy (hooks: to finish).
    step_timeout: float = hooks.STEP_TIMEOUT
    #: Only some of the app's resources are synced: nothing else is pruned or reported.
    subset: bool = False


def _result(target: Target, code: ResultCode, message: str) -> ResourceResult:
    phases = order.hook_phases(target.obj)
    return ResourceResult(
        key=target.key,
        version=target.version,
        status=code,
        message=message,
        sync_phase=order.phase(target.obj).label,
        hook_type=phases[0] if phases else "",
    )


class Syncer:
    """Runs one sync of one app against one cluster."""

    def __init__(
        self,
        client: kclient.Client,
        cache: kcache.LiveCache,
        comparer: Comparer,
        *,
        app: str,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.comparer = comparer
        self.app = app
        self.log = _log.bind(app=app)
        self.validate = True
        self.opts = Options(prune=False, create_namespace=False, namespace="")
        #: Asked between steps and while waiting: has someone terminated the operation?
        self._should_stop = should_stop
        self.terminated = False

    def stopping(self) -> bool:
        """Whether the operation was terminated (remembered once seen)."""
        if not self.terminated and self._should_stop is not None and self._should_stop():
            self.log.info("operation terminated")
            self.terminated = True
        return self.terminated

    async def run(self, targets: list[Target], opts: Options) -> Outcome:
        self.validate = opts.validate
        self.opts = opts
        configure(targets, opts.app)
        # A dry run of everything first: one bad object stops the sync before anything lands.
        creatable = {t.key.name for t in targets if t.key.group == "" and t.key.kind == "Namespace"}
        if opts.create_namespace and opts.namespace:
            creatable.add(opts.namespace)
        failures = await self._dry_run_all(targets, creatable)
        if failures:
            return Outcome(
                Phase.FAILED,
                "one or more objects failed to apply (dry run): "
                + "; ".join(f"{r.key}: {r.message}" for r in failures),
                failures,
            )
        if opts.dry_run:
            return Outcome(Phase.SUCCEEDED, "dry run succeeded", self._dry_run_results(targets))

        results: list[ResourceResult] = []
        if opts.create_namespace and opts.namespace:
            failed = await self._create_namespace(opts.namespace)
            if failed is not None:
                return Outcome(Phase.FAILED, failed, [])

        prunes = None if opts.subset else self._prune_plan(targets)
        applied_ok = await hooks.run_plan(
            self, targets, results, step_timeout=self.opts.step_timeout, prunes=prunes
        )
        if self.terminated:
            return Outcome(Phase.FAILED, TERMINATED, results)
        if not applied_ok:
            failed_msgs = [
                f"{r.key}: {r.message}" for r in results if r.status is ResultCode.SYNC_FAILED
            ]
            return Outcome(
                Phase.FAILED,
                "one or more objects failed to apply: " + "; ".join(failed_msgs),
                results,
            )
        return Outcome(Phase.SUCCEEDED, "successfully synced (all tasks run)", results)

    def _dry_run_results(self, targets: list[Target]) -> list[ResourceResult]:
        """What the sync would do to each resource, as Argo CD reports a dry run."""
        results = []
        for target in targets:
            if target.hook:
                continue
            verb = "configured" if self.cache.get(target.key) is not None else "created"
            results.append(_result(target, ResultCode.SYNCED, f"{target.display} {verb} (dry run)"))
        prunes = None if self.opts.subset else self._prune_plan(targets)
        for group in prunes.take_rest() if prunes is not None else []:
            for obj in group:
                skipped = self._prune_skipped(obj)
                key, version = kcache.key_of(obj), _version_of(obj)
                results.append(
                    skipped
                    or ResourceResult(
                        key, version, ResultCode.PRUNED, f"{_display(key)} pruned (dry run)"
                    )
                )
        return results

    async def _dry_run_all(
        self, targets: list[Target], creatable: set[str]
    ) -> list[ResourceResult]:
        crd_kinds = self._kinds_defined_by(targets)
        failures: list[ResourceResult] = []

        async def one(target: Target) -> None:
            if target.res is None:
                # A custom resource whose CRD is part of this same sync cannot be dry-run yet.
                skip = _resource_options(target.obj).skip_dry_run_on_missing_resource
                if (target.key.group, target.key.kind) not in crd_kinds and not skip:
                    failures.append(
                        _result(target, ResultCode.SYNC_FAILED, _missing_kind_message(target))
                    )
                return
            if not target.key.name or "name" not in target.obj["metadata"]:
                return  # generateName hooks are created, not applied
            live = self.cache.get(target.key)
            try:
                if target.hook and live is not None and waves.hook_spec(target.obj).recreate:
                    # The previous run's object is deleted before this one is created, so
                    # checking against it would report immutable fields (a Job's template)
                    # that the sync never patches: check a creation instead.
                    await self._dry_run_create(target)
                else:
                    await self.comparer.predicted(target, live, validate=self.validate)
            except kerrors.NotFound as exc:
                # The namespace may be created by this sync (CreateNamespace or a Namespace).
                if any(f'"{ns}"' in exc.message for ns in creatable):
                    return
                failures.append(_result(target, ResultCode.SYNC_FAILED, exc.message))
            except kerrors.ApiError as exc:
                failures.append(_result(target, ResultCode.SYNC_FAILED, exc.message))

        await asyncio.gather(*(one(t) for t in targets))
        return sorted(failures, key=lambda r: r.key)

    async def _dry_run_create(self, target: Target) -> None:
        """Dry-run creating ``target`` under a generated name (its own name is still taken)."""
        assert target.res is not None
        obj = copy.deepcopy(target.obj)
        meta = obj["metadata"]
        meta["generateName"] = f"{str(meta.pop('name'))[:52]}-"
        await self.client.create(
            target.res,
            obj,
            field_manager=FIELD_MANAGER,
            dry_run=True,
            validate=self.validate and target.validate,
        )

    @staticmethod
    def _kinds_defined_by(targets: list[Target]) -> set[tuple[str, str]]:
        kinds = set()
        for t in targets:
            if t.key.kind == "CustomResourceDefinition":
                spec = t.obj.get("spec") or {}
                kind = (spec.get("names") or {}).get("kind")
                if kind:
                    kinds.add((str(spec.get("group", "")), str(kind)))
        return kinds

    async def _create_namespace(self, namespace: str) -> str | None:
        res = self.cache.discovery.find("v1", "Namespace")
        if res is None or self.cache.get(kcache.Key("", "Namespace", "", namespace)):
            return None
        try:
            obj = await self.client.apply(
                res,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                field_manager=FIELD_MANAGER,
            )
        except kerrors.ApiError as exc:
            return f"namespace {namespace} could not be created: {exc.message}"
        self.cache.record(obj)
        self.log.info("namespace created", namespace=namespace)
        return None

    async def _resolve_late(self, target: Target) -> None:
        """A custom resource whose CRD was just applied: wait for discovery to serve it."""
        for _ in range(40):
            discovery = await self.client.discover()
            res = discovery.find(str(target.obj["apiVersion"]), target.key.kind)
            if res is not None:
                target.res = res
                return
            await asyncio.sleep(0.25)

    async def _apply_one(self, target: Target) -> ResourceResult:
        if target.res is None:
            await self._resolve_late(target)
        if target.res is None:
            return _result(target, ResultCode.SYNC_FAILED, _missing_kind_message(target))
        live = self.cache.get(target.key)
        body = target.obj
        note = ""
        if target.respect_ignore and live is not None:
            # RespectIgnoreDifferences: what ignoreDifferences covers keeps its live value.
            body = ignore.keep_live(target.obj, live, target.ignore_rules)
        if target.too_big_for_csa:
            note = (
                f" (applied server-side: the {csa.LAST_APPLIED} annotation would exceed "
                f"{csa.ANNOTATIONS_LIMIT} bytes)"
            )
        try:
            validate = self.validate and target.validate
            if "name" not in target.obj["metadata"]:
                obj = await self.client.create(
                    target.res, body, field_manager=FIELD_MANAGER, validate=validate
                )
                verb = "created"
            else:
                if target.client_side:
                    written = await write_client_side(
                        self.client, target, live, body=body, validate=validate
                    )
                    obj = written if written is not None else dict(live or {})
                else:
                    obj = await self.client.apply(
                        target.res, body, field_manager=FIELD_MANAGER, validate=validate
                    )
                verb = (
                    "created"
                    if live is None
                    else ("unchanged" if diff.equal(obj, live) else "configured")
                )
        except kerrors.ApiError as exc:
            self.log.warning("apply failed", resource=str(target.key), error=exc.message)
            return _result(target, ResultCode.SYNC_FAILED, exc.message)
        self.cache.record(obj)
        if not target.hook:
            self.comparer.remember(target, obj)
        return _result(target, ResultCode.SYNCED, f"{target.display} {verb}{note}")

    def _prune_plan(self, targets: list[Target]) -> PrunePlan:
        """The app's live objects that Git no longer has, by the wave they are pruned in.

        Argo CD prunes an object in its own wave (its live ``sync-wave`` annotation: it is no
        longer in Git); ``PruneLast=true``, for the app or on the object, defers it until
        every wave of the Sync phase has run.
        """
        wanted = {t.key for t in targets}
        plan = PrunePlan()
        for obj in self.cache.tracked(self.app):
            if kcache.key_of(obj) in wanted or not is_top_level(obj) or order.is_hook(obj):
                continue
            if _resource_options(obj).over(self.opts.app).prune_last:
                plan.last.append(obj)
                continue
            try:
                wave = waves.wave_of(obj)
            except waves.InvalidHook:
                wave = 0
            plan.by_wave.setdefault(wave, []).append(obj)
        return plan

    async def prune(self, objs: list[dict[str, Any]], results: list[ResourceResult]) -> None:
        """Delete ``objs`` (one wave's worth) unless pruning is off or the object opts out."""
        # Prune in reverse sync order: dependents before what they depend on.
        for obj in sorted(objs, key=order.sort_key, reverse=True):
            key, version = kcache.key_of(obj), _version_of(obj)
            skipped = self._prune_skipped(obj)
            if skipped is not None:
                results.append(skipped)
                continue
            res = self.cache.discovery.by_group_kind(key.group, key.kind)
            if res is None:
                continue
            try:
                await self.client.delete(
                    res,
                    namespace=key.namespace or None,
                    name=key.name,
                    propagation=self._propagation(),
                )
            except kerrors.NotFound:
                pass
            except kerrors.ApiError as exc:
                results.append(ResourceResult(key, version, ResultCode.SYNC_FAILED, exc.message))
                continue
            self.cache.forget(key)
            results.append(
                ResourceResult(key, version, ResultCode.PRUNED, f"{_display(key)} pruned")
            )

    def _prune_skipped(self, obj: dict[str, Any]) -> ResourceResult | None:
        """The result for an object left in place (pruning off, or the object opts out)."""
        if self.opts.prune and _resource_options(obj).may_prune:
            return None
        return ResourceResult(
            kcache.key_of(obj),
            _version_of(obj),
            ResultCode.PRUNE_SKIPPED,
            "ignored (requires pruning)",
        )

    def _propagation(self) -> str:
        # NB: Argo CD's default is foreground; Syrup keeps background unless the app asks.
        chosen = self.opts.app.prune_propagation
        return chosen.api_value if chosen is not None else "Background"


def _version_of(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[2]


def _display(key: kcache.Key) -> str:
    return f"{key.kind.lower()}/{key.name}"


def _resource_options(obj: Mapping[str, Any]) -> options.SyncOptions:
    """A resource's own sync/compare options; unreadable ones count as unset (logged)."""
    try:
        return options.for_resource(obj)
    except options.InvalidOption as exc:
        _log.warning("ignoring bad sync options", error=str(exc))
        # Never prune or delete what carries options we cannot read.
        return options.SyncOptions(prune=options.Removal.NEVER, delete=options.Removal.NEVER)
