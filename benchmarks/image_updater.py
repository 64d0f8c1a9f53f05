"""Benchmark the image updater on the waffle-world snapshot.

Prints three figures:

* events applied per second (files edited, no commit, no push) on a checkout of the snapshot;
* the same with a commit per event (still no push);
* the time from receiving an event to its commit being pushed to a local bare repository
  (median and 95th percentile).

Goals (issue 8): < 50 ms per event applied on the snapshot, < 500 ms event to pushed commit.

Usage: ``.venv/bin/python benchmarks/image_updater.py [--events N]``
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from syrup import logs
from syrup.updater import config, updating

SNAPSHOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "waffle-world"
ECR_IMAGE = re.compile(r"image: (\d+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9/_.-]+):(\d+)")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _checkout(root: Path) -> Path:
    repo = root / "waffle-world"
    shutil.copytree(SNAPSHOT, repo, ignore=shutil.ignore_patterns(".git"))
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "snapshot", cwd=repo)
    return repo


def _events(repo: Path, count: int) -> list[bytes]:
    """Plain push events for the snapshot's ECR images, each with a newer tag."""
    images: dict[str, int] = {}
    for path in sorted(repo.rglob("*.yaml")):
        for image, tag in ECR_IMAGE.findall(path.read_text(errors="replace")):
            images[image] = max(images.get(image, 0), int(tag))
    names = sorted(images)
    payloads = []
    for index in range(count):
        image = names[index % len(names)]
        images[image] += 1
        payloads.append(
            json.dumps({"image": image, "tag": str(images[image]), "id": f"bench-{index}"}).encode()
        )
    return payloads


def _apply_rate(root: Path, *, count: int, commit: bool) -> tuple[float, int]:
    repo = _checkout(root / ("commit" if commit else "edit"))
    updater = updating.Updater(
        updating.UpdaterSettings(data_dir=root / f"data-{commit}", config=config.UpdaterConfig())
    )
    target = updating.RepoTarget(url=str(repo), commit=commit, push=False, paths=("apps/",))
    payloads = _events(repo, count)
    changed = 0
    try:
        started = time.perf_counter()
        for payload in payloads:
            [row] = updater.receive(payload, source="bench", target=target)
            changed += bool(updater.process(row.id).files)
        elapsed = time.perf_counter() - started
    finally:
        updater.close()
    return elapsed / count, changed


def _push_latency(root: Path, *, count: int) -> list[float]:
    seed = _checkout(root / "seed")
    remote = root / "remote.git"
    _git("clone", "-q", "--bare", str(seed), str(remote), cwd=root)
    settings = updating.UpdaterSettings(
        data_dir=root / "data-push",
        config=config.parse({"repos": [{"url": str(remote), "paths": ["apps/"]}]}),
    )
    updater = updating.Updater(settings)
    payloads = _events(seed, count + 1)
    try:
        # Warm the cached clone: the first event of a process pays for the clone.
        [row] = updater.receive(payloads[0], source="bench")
        updater.process(row.id)
        latencies = []
        for payload in payloads[1:]:
            started = time.perf_counter()
            [row] = updater.receive(payload, source="bench")
            final = updater.process(row.id)
            latencies.append(time.perf_counter() - started)
            assert final.state.value == "committed", final.detail
    finally:
        updater.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    logs.configure(level="WARNING")

    with tempfile.TemporaryDirectory(prefix="syrup-bench-") as tmp:
        root = Path(tmp)
        files = sum(1 for path in SNAPSHOT.rglob("*.y*ml"))
        print(f"snapshot: {SNAPSHOT.resolve()} ({files} YAML files)")

        per_event, changed = _apply_rate(root, count=args.events, commit=False)
        print(
            f"applied, no commit: {args.events} events, {changed} changed files, "
            f"{per_event * 1000:.1f} ms/event, {1 / per_event:.1f} events/s (goal < 50 ms)"
        )
        per_event, changed = _apply_rate(root, count=args.events, commit=True)
        print(
            f"applied + commit, no push: {per_event * 1000:.1f} ms/event, "
            f"{1 / per_event:.1f} events/s"
        )
        latencies = sorted(_push_latency(root, count=max(args.events // 5, 10)))
        p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
        print(
            f"event to pushed commit (local bare repo): median "
            f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms (goal < 500 ms)"
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"cpu: {usage.ru_utime + usage.ru_stime:.1f} s in process, "
        f"{children.ru_utime + children.ru_stime:.1f} s in git; "
        f"max RSS {usage.ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
