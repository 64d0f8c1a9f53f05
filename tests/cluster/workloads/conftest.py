"""Fixtures for the simulated nodes and workload controllers.

``sim_cluster`` starts a private server process with chosen workload settings (speed,
registries, nodes); ``registry`` runs Debian's ``docker-registry`` (the reference Registry v2
implementation) on a free loopback port and pushes images into it over its HTTP API, so image
pull checks talk to a real registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Cluster, free_port

SERVE = str(Path(__file__).with_name("_serve.py"))


def start_sim_cluster(
    data_dir: Path, settings: dict[str, Any], *, port: int | None = None
) -> Cluster:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    log_path = data_dir / f"server-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, SERVE, str(data_dir), str(port), json.dumps(settings)],
        stdout=open(log_path, "ab"),  # noqa: SIM115 - the server owns the file while it runs
        stderr=subprocess.STDOUT,
    )
    cluster = Cluster(data_dir, port, proc, log_path)
    deadline = time.monotonic() + 90
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


@pytest.fixture
def sim_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    started: list[Cluster] = []

    def make(data_dir: Path | None = None, **settings: Any) -> Cluster:
        c = start_sim_cluster(data_dir or tmp_path / f"sim{len(started)}", settings)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def fast_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One sped-up two-node cluster per test worker; tests isolate by namespace."""
    c = start_sim_cluster(tmp_path_factory.mktemp("fast"), {"speed": 40, "nodes": 2})
    yield c
    c.stop()


class Scoped:
    """A cluster seen from one namespace: every kubectl call gets ``-n <namespace>``."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, **kwargs)

    def kubectl_json(self, *args: str) -> Any:
        return self.cluster.kubectl_json("-n", self.namespace, *args)


@pytest.fixture
def fast(fast_cluster: Cluster) -> Scoped:
    """A fresh namespace on the shared sped-up cluster (speed 40, two nodes)."""
    return Scoped(fast_cluster, fast_cluster.namespace())


@dataclass
class Registry:
    """A running Registry v2 server and a way to push small images into it."""

    url: str
    host: str

    def push(self, repository: str, tag: str) -> str:
        """Upload a one-layer image manifest under ``repository:tag``; return its digest."""
        with httpx.Client(base_url=self.url, timeout=10) as c:
            config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
            layer = f"layer of {repository}:{tag}".encode()
            descriptors = [self._blob(c, repository, data) for data in (config, layer)]
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    **descriptors[0],
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                },
                "layers": [
                    {**descriptors[1], "mediaType": "application/vnd.oci.image.layer.v1.tar"}
                ],
            }
            body = json.dumps(manifest).encode()
            r = c.put(
                f"/v2/{repository}/manifests/{tag}",
                content=body,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            r.raise_for_status()
            return "sha256:" + hashlib.sha256(body).hexdigest()

    @staticmethod
    def _blob(c: httpx.Client, repository: str, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = c.post(f"/v2/{repository}/blobs/uploads/")
        start.raise_for_status()
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = c.put(
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
        return {"digest": digest, "size": len(data)}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is required (apt-get install docker-registry)")
    port = free_port()
    root = tmp_path / "registry"
    root.mkdir()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("docker-registry did not start")
    try:
        yield Registry(url=url, host=f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_for(check: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
