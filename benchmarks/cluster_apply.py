"""Server-side apply throughput of the local cluster, for a 3-container Deployment.

Starts ``syrup cluster serve`` on a free port in a temporary directory, then over one
keep-alive HTTPS connection measures:

* first applies/s (each apply creates a new Deployment),
* no-op re-applies/s (the same configuration again: the goal is >= 300/s), over one
  connection and from four client processes at once,
* dry-run applies/s (``dryRun=All`` with a changed image, what a GitOps diff sends),

and, for comparison, the same no-op apply through the engine alone (no HTTP, no storage).

Run: ``.venv/bin/python benchmarks/cluster_apply.py [--count N]``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import multiprocessing
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

BIN = Path(sys.executable).parent


def deployment(name: str, image: str = "nginx:1.25") -> dict[str, Any]:
    containers = [
        {
            "name": f"c{i}",
            "image": image if i == 0 else f"busybox:1.3{i}",
            "ports": [{"containerPort": 8080 + i, "name": f"p{i}"}],
            "env": [{"name": f"VAR_{j}", "value": str(j)} for j in range(4)],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + i}},
            "volumeMounts": [{"name": "data", "mountPath": f"/data/{i}"}],
        }
        for i in range(3)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]},
            },
        },
    }


#: The running server's CA file, for the load-generating processes.
CA_PATH: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server() -> Iterator[httpx.Client]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        port = free_port()
        log = open(data / "server.log", "wb")  # noqa: SIM115 - the server owns it while it runs
        proc = subprocess.Popen(
            [str(BIN / "syrup"), "cluster", "serve", "--data-dir", tmp, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not (data / "kubeconfig").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((data / "server.log").read_text())
                time.sleep(0.1)
            CA_PATH[:] = [str(data / "pki" / "ca.crt")]
            client = httpx.Client(
                base_url=f"https://127.0.0.1:{port}",
                verify=str(data / "pki" / "ca.crt"),
                headers={"Authorization": f"Bearer {(data / 'token').read_text().strip()}"},
                timeout=60,
            )
            with client:
                while client.get("/readyz").status_code != 200:
                    time.sleep(0.1)
                yield client
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def apply(client: httpx.Client, body: dict[str, Any], *, dry_run: bool = False) -> None:
    name = body["metadata"]["name"]
    query = "fieldManager=bench&force=true" + ("&dryRun=All" if dry_run else "")
    r = client.patch(
        f"/apis/apps/v1/namespaces/default/deployments/{name}?{query}",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    if r.status_code not in (200, 201):
        raise RuntimeError(f"apply failed: {r.status_code} {r.text[:500]}")


def rate(label: str, count: int, run: Any) -> float:
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    start = time.perf_counter()
    for i in range(count):
        run(i)
    elapsed = time.perf_counter() - start
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    per_s = count / elapsed
    print(f"{label:<40} {per_s:8.1f}/s  ({count} in {elapsed:.2f} s, client CPU {cpu:.2f} s)")
    return per_s


def _noop_worker(base: str, ca: str, token: str, body: bytes, count: int) -> None:
    # The standard library's client: a light load generator, so the figure is the server's.
    host, port = base.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(
        host, int(port), context=ssl.create_default_context(cafile=ca), timeout=60
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/apply-patch+yaml"}
    path = "/apis/apps/v1/namespaces/default/deployments/warm-0?fieldManager=bench&force=true"
    for _ in range(count):
        conn.request("PATCH", path, body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"apply failed: {response.status}")
    conn.close()


def concurrent_noop(client: httpx.Client, body: dict[str, Any], count: int) -> float:
    """No-op re-applies from four client processes (a controller applies with several workers)."""
    base = str(client.base_url).rstrip("/")
    ca = CA_PATH[0]
    token = str(client.headers["Authorization"]).removeprefix("Bearer ")
    raw = orjson.dumps(body)
    per = max(count // 4, 1)
    procs = [
        multiprocessing.Process(target=_noop_worker, args=(base, ca, token, raw, per))
        for _ in range(4)
    ]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    per_s = per * 4 / elapsed
    print(
        f"{'no-op re-apply, 4 client processes':<40} {per_s:8.1f}/s  ({per * 4} in {elapsed:.2f} s)"
    )
    return per_s


def engine_only(count: int) -> float:
    """The same no-op apply through the engine alone, to separate it from HTTP and storage."""
    from syrup.cluster import admission, resources

    adm = admission.create()
    rt = resources.Registry().get("apps", "v1", "deployments")
    assert rt is not None
    body = deployment("engine")
    live = adm.apply(rt, live=None, applied=body, manager="bench", force=True, now="t0")
    adm.admit(
        rt,
        old=None,
        new=live,
        manager="bench",
        subresource=None,
        field_validation="Strict",
        now="t0",
    )

    def once(_: int) -> None:
        new = adm.apply(rt, live=live, applied=body, manager="bench", force=True, now="t1")
        adm.admit(
            rt,
            old=live,
            new=new,
            manager="bench",
            subresource=None,
            field_validation="Strict",
            now="t1",
        )

    return rate("engine only: no-op apply + admit", count, once)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    n = args.count

    with server() as client:
        for i in range(10):  # warm up: imports, schema caches, TLS session
            apply(client, deployment(f"warm-{i}"))
        # The simulated controllers react to new Deployments in the same process: let them
        # settle so the no-op and dry-run figures measure the apply path, and create last.
        time.sleep(3)
        same = deployment("warm-0")
        rate("no-op re-apply, 1 connection", n, lambda i: apply(client, same))
        concurrent_noop(client, same, n)
        changed = copy.deepcopy(same)
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
        rate("dry-run apply (changed image)", n, lambda i: apply(client, changed, dry_run=True))
        rate("first apply (create)", n, lambda i: apply(client, deployment(f"web-{i}")))
    engine_only(n)


if __name__ == "__main__":
    main()
