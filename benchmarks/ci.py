"""CI runner overhead: per step, per job start, and planning 100 real workflows.

Goals (issue 9): < 50 ms runner overhead per step, < 1 s to start a job, < 2 s to plan 100
workflows. Run with ``.venv/bin/python benchmarks/ci.py``; it prints its figures.

* per step: a job of 20 ``run: true`` steps, minus the time ``bash -e`` itself takes to run
  ``true`` 20 times, divided by 20;
* job start: from the job record's creation to its first step starting;
* planning: the corpus workflows (repeated to 100 files) loaded, validated and planned, with a
  cold parser cache for each pass.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from syrup.ci import events, expressions, planning, records, running, workflows  # noqa: E402

CORPUS = (ROOT / ".." / "shared" / "corpus" / "workflows").resolve()


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(path: Path, steps: int) -> Path:
    body = "\n".join(["      - run: 'true'"] * steps)
    workflow = f"on: push\njobs:\n  bench:\n    runs-on: ubuntu-latest\n    steps:\n{body}\n"
    (path / ".github" / "workflows").mkdir(parents=True)
    (path / ".github" / "workflows" / "bench.yml").write_text(workflow)
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.email=b@b", "-c", "user.name=b", "add", "-A")
    git(path, "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "bench")
    return path


def bash_baseline(count: int, directory: Path) -> float:
    script = directory / "true.sh"
    script.write_text("true\n")
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["bash", "-e", str(script)], check=True)
    return time.perf_counter() - started


def bench_steps(tmp: Path, *, steps: int = 20, rounds: int = 3) -> tuple[float, float, float]:
    repo = make_repo(tmp / "repo", steps)
    runner = running.open_runner(data_dir=tmp / "data")
    request = running.RunRequest(repo=repo, event=running.make_event(repo))
    per_step: list[float] = []
    job_start: list[float] = []
    totals: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        [result] = runner.run(request)
        total = time.perf_counter() - started
        assert result.conclusion is records.Conclusion.SUCCESS
        baseline = bash_baseline(steps, tmp)
        per_step.append((total - baseline) / steps)
        totals.append(total)
        job_start.append(_job_start_seconds(tmp / "data" / "ci" / "ci.db", result.run_id))
    runner.store.close()
    return min(per_step), min(job_start), min(totals)


def _job_start_seconds(database: Path, run_id: int) -> float:
    import sqlite3

    with sqlite3.connect(database) as db:
        (created,) = db.execute("SELECT created_at FROM runs WHERE id=?", (run_id,)).fetchone()
        (first_step,) = db.execute(
            "SELECT MIN(s.started_at) FROM steps s JOIN jobs j ON j.id = s.job_id WHERE j.run_id=?",
            (run_id,),
        ).fetchone()
    return float(first_step - created)


def bench_planning(count: int = 100) -> float:
    files = sorted(CORPUS.glob("*/.github/workflows/*.y*ml"))
    chosen = [files[i % len(files)] for i in range(count)]
    host = planning.Host.detect(extra=["ubuntu-24.04-arm"])
    event = events.Event(name="push", ref="refs/heads/develop", sha="0" * 40)
    workflows.load(files[0])  # build the schema validator once, as a long-lived runner does
    expressions._parse_cached.cache_clear()
    started = time.perf_counter()
    for path in chosen:
        workflow = workflows.load(path)
        root = path.parents[2]
        if "workflow_call" in workflow.triggers:
            continue
        planning.plan_workflow(workflow, root=root, event=event, host=host)
    return time.perf_counter() - started


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="syrup-ci-bench-"))
    try:
        planned = bench_planning()
        per_step, job_start, total = bench_steps(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"plan 100 workflows:          {planned * 1000:8.1f} ms   (goal < 2000 ms)")
    print(f"job start (run → 1st step):  {job_start * 1000:8.1f} ms   (goal < 1000 ms)")
    print(f"runner overhead per step:    {per_step * 1000:8.1f} ms   (goal < 50 ms)")
    print(f"job of 20 `run: true` steps: {total * 1000:8.1f} ms total")
    print(f"max RSS:                     {usage.ru_maxrss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
