"""Run the API server inside the caller's event loop (``syrup up`` owns the loop and signals).

State lives in ``DATA_DIR/api/``: ``accounts.json`` (bcrypt password hashes, token digests),
``policy.csv`` (RBAC lines in Argo CD's format) and ``webhook-secret`` (generated on first
start; GitHub/GitLab/Gitea webhooks are signed with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from syrup import errors, logs
from syrup.api import app as api_app
from syrup.api import auth, events, metrics, rbac, service
from syrup.gitops import controller as gcontroller
from syrup.updater import config as updater_config
from syrup.updater import http as updater_http
from syrup.updater import updating

_log = logs.get(__name__)

# casbin logs its whole model at INFO each time an enforcer is built.
logging.getLogger("casbin").setLevel(logging.WARNING)

ENV_ADMIN_PASSWORD = "SYRUP_ADMIN_PASSWORD"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    namespace: str = "argocd"
    #: Give ``admin`` a new generated password (for a lost first-start password).
    reset_admin_password: bool = False


def _webhook_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


class ApiServer:
    """The REST API, webhooks, metrics and UI over one running controller."""

    def __init__(
        self, settings: Settings, *, ctl: gcontroller.Controller, metrics: metrics.Metrics
    ) -> None:
        self.settings = settings
        state = settings.data_dir / "api"
        state.mkdir(parents=True, exist_ok=True)
        state.chmod(0o700)
        self.accounts = auth.Accounts(state / "accounts.json")
        self.initial_password = self.accounts.ensure_admin(
            password=os.environ.get(ENV_ADMIN_PASSWORD) or None
        )
        if settings.reset_admin_password and self.initial_password is None:
            self.initial_password = auth.generate_password()
            self.accounts.set_password(auth.ADMIN, current=None, new=self.initial_password)
            _log.warning("admin password reset")
        self.webhook_secret_path = state / "webhook-secret"
        self.broker = events.Broker()
        self.metrics = metrics
        self.ctl = ctl
        self.context = api_app.Context(
            service=service.Service(ctl, namespace=settings.namespace),
            accounts=self.accounts,
            policy=rbac.Policy(state / "policy.csv"),
            metrics=metrics,
            broker=self.broker,
            webhook_secret=_webhook_secret(self.webhook_secret_path),
        )
        self.port = settings.port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.image_events_token_path = state / "image-events-token"
        self._updater: updating.Updater | None = None
        self._updater_worker: updater_http.Worker | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self.ctl.cache.listeners.append(self.context.service.on_change)
        self.ctl.cache.listeners.append(self.broker.on_change)
        self.ctl.cache.listeners.append(self.metrics.on_change)
        self.metrics.watch_apps(self.context.service.applications)
        config = uvicorn.Config(
            api_app.create_app(self.context, routers=[self._image_events_router()]),
            host=self.settings.host,
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            server_header=False,
        )
        # Bind here rather than inside uvicorn, whose bind failure exits the process.
        sock = socket.socket(socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.host, self.settings.port))
        except OSError as exc:
            sock.close()
            raise errors.Unavailable(
                f"the API server could not listen on {self.settings.host}:"
                f"{self.settings.port}: {exc.strerror} (try --port)"
            ) from exc
        self._server = _OwnedSignals(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                with contextlib.suppress(BaseException):
                    self._task.result()
                raise errors.Unavailable(
                    f"the API server could not listen on {self.settings.host}:"
                    f"{self.settings.port} (is the port in use? try --port)"
                )
            await asyncio.sleep(0.02)
        sockets = [s for srv in self._server.servers for s in (srv.sockets or [])]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        _log.info("API and UI ready", url=self.url)

    def _image_events_router(self) -> Any:
        """Mount the image updater's intake: registry pushes become commits in Git.

        The updater runs on its own thread; after each push it asks the controller (on this
        loop) to refresh the applications whose source is the pushed repository at once.
        Its configuration is ``DATA_DIR/updater.yaml`` when present.
        """
        loop = asyncio.get_running_loop()

        def on_pushed(repo_url: str, branch: str, sha: str) -> None:
            loop.call_soon_threadsafe(self.ctl.refresh_repo, repo_url)

        path = self.settings.data_dir / "updater.yaml"
        cfg = updater_config.load(path) if path.exists() else updater_config.UpdaterConfig()
        self._updater = updating.Updater(
            updating.UpdaterSettings(
                data_dir=self.settings.data_dir, config=cfg, on_pushed=on_pushed
            )
        )
        self._updater_worker = updater_http.Worker(self._updater, retry_failed_seconds=300.0)
        self._updater_worker.start()
        return updater_http.router(
            self._updater,
            token=_webhook_secret(self.image_events_token_path),
            source_secrets={},
            wake=self._updater_worker.wake,
        )

    async def stop(self) -> None:
        if self._updater_worker is not None:
            await asyncio.to_thread(self._updater_worker.stop)
        if self._updater is not None:
            self._updater.close()
        self.broker.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(ValueError):
            self.ctl.cache.listeners.remove(self.context.service.on_change)
        with contextlib.suppress(ValueError):
            self.ctl.cache.listeners.remove(self.broker.on_change)
        with contextlib.suppress(ValueError):
            self.ctl.cache.listeners.remove(self.metrics.on_change)


class _OwnedSignals(uvicorn.Server):
    """Leaves SIGINT/SIGTERM to ``syrup up``, which stops every component in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
