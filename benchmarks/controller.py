"""GitOps controller benchmark: 300 Applications of one monorepo on the local cluster.

Prints four figures against the goals of the controller's issue:

* time until all 300 Applications (5 resources each, directory type) are Synced and Healthy
  (goal < 60 s);
* CPU seconds (controller process plus its git children) and API writes of one full refresh
  cycle with nothing changed (goal < 5 CPU-s, no renders, no writes);
* time from a commit touching one app plus a refresh request to that app Synced on the new
  revision (goal < 2 s);
* the controller's peak RSS (goal < 400 MB).

Run: ``.venv/bin/python benchmarks/controller.py [--apps 300]``. The cluster runs as a separate
``syrup cluster serve`` process, as a user would run it; the controller runs in this process so
its CPU and memory are measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from syrup.gitops import controller as gcontroller
from syrup.kube import cache as kcache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _controller_common import app_states, application, cpu_seconds, start_cluster

BIN = Path(sys.executable).parent

RESOURCES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: config
data:
  app: "{name}"
  version: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: secret
stringData:
  token: "not-a-real-token-{name}"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: runner
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      serviceAccountName: runner
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 8080
"""


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def make_monorepo(root: Path, apps: int) -> tuple[Path, Path]:
    work, bare = root / "work", root / "monorepo.git"
    for i in range(apps):
        folder = work / "apps" / f"app-{i:03d}"
        folder.mkdir(parents=True)
        (folder / "resources.yaml").write_text(RESOURCES.format(name=f"app-{i:03d}"))
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "300 apps", cwd=work)
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
    git("push", "-q", str(bare), "main", cwd=work)
    return work, bare


async def wait(
    predicate: Any, *, timeout: float, every: float = 0.05, explain: Any = None
) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(every)
    raise SystemExit(f"timed out after {timeout}s: {explain() if explain else ''}")


async def bench(apps: int, root: Path) -> None:
    work, bare = make_monorepo(root, apps)
    cluster_dir = root / "cluster"
    cluster_dir.mkdir()
    cluster = start_cluster(cluster_dir)
    settings = gcontroller.Settings(
        kubeconfig=cluster_dir / "kubeconfig",
        data_dir=root / "controller",
        workers=16,
        refresh_seconds=3600,
        jitter_seconds=0,
    )
    ctl = gcontroller.Controller(settings)
    try:
        await ctl.start()
        res = ctl.cache.discovery.find("argoproj.io/v1alpha1", "Application")
        assert res is not None

        # 1. Create every Application at once; time until all are Synced and Healthy.
        start = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with sem:
                await ctl.client.apply(
                    res, application(f"app-{i:03d}", bare), field_manager="bench"
                )

        await asyncio.gather(*(create(i) for i in range(apps)))

        def all_healthy() -> bool:
            states = app_states(ctl)
            good = [s for s in states.values() if s[:2] == ("Synced", "Healthy")]
            return len(good) == apps

        def summary() -> str:
            counts = Counter(s[:2] for s in app_states(ctl).values())
            return ", ".join(f"{n} {'/'.join(k)}" for k, n in counts.most_common())

        synced = await wait(
            lambda: sum(s[0] == "Synced" for s in app_states(ctl).values()) == apps,
            timeout=600,
            every=0.2,
            explain=summary,
        )
        print(f"all {apps} apps Synced: {synced:.1f} s")
        await wait(all_healthy, timeout=600, every=0.2, explain=summary)
        converge = time.monotonic() - start
        print(f"all {apps} apps Synced+Healthy: {converge:.1f} s (goal < 60 s)")
        calls = ", ".join(f"{k} {v}" for k, v in sorted(ctl.client.requests.items()))
        print(f"  API requests so far: {calls}; status writes {ctl.status_writes}")

        # 2. One full refresh cycle with nothing changed.
        await asyncio.sleep(3)  # let rollouts' last status events settle
        renders, writes, syncs = ctl.renders.renders, ctl.status_writes, ctl.syncs
        reconciles = ctl.reconciles
        ls_remote = ctl.repos.ls_remote_calls
        cpu0, t0 = cpu_seconds(), time.monotonic()
        for state in ctl.states.values():
            state.next_refresh = 0.0
        await wait(lambda: ctl.reconciles - reconciles >= apps and ctl.idle(), timeout=300)
        cpu = cpu_seconds() - cpu0
        print(
            f"unchanged refresh cycle: {cpu:.2f} CPU-s in {time.monotonic() - t0:.2f} s wall "
            f"(goal < 5 CPU-s); renders {ctl.renders.renders - renders}, "
            f"status writes {ctl.status_writes - writes}, syncs {ctl.syncs - syncs}, "
            f"ls-remote calls {ctl.repos.ls_remote_calls - ls_remote}"
        )

        # 3. A commit touching one app, then a refresh request for the repository.
        target = "app-123" if apps > 123 else "app-000"
        file = work / "apps" / target / "resources.yaml"
        file.write_text(file.read_text().replace('version: "1"', 'version: "2"'))
        git("commit", "-q", "-am", f"change {target}", cwd=work)
        git("push", "-q", str(bare), "main", cwd=work)
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True
        ).stdout.strip()
        start = time.monotonic()
        ctl.refresh_repo(str(bare))

        def target_synced() -> bool:
            state = app_states(ctl).get(target)
            cm = ctl.cache.get(kcache.Key("", "ConfigMap", target, "config"))
            applied = cm is not None and cm.get("data", {}).get("version") == "2"
            return state is not None and state[0] == "Synced" and state[2] == head and applied

        one = await wait(target_synced, timeout=120)
        print(f"one-app change synced after a refresh request: {one:.2f} s (goal < 2 s)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"controller peak RSS: {rss:.0f} MB (goal < 400 MB)")
    finally:
        with contextlib.suppress(Exception):
            await ctl.stop()
        cluster.terminate()
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    with tempfile.TemporaryDirectory(prefix="syrup-bench-") as tmp:
        asyncio.run(bench(args.apps, Path(tmp)))


if __name__ == "__main__":
    main()
