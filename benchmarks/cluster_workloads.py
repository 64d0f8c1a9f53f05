"""How fast the local cluster's simulated workloads converge.

Creates N Deployments of R replicas (default 100 x 3) in the local cluster's real storage with
the workload controllers running at the default speed, and prints the wall time until every
Deployment is available, then the time for a rolling update of all of them (a new image), with
the CPU seconds the process used for each phase. Storage is the same SQLite-backed store
``syrup cluster serve`` uses, in a temporary directory; no HTTP is involved, so the figures are
the controllers' and storage's own cost.

Run: ``.venv/bin/python benchmarks/cluster_workloads.py [--deployments 100] [--replicas 3]
[--speed 5]``. Goal: 100 x 3 available in under 10 s of wall time at the default speed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from syrup import logs
from syrup.cluster import storage, workloads


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def deployment(index: int, replicas: int, image: str) -> dict[str, Any]:
    name = f"bench-{index:03d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


async def wait_until_rolled_out(store: storage.Store, rt: Any, count: int, replicas: int) -> None:
    while True:
        items, _ = await store.list(rt, "default")
        done = sum(
            1
            for d in items
            if (st := d.get("status") or {}).get("observedGeneration", 0)
            >= d["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas
            and st.get("availableReplicas") == replicas
            and st.get("replicas") == replicas
        )
        if done == count:
            return
        await asyncio.sleep(0.05)


async def run(count: int, replicas: int, speed: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = storage.Store(storage.StoreSettings(path=Path(tmp) / "cluster.sqlite"))
        controllers = await workloads.start(store, workloads.Settings(speed=speed))
        rt = store.registry.get("apps", "v1", "deployments")
        assert rt is not None

        wall, cpu = time.perf_counter(), cpu_seconds()
        for i in range(count):
            await store.create(rt, deployment(i, replicas, "nginx:1.26"), field_manager="bench")
        await wait_until_rolled_out(store, rt, count, replicas)
        create_wall, create_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        print(
            f"{count} Deployments x {replicas} replicas available: "
            f"{create_wall:.2f} s wall, {create_cpu:.2f} s CPU"
        )

        wall, cpu = time.perf_counter(), cpu_seconds()
        for i in range(count):
            live = await store.get(rt, "default", f"bench-{i:03d}")
            live["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
            await store.update(rt, live, field_manager="bench")
        await wait_until_rolled_out(store, rt, count, replicas)
        update_wall, update_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        print(f"rolling update of all {count}: {update_wall:.2f} s wall, {update_cpu:.2f} s CPU")
        print(f"objects stored: {store.count()}; reconciles: {controllers.stats()}")
        await controllers.stop()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--speed", type=float, default=workloads.DEFAULT_SPEED)
    args = parser.parse_args()
    logs.configure(level="WARNING")
    logging.getLogger("syrup").setLevel(logging.WARNING)
    asyncio.run(run(args.deployments, args.replicas, args.speed))


if __name__ == "__main__":
    main()
