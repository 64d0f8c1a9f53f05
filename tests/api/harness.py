"""Run ``syrup up`` as a user does and talk to it: the process, its API and a Git repo.

Used by the API, CLI, UI and ``syrup up`` tests. ``start_up`` runs the real command in a
subprocess (against a given kubeconfig, or with its own local cluster) and waits for its
banner; ``GitRepo`` is a real bare repository served over ``file://``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import SYRUP, free_port

PASSWORD = "correct-horse-battery"


@dataclass
class Up:
    """A running ``syrup up``."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log_path: Path
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        tok = self.token if token is None else token
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def login(self, username: str = "admin", password: str = PASSWORD) -> str:
        r = httpx.post(
            f"{self.url}/api/v1/session", json={"username": username, "password": password}
        )
        r.raise_for_status()
        return str(r.json()["token"])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_up(
    data_dir: Path,
    *,
    kubeconfig: Path | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Up:
    """Start ``syrup up`` and wait until it prints its banner and answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / f"up-{port}.log"
    cmd = [SYRUP, "up", "--data-dir", str(data_dir), "--port", str(port), *(args or [])]
    if kubeconfig is not None:
        cmd += ["--kubeconfig", str(kubeconfig)]
    full_env = {**os.environ, "SYRUP_ADMIN_PASSWORD": PASSWORD, "NO_COLOR": "1", **(env or {})}
    proc = subprocess.Popen(
        cmd,
        stdout=open(log_path, "ab"),  # noqa: SIM115 - the process owns the file while it runs
        stderr=subprocess.STDOUT,
        env=full_env,
    )
    up = Up(proc, data_dir, port, log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"syrup up exited with {proc.returncode}:\n{up.log()}")
        if "Syrup is up" in up.log():
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{up.url}/healthz", timeout=5).status_code == 200:
                    return up
        time.sleep(0.1)
    up.stop(signal.SIGKILL)
    raise RuntimeError(f"syrup up did not start:\n{up.log()}")


def wait_for(
    what: str, check: Callable[[], Any], *, timeout: float = 60, every: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


@dataclass
class GitRepo:
    """A bare repository with a working clone; ``write`` + ``push`` make commits."""

    bare: Path
    work: Path

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def write(self, rel: str, content: Any) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump_all(content)
        path.write_text(text)

    def push(self, message: str = "change") -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()


def make_repo(root: Path, *, replicas: int = 1, greeting: str = "hello") -> GitRepo:
    """A repo whose ``app/`` holds a ConfigMap and a Deployment."""
    bare = root / "repo.git"
    work = root / "work"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("clone", "-q", str(bare), str(work), cwd=root)
    git("checkout", "-q", "-b", "main", cwd=work)
    repo = GitRepo(bare, work)
    repo.write("app/manifests.yaml", manifests(replicas=replicas, greeting=greeting))
    repo.push("initial")
    return repo


def manifests(*, replicas: int, greeting: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config"},
            "data": {"GREETING": greeting},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
    ]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def application(
    name: str, repo: GitRepo, *, dest_ns: str, automated: bool = True, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": "default",
        "source": {"repoURL": repo.url, "targetRevision": "main", "path": "app"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_ns},
        "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
    }
    if automated:
        spec["syncPolicy"]["automated"] = {"prune": True}
    return {
        "metadata": {"name": name, "labels": extra.pop("labels", {"team": "tests"})},
        "spec": spec | extra,
    }


def status_of(client: httpx.Client, name: str) -> tuple[str, str]:
    r = client.get(f"/api/v1/applications/{name}")
    if r.status_code != 200:
        return ("", "")
    status = r.json().get("status") or {}
    return (
        (status.get("sync") or {}).get("status", ""),
        (status.get("health") or {}).get("status", ""),
    )


def wait_synced_healthy(client: httpx.Client, name: str, timeout: float = 180) -> None:
    wait_for(
        f"{name} Synced and Healthy",
        lambda: status_of(client, name) == ("Synced", "Healthy"),
        timeout=timeout,
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    return _ANSI.sub("", text)
