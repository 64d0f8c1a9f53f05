"""Benchmark the API server: list 1,000 applications, and live change → SSE event delay.

Starts a real ``syrup up --no-demo`` (local cluster, controller, API) in a temporary data dir,
creates 1,000 Applications from one local Git repo through the API, then measures:

* ``GET /api/v1/applications`` (all 1,000, full objects): latency percentiles of sequential
  requests and requests/s with concurrent clients;
* the delay from a change written straight to the cluster's API (a merge patch of an
  Application's labels, as ``kubectl`` would make) to the matching Server-Sent Event.

Goals (issue 7): list p99 < 200 ms; SSE delay < 500 ms.

    .venv/bin/python benchmarks/api.py [--apps 1000] [--seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SYRUP = str(Path(sys.executable).parent / "syrup")
PASSWORD = "benchmark-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.invalid", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def make_repo(root: Path) -> str:
    bare, work = root / "repo.git", root / "work"
    git("init", "-q", "--bare", "--initial-branch=main", str(bare), cwd=root)
    git("clone", "-q", str(bare), str(work), cwd=root)
    git("checkout", "-q", "-b", "main", cwd=work)
    (work / "app").mkdir()
    (work / "app" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  k: v\n"
    )
    git("add", "-A", cwd=work)
    git("commit", "-qm", "bench", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    return bare.as_uri()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def create_apps(url: str, token: str, repo: str, count: int) -> float:
    started = time.perf_counter()
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as c:

        async def one(i: int) -> None:
            body = {
                "metadata": {"name": f"bench-{i:04d}", "labels": {"bench": "yes"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo, "targetRevision": "main", "path": "app"},
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": f"bench-{i % 20}",
                    },
                },
            }
            async with sem:
                r = await c.post("/api/v1/applications", json=body)
                r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def throughput(
    url: str, token: str, *, seconds: float, clients: int
) -> tuple[int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as c:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await c.get("/api/v1/applications")
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies), latencies


def sse_delays(url: str, token: str, data_dir: Path, *, rounds: int) -> list[float]:
    """Patch an Application in the cluster directly; time until its SSE event arrives."""
    server = next(
        line.split("server:", 1)[1].strip()
        for line in (data_dir / "kubeconfig").read_text().splitlines()
        if "server:" in line
    )
    kube = httpx.Client(
        base_url=server,
        verify=str(data_dir / "pki" / "ca.crt"),
        headers={"Authorization": f"Bearer {(data_dir / 'token').read_text().strip()}"},
        timeout=30,
    )
    delays: list[float] = []
    seen = threading.Event()
    expect: dict[str, str] = {}
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=None
            ) as c,
            c.stream("GET", "/api/v1/stream/applications", params={"name": "bench-0000"}) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("event: hello"):
                    ready.set()
                if line.startswith("data: ") and expect.get("value"):
                    labels = json.loads(line[6:])["application"]["metadata"].get("labels", {})
                    if labels.get("probe") == expect["value"]:
                        seen.set()
                if expect.get("stop"):
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(30)
    path = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/bench-0000"
    for i in range(rounds):
        seen.clear()
        expect["value"] = f"p{i}"
        t0 = time.perf_counter()
        r = kube.patch(
            path,
            content=json.dumps({"metadata": {"labels": {"probe": f"p{i}"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        r.raise_for_status()
        if seen.wait(10):
            delays.append(time.perf_counter() - t0)
        time.sleep(0.05)
    expect["stop"] = "yes"
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--sse-rounds", type=int, default=30)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="syrup-bench-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        port = free_port()
        log = open(root / "up.log", "wb")  # noqa: SIM115 - the server owns it while it runs
        proc = subprocess.Popen(
            [SYRUP, "--log-level", "WARNING", "up", "--data-dir", str(data_dir), "--port",
             str(port), "--no-demo"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "SYRUP_ADMIN_PASSWORD": PASSWORD},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit((root / "up.log").read_text())
                time.sleep(0.2)
            token = httpx.post(
                f"{url}/api/v1/session", json={"username": "admin", "password": PASSWORD}
            ).json()["token"]
            repo = make_repo(root)

            took = asyncio.run(create_apps(url, token, repo, args.apps))
            print(
                f"created {args.apps} applications through the API in {took:.1f} s "
                f"({args.apps / took:.0f}/s)"
            )
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
                # Measure the steady state: wait until the controller has compared every app.
                t0 = time.perf_counter()
                while True:
                    items = c.get("/api/v1/applications").json()["items"]
                    done = sum(1 for a in items if (a.get("status") or {}).get("sync"))
                    if done == args.apps or time.perf_counter() - t0 > 900:
                        break
                    time.sleep(2)
                print(f"controller compared {done} apps {time.perf_counter() - t0:.0f} s later")
                count = len(c.get("/api/v1/applications").json()["items"])
                assert count == args.apps, count
                size = len(c.get("/api/v1/applications").content)
                lat = []
                for _ in range(args.sequential):
                    t0 = time.perf_counter()
                    c.get("/api/v1/applications").raise_for_status()
                    lat.append(time.perf_counter() - t0)
            print(
                f"GET /api/v1/applications ({count} apps, {size / 1e6:.1f} MB), "
                f"{args.sequential} sequential: p50 {pct(lat, 50) * 1000:.1f} ms, "
                f"p99 {pct(lat, 99) * 1000:.1f} ms (goal p99 < 200 ms)"
            )
            n, conc = asyncio.run(
                throughput(url, token, seconds=args.seconds, clients=args.clients)
            )
            print(
                f"GET /api/v1/applications, {args.clients} concurrent clients for "
                f"{args.seconds:.0f} s: {n / args.seconds:.1f} req/s, "
                f"p50 {pct(conc, 50) * 1000:.1f} ms, p99 {pct(conc, 99) * 1000:.1f} ms"
            )
            delays = sse_delays(url, token, data_dir, rounds=args.sse_rounds)
            if delays:
                print(
                    f"live change -> SSE event, {len(delays)}/{args.sse_rounds} rounds: "
                    f"p50 {statistics.median(delays) * 1000:.1f} ms, "
                    f"p99 {pct(delays, 99) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms "
                    "(goal < 500 ms)"
                )
            else:
                print("live change -> SSE event: no event arrived")
            own = resource.getrusage(resource.RUSAGE_SELF).ru_utime
            print(f"benchmark client CPU {own:.1f} s")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(
            f"syrup up (cluster + controller + API): CPU {usage.ru_utime + usage.ru_stime:.1f} s, "
            f"max RSS {usage.ru_maxrss / 1024:.0f} MB"
        )


if __name__ == "__main__":
    main()
