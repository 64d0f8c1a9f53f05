"""Shared fixtures: a real local cluster over HTTPS, the pinned kubectl, the corpus.

``cluster`` is one server per test worker (tests isolate themselves with their own namespaces);
``cluster_factory`` starts private servers for tests that restart or kill them. Both run the
real ``syrup cluster serve`` as a subprocess, exactly as a user would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()
CORPUS = SHARED / "corpus"
BIN = Path(sys.executable).parent
KUBECTL = str(BIN / "kubectl")
SYRUP = str(BIN / "syrup")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running ``syrup cluster serve`` and how to reach it."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    @property
    def ca(self) -> str:
        return str(self.data_dir / "pki" / "ca.crt")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HOME"] = str(self.data_dir / "home")  # kubectl's discovery cache stays private
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster; fail with its output when it fails."""
        proc = subprocess.run(
            [KUBECTL, *args],
            input=input,
            check=False,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                f"{proc.stderr}"
            )
        return proc

    def kubectl_json(self, *args: str) -> Any:
        return yaml.safe_load(self.kubectl(*args, "-o", "json").stdout)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=self.ca,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def namespace(self) -> str:
        """Create a fresh namespace for one test and return its name."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        with self.client() as c:
            r = c.post(
                "/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )
            r.raise_for_status()
        return name

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_cluster(
    data_dir: Path, *, port: int | None = None, args: list[str] | None = None
) -> Cluster:
    """Start ``syrup cluster serve`` and wait until it answers with its kubeconfig written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    log_path = data_dir / f"server-{port}.log"
    extra = list(args or [])
    proc = subprocess.Popen(
        [SYRUP, "cluster", "serve", "--data-dir", str(data_dir), "--port", str(port), *extra],
        stdout=open(log_path, "ab"),  # noqa: SIM115 - the server owns the file while it runs
        stderr=subprocess.STDOUT,
    )
    cluster = Cluster(data_dir, port, proc, log_path, extra)
    # Generous: on a loaded 2-core CI machine several servers start at once.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cluster exited with {proc.returncode}:\n{cluster.log()}")
        if kubeconfig.exists():
            with contextlib.suppress(httpx.HTTPError), cluster.client() as c:
                if c.get("/readyz").status_code == 200:
                    return cluster
        time.sleep(0.05)
    cluster.stop(signal.SIGKILL)
    raise RuntimeError(f"cluster did not become ready:\n{cluster.log()}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Cluster] = []

    def make(data_dir: Path | None = None, **kwargs: Any) -> Cluster:
        c = start_cluster(data_dir or tmp_path / f"c{len(started)}", **kwargs)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop(signal.SIGKILL)


@pytest.fixture
def ns(cluster: Cluster) -> str:
    """A fresh namespace on the shared cluster."""
    return cluster.namespace()
