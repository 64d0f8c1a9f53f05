"""``syrup up``: the local cluster, the GitOps controller and the API/UI in one process.

Order of start: the local cluster (unless ``--kubeconfig`` points at a real one), then the
controller (it installs the Application CRDs and the ``default`` project), then the demo (a
bare repo in the data dir and its app-of-apps Application, on a new data dir unless
``--no-demo``), then the API/UI server. Each component logs when it is ready; SIGINT/SIGTERM
stop them in reverse order. All state is in the data dir, so a second ``syrup up`` resumes
with every Application as it was.

Pushes to the demo's local bare repo have no webhook sender, so a small watcher notices its
refs change and asks the controller to refresh at once (what a push webhook does for a hosted
repository).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from syrup import __version__, demo, errors, logs, paths
from syrup.api import metrics as api_metrics
from syrup.api import server as api_server
from syrup.cluster import server as cluster_server
from syrup.gitops import controller as gcontroller
from syrup.gitops import models
from syrup.kube import cache as kcache

_log = logs.get(__name__)

STATE_FILE = "up.json"


@dataclass(frozen=True)
class Settings:
    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    kubeconfig: Path | None = None
    context: str | None = None
    #: None: the demo on a new data dir only; True/False: always/never.
    demo: bool | None = None
    namespace: str = "argocd"
    refresh_seconds: float = 120.0
    reset_admin_password: bool = False
    #: label, annotation or annotation+label (see syrup.gitops.tracking).
    tracking_method: str = "label"


@dataclass(frozen=True)
class Banner:
    url: str
    username: str
    password: str | None
    kubeconfig: Path
    demo_repo: str | None
    webhook_secret_path: Path
    password_reset: bool = False


class Platform:
    """Every component of ``syrup up``, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = paths.ensure_data_dir(settings.data_dir)
        self.cluster: cluster_server.LocalCluster | None = None
        self.controller: api_metrics.InstrumentedController | None = None
        self.api: api_server.ApiServer | None = None
        self.demo_url: str | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> Banner:
        state_path = self.data_dir / STATE_FILE
        fresh = not state_path.exists()
        kubeconfig = self.settings.kubeconfig
        if kubeconfig is None:
            self.cluster = cluster_server.LocalCluster(
                cluster_server.ServeSettings(data_dir=self.data_dir, host="127.0.0.1", port=0)
            )
            await self.cluster.start()
            kubeconfig = self.cluster.kubeconfig

        metrics = api_metrics.Metrics()
        self.controller = api_metrics.InstrumentedController(
            gcontroller.Settings(
                kubeconfig=kubeconfig,
                context=self.settings.context if self.settings.kubeconfig else None,
                data_dir=self.data_dir,
                namespaces=(self.settings.namespace,),
                refresh_seconds=self.settings.refresh_seconds,
                tracking_method=self.settings.tracking_method,
            ),
            metrics=metrics,
        )
        await self.controller.start()

        want_demo = fresh if self.settings.demo is None else self.settings.demo
        if want_demo:
            await self._install_demo()
        elif demo.bare_repo(self.data_dir).exists():
            self.demo_url = demo.repo_url(self.data_dir)
        if self.demo_url:
            self._watch = asyncio.create_task(self._watch_demo_pushes(self.demo_url))

        self.api = api_server.ApiServer(
            api_server.Settings(
                data_dir=self.data_dir,
                host=self.settings.host,
                port=self.settings.port,
                namespace=self.settings.namespace,
                reset_admin_password=self.settings.reset_admin_password,
            ),
            ctl=self.controller,
            metrics=metrics,
        )
        await self.api.start()
        state_path.write_text(json.dumps({"version": __version__, "started": time.time()}))
        return Banner(
            url=self.api.url,
            username="admin",
            password=self.api.initial_password,
            kubeconfig=kubeconfig,
            demo_repo=self.demo_url,
            webhook_secret_path=self.api.webhook_secret_path,
            password_reset=self.settings.reset_admin_password,
        )

    async def _install_demo(self) -> None:
        assert self.controller is not None
        url = await asyncio.to_thread(demo.seed, self.data_dir)
        self.demo_url = url
        ctl = self.controller
        key = kcache.Key(models.GROUP, "Application", self.settings.namespace, demo.ROOT_APP)
        if ctl.cache.get(key) is not None:
            return
        res = ctl.cache.discovery.find(models.API_VERSION, "Application")
        if res is None:
            raise errors.Unavailable("the Application CRD is not served")
        obj = await ctl.client.create(
            res,
            demo.root_application(url, namespace=self.settings.namespace),
            field_manager="syrup-up",
        )
        ctl.cache.record(obj)
        _log.info("demo installed", app=demo.ROOT_APP, repo=url)

    async def _watch_demo_pushes(self, url: str) -> None:
        assert self.controller is not None
        last = demo.refs_stamp(self.data_dir)
        while True:
            await asyncio.sleep(1.0)
            now = await asyncio.to_thread(demo.refs_stamp, self.data_dir)
            if now != last:
                last = now
                count = self.controller.refresh_repo(url)
                _log.info("demo repository changed", refreshed=count)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.api is not None:
            await self.api.stop()
        if self.controller is not None:
            with contextlib.suppress(Exception):
                await self.controller.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        _log.info("syrup stopped")


async def serve(settings: Settings, *, on_ready: Callable[[Banner], None]) -> None:
    """Start everything, call ``on_ready``, run until SIGINT/SIGTERM, stop everything."""
    platform = Platform(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        banner = await platform.start()
        on_ready(banner)
        await stop.wait()
        _log.info("shutting down")
    finally:
        await platform.stop()
