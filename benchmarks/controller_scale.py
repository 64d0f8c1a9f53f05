"""GitOps controller at scale: 1,000 Applications x 10 resources from one monorepo.

Prints the figures issue 6 asks for, against its goals:

* time until every Application is Synced and Healthy (goal < 5 min);
* CPU seconds per app of one refresh cycle with nothing changed (goal < 0.02 CPU-s/app),
  with the renders and status writes it caused (both should be 0);
* time from a commit touching one app plus a refresh request until that app is Synced on the
  new revision (goal < 2 s), and how many apps re-rendered (goal: 1);
* the controller's peak RSS (goal < 1 GB);
* where the time goes: the top functions of a cProfile of the controller during convergence.

The local cluster runs as its own ``syrup cluster serve`` process (simulated pods); the
controller runs in this process, so CPU and memory figures are the controller's alone (plus
its git children).

Run: ``.venv/bin/python benchmarks/controller_scale.py [--apps 1000] [--resources 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from syrup.gitops import controller as gcontroller
from syrup.kube import cache as kcache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _controller_common import app_states, application, cpu_seconds, start_cluster, wait

BIN = Path(sys.executable).parent


def manifests(app: str, count: int) -> str:
    """``count`` small resources: ConfigMaps, a ServiceAccount, a Service and a Deployment."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80}]},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
    ]
    for i in range(max(0, count - len(docs))):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"config-{i}"},
                "data": {"app": app, "version": "1"},
            }
        )
    return yaml.safe_dump_all(docs[:count])


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_monorepo(root: Path, apps: int, per_app: int) -> tuple[Path, Path]:
    work, bare = root / "work", root / "monorepo.git"
    for i in range(apps):
        folder = work / "apps" / f"app-{i:04d}"
        folder.mkdir(parents=True)
        (folder / "manifests.yaml").write_text(manifests(f"app-{i:04d}", per_app))
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", f"{apps} apps", cwd=work)
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
    git("push", "-q", str(bare), "main", cwd=work)
    return work, bare


def profile_summary(profiler: cProfile.Profile, *, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join(lines[start:])


async def bench(apps: int, per_app: int, root: Path, *, top: int) -> None:
    work, bare = make_monorepo(root, apps, per_app)
    cluster_dir = root / "cluster"
    cluster_dir.mkdir()
    cluster = start_cluster(cluster_dir)
    ctl = gcontroller.Controller(
        gcontroller.Settings(
            kubeconfig=cluster_dir / "kubeconfig",
            data_dir=root / "controller",
            workers=16,
            refresh_seconds=3600,
            jitter_seconds=0,
        )
    )
    profiler = cProfile.Profile()
    try:
        await ctl.start()
        res = ctl.cache.discovery.find("argoproj.io/v1alpha1", "Application")
        assert res is not None
        names = [f"app-{i:04d}" for i in range(apps)]

        # 1. Every Application at once; time until all are Synced and Healthy.
        profiler.enable()
        start = time.monotonic()
        gate = asyncio.Semaphore(32)

        async def create(name: str) -> None:
            async with gate:
                await ctl.client.apply(res, application(name, bare), field_manager="bench")

        await asyncio.gather(*(create(n) for n in names))

        def converged() -> bool:
            good = [s for s in app_states(ctl).values() if s[:2] == ("Synced", "Healthy")]
            return len(good) == apps

        await wait(converged, timeout=1800, every=0.5)
        profiler.disable()
        took = time.monotonic() - start
        print(f"apps x resources: {apps} x {per_app}")
        print(f"all Synced+Healthy: {took:.1f} s (goal < 300 s)")

        # 2. One refresh cycle with nothing changed.
        await asyncio.sleep(3)
        renders, writes, syncs, reconciles = (
            ctl.renders.renders,
            ctl.status_writes,
            ctl.syncs,
            ctl.reconciles,
        )
        cpu0, t0 = cpu_seconds(), time.monotonic()
        for state in ctl.states.values():
            state.next_refresh = 0.0
        await wait(lambda: ctl.reconciles - reconciles >= apps and ctl.idle(), timeout=600)
        cpu = cpu_seconds() - cpu0
        print(
            f"unchanged refresh: {cpu / apps:.4f} CPU-s per app ({cpu:.2f} CPU-s, "
            f"{time.monotonic() - t0:.1f} s wall; goal < 0.02/app); renders "
            f"{ctl.renders.renders - renders}, status writes {ctl.status_writes - writes}, "
            f"syncs {ctl.syncs - syncs}"
        )

        # 3. A one-app commit and a refresh request.
        target = names[len(names) // 2]
        file = work / "apps" / target / "manifests.yaml"
        file.write_text(file.read_text().replace("version: '1'", "version: '2'", 1))
        git("commit", "-q", "-am", f"change {target}", cwd=work)
        git("push", "-q", str(bare), "main", cwd=work)
        head = git("rev-parse", "HEAD", cwd=work)
        renders = ctl.renders.renders
        start = time.monotonic()
        ctl.refresh_repo(str(bare))

        def target_synced() -> bool:
            state = app_states(ctl).get(target)
            cm = ctl.cache.get(kcache.Key("", "ConfigMap", target, "config-0"))
            applied = cm is not None and (cm.get("data") or {}).get("version") == "2"
            return state is not None and state[0] == "Synced" and state[2] == head and applied

        one = await wait(target_synced, timeout=300, every=0.02)
        print(f"one-app commit synced: {one:.2f} s (goal < 2 s)")
        await wait(ctl.idle, timeout=300)
        print(f"apps re-rendered by the one-app commit: {ctl.renders.renders - renders}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"controller peak RSS: {rss:.0f} MB (goal < 1024 MB)")
        print(f"where the time goes while converging (top {top} by own time):")
        print(profile_summary(profiler, top=top))
    finally:
        with contextlib.suppress(Exception):
            await ctl.stop()
        cluster.terminate()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=10)
    parser.add_argument("--top", type=int, default=15, help="profile lines to print")
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    with tempfile.TemporaryDirectory(prefix="syrup-scale-") as tmp:
        asyncio.run(bench(args.apps, args.resources, Path(tmp), top=args.top))


if __name__ == "__main__":
    main()
