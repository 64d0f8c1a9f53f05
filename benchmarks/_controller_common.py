"""Helpers shared by the controller benchmarks: a local cluster, Applications, CPU, states."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from syrup.gitops import controller as gcontroller

BIN = Path(sys.executable).parent


def start_cluster(data_dir: Path) -> subprocess.Popen[bytes]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (data_dir / "cluster.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "syrup"), "cluster", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (data_dir / "kubeconfig").exists():
            token = (data_dir / "token").read_text().strip()
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(
                    f"https://127.0.0.1:{port}/readyz",
                    verify=str(data_dir / "pki" / "ca.crt"),
                    headers={"Authorization": f"Bearer {token}"},
                )
                if answer.status_code == 200:
                    return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the local cluster did not start")


def application(name: str, repo: Path) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": str(repo), "path": f"apps/{name}", "targetRevision": "HEAD"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"automated": {"prune": True}, "syncOptions": ["CreateNamespace=true"]},
        },
    }


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def app_states(ctl: gcontroller.Controller) -> dict[str, tuple[str, str, str]]:
    out = {}
    for obj in ctl.cache.of_kind("argoproj.io", "Application"):
        status = obj.get("status") or {}
        out[obj["metadata"]["name"]] = (
            (status.get("sync") or {}).get("status", ""),
            (status.get("health") or {}).get("status", ""),
            (status.get("sync") or {}).get("revision", ""),
        )
    return out


async def wait(predicate: Callable[[], bool], *, timeout: float, every: float = 0.1) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f}s")
