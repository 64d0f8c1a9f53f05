"""Benchmark the local cluster's API server (issue: foundation and API server).

Starts a real ``syrup cluster serve`` in a temporary data dir and prints:
ConfigMap creates/s with 1 and 8 concurrent clients, the time to list 10,000 ConfigMaps,
GET latency p50/p99, write-to-event delay p50/p99 for 50 concurrent watchers, and the server's
peak RSS with 10,000 objects stored. Goals: >= 1,000 creates/s with 8 clients, a 10,000-object
list in < 1 s, watch delivery p99 < 50 ms, RSS < 300 MB.

Run: .venv/bin/python benchmarks/cluster_api.py [--objects 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import start_cluster


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if value.split():
            fields[key] = value.split()[0]
    return int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024


def cm(name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"bench": "yes"}},
            "data": {"key": "value-" + name},
        }
    )


async def create_many(client: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        r = await client.post(
            "/api/v1/namespaces/default/configmaps",
            content=cm(name),
            headers={"content-type": "application/json"},
        )
        r.raise_for_status()


def _client_process(url: str, ca: str, token: str, k: int, count: int) -> None:
    # The standard library's client: a light load generator, so the figure is the server's.
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for i in range(count):
        conn.request("POST", "/api/v1/namespaces/default/configmaps", cm(f"c{k}-{i}"), headers)
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"create failed: {response.status}")
    conn.close()


def _watch_process(
    url: str, ca: str, token: str, rv: str, streams: int, ready: Any, results: Any
) -> None:
    threads = [
        threading.Thread(target=_watch_stream, args=(url, ca, token, rv, ready, results))
        for _ in range(streams)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _watch_stream(url: str, ca: str, token: str, rv: str, ready: Any, results: Any) -> None:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(
        host, int(port), context=ssl.create_default_context(cafile=ca), timeout=60
    )
    path = (
        f"/api/v1/namespaces/default/configmaps?watch=true&labelSelector=w%3D1&resourceVersion={rv}"
    )
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    ready.put(1)
    arrivals = []
    while len(arrivals) < 20:
        line = response.readline()
        if not line:
            break
        if line.strip():
            name = orjson.loads(line)["object"]["metadata"]["name"]
            arrivals.append((name, time.monotonic()))
    results.put(arrivals)
    conn.close()


async def main(total: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp) / "data")
        try:
            await run(cluster, total)
        finally:
            cluster.stop()


async def run(cluster: object, total: int) -> None:
    from tests.conftest import Cluster

    assert isinstance(cluster, Cluster)
    headers = {"Authorization": f"Bearer {cluster.token}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=cluster.url, verify=cluster.ca, headers=headers, limits=limits, timeout=60
        )

    # One client, sequential creates.
    single = 1000
    async with client() as c:
        t0 = time.perf_counter()
        await create_many(c, [f"one-{i}" for i in range(single)])
        one_rate = single / (time.perf_counter() - t0)

    # Eight concurrent clients, each its own process with one keep-alive connection (as eight
    # kubectl or controller processes would be), up to the requested total.
    rest = total - single
    per = rest // 8
    procs = [
        multiprocessing.Process(
            target=_client_process, args=(cluster.url, cluster.ca, cluster.token, k, per)
        )
        for k in range(8)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    eight_rate = per * 8 / (time.perf_counter() - t0)

    async with client() as c:
        # List everything (a full JSON list, as kubectl get -o json would receive).
        list_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = await c.get("/api/v1/namespaces/default/configmaps")
            body = r.json()
            list_times.append(time.perf_counter() - t0)
        count = len(body["items"])

        # GET latency.
        lat = []
        for i in range(500):
            t0 = time.perf_counter()
            r = await c.get(f"/api/v1/namespaces/default/configmaps/one-{i % single}")
            r.raise_for_status()
            lat.append((time.perf_counter() - t0) * 1000)

        # Watch delivery to 50 watchers: five processes of ten watching threads each, as fifty
        # separate clients would be (one Python process reading fifty streams would measure
        # itself). Arrival and send times share CLOCK_MONOTONIC across processes.
        rv = body["metadata"]["resourceVersion"]
        ready = multiprocessing.Queue()
        results = multiprocessing.Queue()
        watchers = [
            multiprocessing.Process(
                target=_watch_process,
                args=(cluster.url, cluster.ca, cluster.token, rv, 10, ready, results),
            )
            for _ in range(5)
        ]
        for w in watchers:
            w.start()
        for _ in range(50):
            ready.get(timeout=60)
        await asyncio.sleep(0.3)
        sent: dict[str, float] = {}
        for i in range(20):
            name = f"watched-{i}"
            body_bytes = orjson.dumps(
                {"metadata": {"name": name, "labels": {"w": "1"}}, "data": {"a": "b"}}
            )
            sent[name] = time.monotonic()
            r = await c.post(
                "/api/v1/namespaces/default/configmaps",
                content=body_bytes,
                headers={"content-type": "application/json"},
            )
            r.raise_for_status()
            await asyncio.sleep(0.05)
        delays: list[float] = []
        for _ in range(50):
            for name, arrived in results.get(timeout=60):
                delays.append((arrived - sent[name]) * 1000)
        for w in watchers:
            w.join()

    rss, hwm = rss_mb(cluster.proc.pid)
    print(f"objects stored: {count + single * 0} configmaps in default")
    print(f"creates/s, 1 client:   {one_rate:8.0f}")
    print(f"creates/s, 8 clients:  {eight_rate:8.0f}   (goal >= 1000)")
    print(
        f"list {count} configmaps: {statistics.median(list_times) * 1000:8.0f} ms median "
        f"(goal < 1000 ms)"
    )
    print(
        f"GET latency:           p50 {percentile(lat, 50):.2f} ms, p99 {percentile(lat, 99):.2f} ms"
    )
    print(
        f"watch delivery (50 watchers x 20 events): p50 {percentile(delays, 50):.1f} ms, "
        f"p99 {percentile(delays, 99):.1f} ms (goal p99 < 50 ms)"
    )
    print(f"server RSS now {rss:.0f} MB, peak {hwm:.0f} MB (goal < 300 MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.objects))
