"""Simulated nodes and the workload controllers that run inside ``syrup cluster serve``.

A GitOps controller judges a rollout by the status Kubernetes' own controllers write, so the
local cluster runs those controllers against its storage, with simulated nodes in place of a
kubelet (the approach of the kwok project): pods run no processes, but their lifecycle,
statuses, conditions and events are produced as a real cluster produces them, on a time scale
set by ``Settings.speed``.

The server calls :func:`start` once its storage is open and ``await controllers.stop()`` on
shutdown. Everything here reads and writes through the same storage interface the HTTP layer
uses, with the field managers real components use (``kube-controller-manager``,
``kube-scheduler``, ``kubelet``), and keeps no state that a restart would need: a restarted
server resumes rollouts from what storage holds.

Failure injection annotations for tests and demos are documented in
:mod:`~syrup.cluster.workloads.lifecycle` (``workloads.syrup.dev/fault``,
``workloads.syrup.dev/run-seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib

from syrup import logs
from syrup.cluster.storage import Store
from syrup.cluster.workloads import (
    batch,
    daemonsets,
    deployments,
    gc,
    lifecycle,
    networking,
    nodes,
    replicasets,
    runtime,
    scheduling,
    statefulsets,
    storageclasses,
    sweeper,
)
from syrup.cluster.workloads.settings import DEFAULT_SPEED, Settings, from_flags

__all__ = [
    "DEFAULT_SPEED",
    "FAULT_ANNOTATION",
    "RUN_SECONDS_ANNOTATION",
    "Controllers",
    "Settings",
    "from_flags",
    "start",
]

FAULT_ANNOTATION = lifecycle.FAULT_ANNOTATION
RUN_SECONDS_ANNOTATION = lifecycle.RUN_SECONDS_ANNOTATION

log = logs.get(__name__)


class Controllers:
    """The running controllers of one cluster; :meth:`stop` ends them all."""

    def __init__(self, ctx: runtime.Context, controllers: list[runtime.Controller]) -> None:
        self.ctx = ctx
        self.controllers = controllers
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for informer in self.ctx.informers.values():
            self._tasks.append(loop.create_task(informer.run()))
        # Controllers start once every cache is filled, so their first look sees everything.
        await asyncio.gather(*(i.synced.wait() for i in self.ctx.informers.values()))
        # Nodes and the default StorageClass exist before the server reports ready.
        for controller in self.controllers:
            await controller.startup()
        for controller in self.controllers:
            self._tasks.append(loop.create_task(controller.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for controller in self.controllers:
            await controller.shutdown()
        log.info("workload controllers stopped")

    def stats(self) -> dict[str, int]:
        """Reconciles run per controller since start."""
        return {c.name: c.reconciles for c in self.controllers}

    def idle(self) -> bool:
        """Whether no controller has work queued right now (for tests and benchmarks)."""
        return all(len(c.queue) == 0 for c in self.controllers)


async def start(store: Store, settings: Settings | None = None) -> Controllers:
    """Start the simulated nodes and every workload controller on the running event loop."""
    config = settings or Settings()
    ctx = runtime.Context(store, config)
    controllers: list[runtime.Controller] = [
        nodes.Kubelet(ctx),
        scheduling.Scheduler(ctx),
        replicasets.ReplicaSets(ctx),
        deployments.Deployments(ctx),
        statefulsets.StatefulSets(ctx),
        daemonsets.DaemonSets(ctx),
        batch.Jobs(ctx),
        batch.CronJobs(ctx),
        networking.Endpoints(ctx),
        networking.LoadBalancers(ctx),
        networking.Ingresses(ctx),
        storageclasses.Volumes(ctx),
        networking.Autoscalers(ctx),
        gc.GarbageCollector(ctx),
        sweeper.EventSweeper(ctx),
    ]
    for controller in controllers:
        controller.setup()
    running = Controllers(ctx, controllers)
    await running._run()
    log.info(
        "workload controllers started",
        nodes=config.nodes,
        speed=config.speed,
        registries=sorted(config.registries),
    )
    return running
