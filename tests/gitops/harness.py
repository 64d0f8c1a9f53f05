"""Running the real controller beside a test: its own event loop in a thread, real cluster.

Tests drive the cluster the way a user does (the pinned ``kubectl``, HTTP requests) and read
Applications back; the controller object is at hand for what only it knows (render counts,
diffs, refresh requests).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from syrup.gitops import controller as gcontroller
from syrup.gitops import credentials

T = TypeVar("T")

APPS = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications"


class Running:
    """A started controller on a private event loop."""

    def __init__(self, settings: gcontroller.Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.controller = gcontroller.Controller(settings)
        self.call(self.controller.start(), timeout=120)

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn: Callable[[], T]) -> T:
        async def wrapped() -> T:
            return fn()

        return self.call(wrapped())

    def refresh_repo(self, url: str) -> int:
        return self.run(lambda: self.controller.refresh_repo(url))

    def stop(self) -> None:
        try:
            self.call(self.controller.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def settings(kubeconfig: Path, data_dir: Path, *namespaces: str) -> gcontroller.Settings:
    return gcontroller.Settings(
        kubeconfig=kubeconfig,
        data_dir=data_dir,
        namespaces=namespaces,
        workers=4,
        refresh_seconds=600,
        jitter_seconds=0,
        retry_base_seconds=0.5,
        retry_max_seconds=3,
        ls_remote_ttl=0.5,
    )


def application(
    name: str,
    namespace: str,
    *,
    repo: str,
    path: str,
    dest: str,
    revision: str = "HEAD",
    automated: dict[str, Any] | None = None,
    options: list[str] | None = None,
    **source: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": repo, "targetRevision": revision, "path": path, **source},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
        "syncPolicy": {"syncOptions": options if options is not None else ["CreateNamespace=true"]},
    }
    if automated is not None:
        spec["syncPolicy"]["automated"] = automated
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def apply(client: httpx.Client, obj: dict[str, Any], path: str) -> dict[str, Any]:
    """Server-side apply as a person's tool would (field manager ``test``)."""
    meta = obj["metadata"]
    response = client.patch(
        f"{path}/{meta['name']}",
        params={"fieldManager": "test", "force": "true"},
        content=httpx.Request("POST", "/", json=obj).content,
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert response.status_code < 300, response.text
    out: dict[str, Any] = response.json()
    return out


def apply_app(client: httpx.Client, app: dict[str, Any]) -> dict[str, Any]:
    return apply(client, app, APPS.format(ns=app["metadata"]["namespace"]))


def get_app(client: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    response = client.get(f"{APPS.format(ns=namespace)}/{name}")
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float = 60, every: float = 0.25
) -> T:
    """Poll until ``probe`` returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def wait_condition(
    client: httpx.Client, namespace: str, name: str, kind: str, *, timeout: float = 60
) -> dict[str, Any]:
    """Wait for the app's condition of type ``kind``; return it."""

    def probe() -> dict[str, Any] | None:
        conds = (get_app(client, namespace, name).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c.get("type") == kind), None)

    return wait_for(f"a {kind} condition on {name}", probe, timeout=timeout)


def repo_secret(namespace: str, name: str, kind: str, **data: str) -> dict[str, Any]:
    """A ``repository`` or ``repo-creds`` Secret as Argo CD labels them."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {credentials.SECRET_TYPE_LABEL: kind},
        },
        "stringData": data,
    }


def app_state(app: dict[str, Any]) -> tuple[str, str]:
    status = app.get("status") or {}
    return (
        (status.get("sync") or {}).get("status", ""),
        (status.get("health") or {}).get("status", ""),
    )


def wait_synced_healthy(
    client: httpx.Client, namespace: str, name: str, *, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        app = get_app(client, namespace, name)
        return app if app_state(app) == ("Synced", "Healthy") else None

    try:
        return wait_for(f"{namespace}/{name} Synced and Healthy", probe, timeout=timeout)
    except AssertionError as exc:
        status = get_app(client, namespace, name).get("status")
        raise AssertionError(f"{exc}\nstatus: {status}") from None
