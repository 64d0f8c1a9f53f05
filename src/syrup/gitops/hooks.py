"""Walking a sync plan against the cluster: steps in order, hooks run and cleaned up.

:mod:`syrup.gitops.waves` decides the order; this module carries it out for a
:class:`syrup.gitops.sync.Syncer`, following Argo CD's documented behaviour (REFERENCE.md):

* Steps (phase, wave) run one after another. A step's objects are applied in kind order; the
  next step starts once every hook of this one has finished and every other object is healthy
  (Healthy or Suspended), as Argo CD waits between waves.
* A hook with ``BeforeHookCreation`` replaces the previous run's object: the old one (same
  name, or for ``generateName`` hooks every earlier object of that prefix) is deleted and
  gone before the new one is created. ``generateName`` hooks are created anew each sync.
* A hook has succeeded when its health is Healthy (a Job Complete, a Pod Succeeded, any other
  kind once it exists) and failed when Degraded. ``HookSucceeded``/``HookFailed`` delete it
  afterwards.
* A failed hook or apply fails the sync at that step, so nothing of later steps is applied,
  and then the SyncFail hooks run (their own failures are reported, not retried).

The wait has a deadline (:data:`STEP_TIMEOUT`); a step that never becomes healthy fails the
sync naming the objects it waited for, instead of hanging a controller worker forever.

Prunes run inside the Sync phase, each object in its own wave (``PruneLast``: after the last
wave), and a terminated operation stops before the next step or during a wait, deleting the
hooks it was waiting for (as Argo CD's terminate does) and running no SyncFail hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syrup import logs
from syrup.gitops import health, options, sync, waves
from syrup.kube import cache as kcache
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

STEP_TIMEOUT = 300.0
POLL_SECONDS = 0.1


@dataclass
class _Running:
    """One task of the current step after its apply: what to watch for."""

    task: waves.Task
    target: sync.Target
    key: kcache.Key
    result: sync.ResourceResult


async def run_plan(
    syncer: sync.Syncer,
    targets: Sequence[sync.Target],
    results: list[sync.ResourceResult],
    *,
    step_timeout: float = STEP_TIMEOUT,
    prunes: sync.PrunePlan | None = None,
) -> bool:
    """Apply every step in order; False (after running SyncFail hooks) when one failed.

    ``prunes`` run inside the Sync phase: a wave's prunes before that wave's applies (as
    Argo CD runs a wave's prune tasks first), waves without a step of their own before the
    next step, and the ``PruneLast`` group once the last Sync wave is healthy. A terminated
    operation (:meth:`syrup.gitops.sync.Syncer.stopping`) stops before the next step or
    wait, without SyncFail hooks.
    """
    by_obj = {id(t.obj): t for t in targets}
    plan = waves.plan([t.obj for t in targets])
    log = _log.bind(app=syncer.app)
    pending = prunes if prunes is not None else sync.PrunePlan()

    for index, step in enumerate(plan.steps):
        if syncer.stopping():
            return False
        if step.phase is waves.SyncPhase.SYNC:
            await _prune_groups(syncer, pending.take_until(step.wave), results)
        elif step.phase.rank > waves.SyncPhase.SYNC.rank:
            await _prune_groups(syncer, pending.take_rest(), results)
        last = index == len(plan.steps) - 1
        ok, message = await _run_step(
            syncer,
            step,
            by_obj,
            results,
            wait_resources=not last or not pending.empty,
            timeout=step_timeout,
        )
        if not ok:
            if syncer.terminated:
                return False
            log.warning("sync step failed", step=step.label, error=message)
            await _run_fail_hooks(syncer, plan, by_obj, results, timeout=step_timeout)
            return False
    if syncer.stopping():
        return False
    await _prune_groups(syncer, pending.take_rest(), results)
    return True


async def _prune_groups(
    syncer: sync.Syncer, groups: list[list[dict[str, Any]]], results: list[sync.ResourceResult]
) -> None:
    for group in groups:
        if syncer.stopping():
            return
        await syncer.prune(group, results)


async def _run_fail_hooks(
    syncer: sync.Syncer,
    plan: waves.Plan,
    by_obj: dict[int, sync.Target],
    results: list[sync.ResourceResult],
    *,
    timeout: float,
) -> None:
    for step in plan.on_fail:
        await _run_step(syncer, step, by_obj, results, wait_resources=False, timeout=timeout)


async def _run_step(
    syncer: sync.Syncer,
    step: waves.Step,
    by_obj: dict[int, sync.Target],
    results: list[sync.ResourceResult],
    *,
    wait_resources: bool,
    timeout: float,
) -> tuple[bool, str]:
    running: list[_Running] = []
    for task in step.tasks:
        target = by_obj[id(task.obj)]
        if task.spec.hook and task.spec.recreate:
            await _delete_previous(syncer, target, timeout=timeout)
        result, live = await _apply(syncer, target, task)
        results.append(result)
        if live is None:
            return False, result.message
        running.append(_Running(task, target, kcache.key_of(live), result))

    return await _wait_step(syncer, running, wait_resources=wait_resources, timeout=timeout)


async def _apply(
    syncer: sync.Syncer, target: sync.Target, task: waves.Task
) -> tuple[sync.ResourceResult, dict[str, Any] | None]:
    """Apply one task; the object as stored, or None when the apply failed."""
    if not task.spec.hook:
        mine = _options(syncer, target)
        live = syncer.cache.get(target.key)
        owner = sync.claimed_by(live, syncer.cache)
        if owner and owner != syncer.app:
            # Another app tracks this object: report it, never take it over (no tug of war).
            message = f"{target.display} is also part of application {owner}; not applied"
            if mine.fail_on_shared_resource:
                return sync._result(target, sync.ResultCode.SYNC_FAILED, message), None
            return sync._result(target, sync.ResultCode.SYNCED, f"skipped: {message}"), live
        if mine.apply_out_of_sync_only and live is not None:
            status, _ = await syncer.comparer.compare(target, live)
            if status is sync.SyncStatus.SYNCED:
                skipped = sync._result(
                    target, sync.ResultCode.SYNCED, f"{target.display} unchanged"
                )
                return skipped, live
        if mine.replace and live is not None and target.res is not None:
            result = await _replace(syncer, target, live)
        else:
            result = await syncer._apply_one(target)
        result.sync_phase = str(task.phase)
        if result.status is sync.ResultCode.SYNC_FAILED:
            return result, None
        return result, syncer.cache.get(target.key) or target.obj

    if target.res is None:
        await syncer._resolve_late(target)
    if target.res is None:
        return sync._result(target, sync.ResultCode.SYNC_FAILED, "kind not served"), None
    try:
        # A generateName hook is a new object each sync; a named one is applied.
        validate = syncer.validate and target.validate
        if task.spec.generate_name:
            obj = await syncer.client.create(
                target.res, target.obj, field_manager=sync.FIELD_MANAGER, validate=validate
            )
        else:
            obj = await syncer.client.apply(
                target.res, target.obj, field_manager=sync.FIELD_MANAGER, validate=validate
            )
    except kerrors.ApiError as exc:
        syncer.log.warning("hook apply failed", resource=str(target.key), error=exc.message)
        failed = sync._result(target, sync.ResultCode.SYNC_FAILED, exc.message)
        failed.sync_phase = failed.hook_type = str(task.phase)
        return failed, None
    syncer.cache.record(obj)
    key = kcache.key_of(obj)
    group = f".{key.group}" if key.group else ""
    result = sync.ResourceResult(
        key=key,
        version=target.version,
        status=sync.ResultCode.SYNCED,
        message=f"{key.kind.lower()}{group}/{key.name} created",
        sync_phase=str(task.phase),
        hook_type=str(task.phase),
    )
    return result, obj


def _options(syncer: sync.Syncer, target: sync.Target) -> options.SyncOptions:
    """The app's options with the resource's own annotations over them."""
    try:
        return options.effective(syncer.opts.app, target.obj)
    except options.InvalidOption as exc:
        syncer.log.warning("ignoring bad sync options", resource=str(target.key), error=str(exc))
        return syncer.opts.app


async def _replace(
    syncer: sync.Syncer, target: sync.Target, live: dict[str, Any]
) -> sync.ResourceResult:
    """``Replace=true``: PUT the whole object (kubectl replace) instead of applying it."""
    assert target.res is not None
    body = {**target.obj, "metadata": {**target.obj["metadata"]}}
    body["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
    key = target.key
    try:
        obj = await syncer.client.request(
            "PUT",
            target.res.path(key.namespace or None, key.name),
            params={"fieldManager": sync.FIELD_MANAGER},
            body=body,
        )
    except kerrors.ApiError as exc:
        return sync._result(target, sync.ResultCode.SYNC_FAILED, exc.message)
    syncer.cache.record(obj)
    syncer.comparer.remember(target, obj)
    return sync._result(target, sync.ResultCode.SYNCED, f"{target.display} replaced")


async def _wait_step(
    syncer: sync.Syncer,
    running: list[_Running],
    *,
    wait_resources: bool,
    timeout: float,
) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    pending = [r for r in running if r.task.spec.hook or wait_resources]
    while pending:
        if syncer.stopping():
            await _stop_hooks(syncer, pending)
            return False, sync.TERMINATED
        still: list[_Running] = []
        for item in pending:
            live = syncer.cache.get(item.key)
            status = health.assess(live).status
            if item.task.spec.hook:
                if status is health.Status.DEGRADED:
                    message = health.assess(live).message or "hook failed"
                    item.result.message = f"hook failed: {message}"
                    item.result.status = sync.ResultCode.SYNC_FAILED
                    await _delete_if(syncer, item, waves.HookOutcome.FAILED)
                    return False, f"{item.task.display}: {message}"
                if status is health.Status.HEALTHY:
                    await _delete_if(syncer, item, waves.HookOutcome.SUCCEEDED)
                    continue
            elif status in (health.Status.HEALTHY, health.Status.SUSPENDED):
                continue
            still.append(item)
        pending = still
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(i.task.display for i in pending)
            return False, f"timed out after {timeout:.0f}s waiting for {names}"
        await asyncio.sleep(POLL_SECONDS)
    return True, ""


async def _stop_hooks(syncer: sync.Syncer, pending: list[_Running]) -> None:
    """A terminated operation deletes its running hooks (their Jobs' pods go with them)."""
    for item in pending:
        if not item.task.spec.hook:
            continue
        item.result.status = sync.ResultCode.SYNC_FAILED
        item.result.message = "terminated: the operation was terminated while the hook ran"
        await _delete(syncer, item.target, item.key)


async def _delete_if(syncer: sync.Syncer, item: _Running, outcome: waves.HookOutcome) -> None:
    if not item.task.spec.deletes_on(outcome):
        return
    await _delete(syncer, item.target, item.key)


async def _delete(syncer: sync.Syncer, target: sync.Target, key: kcache.Key) -> None:
    res = target.res
    if res is None:
        return
    with contextlib.suppress(kerrors.NotFound):
        await syncer.client.delete(
            res, namespace=key.namespace or None, name=key.name, propagation="Background"
        )
    syncer.log.debug("hook deleted", resource=str(key))


async def _delete_previous(syncer: sync.Syncer, target: sync.Target, *, timeout: float) -> None:
    """BeforeHookCreation: remove the previous run's objects and wait until they are gone."""
    meta = target.obj.get("metadata") or {}
    if meta.get("name"):
        keys = [target.key] if syncer.cache.get(target.key) is not None else []
    else:
        prefix = str(meta.get("generateName") or "")
        keys = [
            kcache.key_of(o)
            for o in syncer.cache.tracked(syncer.app)
            if (o.get("metadata") or {}).get("generateName") == prefix
            and kcache.key_of(o).kind == target.key.kind
            and kcache.key_of(o).group == target.key.group
        ]
    for key in keys:
        await _delete(syncer, target, key)
    deadline = time.monotonic() + timeout
    while any(syncer.cache.get(k) is not None for k in keys) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
