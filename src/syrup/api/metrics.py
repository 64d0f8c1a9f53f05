"""Prometheus metrics for ``/metrics``, named after Argo CD's where the meaning matches.

* ``syrup_app_info`` — one series per Application with its project, repo, destination, health
  and sync status (computed from the controller's cache at scrape time: nothing to keep in
  step);
* ``syrup_app_sync_total{phase}`` — finished sync operations, counted when an Application's
  ``status.operationState.finishedAt`` changes;
* ``syrup_app_reconcile_seconds`` — time per reconcile;
* ``syrup_git_request_total`` / ``syrup_git_request_duration_seconds`` — ``ls-remote`` and
  ``fetch`` against Git remotes;
* ``syrup_api_request_duration_seconds`` — API requests by method, route and status code.

Each server owns its own registry, so several servers in one process do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syrup.gitops import controller, git, models
from syrup.kube import cache as kcache


class Metrics:
    """The metric objects of one API server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sync_total = Counter(
            "syrup_app_sync_total",
            "Sync operations finished, by application and phase.",
            ["namespace", "name", "project", "phase"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "syrup_app_reconcile_seconds",
            "Time one application reconcile took.",
            ["namespace"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.git_requests = Counter(
            "syrup_git_request_total",
            "Git requests made to remotes.",
            ["repo", "request"],
            registry=self.registry,
        )
        self.git_seconds = Histogram(
            "syrup_git_request_duration_seconds",
            "Git request duration.",
            ["repo", "request"],
            registry=self.registry,
        )
        self.api_seconds = Histogram(
            "syrup_api_request_duration_seconds",
            "API request duration.",
            ["method", "route", "code"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )

    def watch_apps(self, apps: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self.registry.register(_AppInfo(apps))

    def on_change(
        self, key: kcache.Key, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        """Count a sync when an Application's last operation gets a new finish time."""
        if key.group != models.GROUP or key.kind != "Application" or new is None:
            return
        before = ((old or {}).get("status") or {}).get("operationState") or {}
        after = (new.get("status") or {}).get("operationState") or {}
        finished = after.get("finishedAt")
        if not finished or finished == before.get("finishedAt"):
            return
        project = str((new.get("spec") or {}).get("project") or "default")
        self.sync_total.labels(key.namespace, key.name, project, str(after.get("phase"))).inc()


class _AppInfo(Collector):
    def __init__(self, apps: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self.apps = apps

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "syrup_app_info",
            "Information about an application.",
            labels=[
                "namespace",
                "name",
                "project",
                "repo",
                "dest_namespace",
                "health_status",
                "sync_status",
            ],
        )
        for app in self.apps():
            meta = app.get("metadata") or {}
            spec = app.get("spec") or {}
            status = app.get("status") or {}
            family.add_metric(
                [
                    str(meta.get("namespace", "")),
                    str(meta.get("name", "")),
                    str(spec.get("project") or "default"),
                    str(
                        (spec.get("source") or (spec.get("sources") or [{}])[0] or {}).get(
                            "repoURL", ""
                        )
                    ),
                    str((spec.get("destination") or {}).get("namespace", "")),
                    str((status.get("health") or {}).get("status", "Unknown")),
                    str((status.get("sync") or {}).get("status", "Unknown")),
                ],
                1.0,
            )
        yield family


class _TimedRepoCache(git.RepoCache):
    """A repo cache that reports each request to a remote to the metrics."""

    def __init__(self, root: Path, *, metrics: Metrics, ls_remote_ttl: float) -> None:
        super().__init__(root, ls_remote_ttl=ls_remote_ttl)
        self.metrics = metrics

    # NB: overrides the cache's private network call so that only real remote requests count
    # (its public ls_remote answers from a TTL cache most of the time).
    async def _ls_remote(self, url: str) -> dict[str, str]:
        started = time.perf_counter()
        try:
            return await super()._ls_remote(url)
        finally:
            self._observe(url, "ls-remote", started)

    async def fetch(self, url: str, *, want: str | None) -> Path:
        started = time.perf_counter()
        try:
            return await super().fetch(url, want=want)
        finally:
            self._observe(url, "fetch", started)

    def _observe(self, url: str, request: str, started: float) -> None:
        self.metrics.git_requests.labels(url, request).inc()
        self.metrics.git_seconds.labels(url, request).observe(time.perf_counter() - started)


class InstrumentedController(controller.Controller):
    """The GitOps controller with reconcile and Git timings reported to :class:`Metrics`."""

    def __init__(self, settings: controller.Settings, *, metrics: Metrics) -> None:
        super().__init__(settings)
        self.metrics = metrics
        self.repos = _TimedRepoCache(
            self.repos.root, metrics=metrics, ls_remote_ttl=settings.ls_remote_ttl
        )

    # NB: wraps the controller's private reconcile step; ask the GitOps owner for a hook.
    async def _reconcile(self, key: str) -> None:
        started = time.perf_counter()
        try:
            await super()._reconcile(key)
        finally:
            namespace = key.split("/", 1)[0]
            self.metrics.reconcile_seconds.labels(namespace).observe(time.perf_counter() - started)
