"""Fixtures for the CI runner: throw-away git checkouts and an in-process runner.

Workflows run for real: real ``git``, real shells, a real SQLite run database under
``tmp_path``. ``ci_repo`` writes files into a fresh repository and commits them; ``ci_runner``
runs its workflows and keeps every log line it printed.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from syrup.ci import records, running

ROOT = Path(__file__).resolve().parents[2]
CORPUS_WORKFLOWS = (ROOT / ".." / "shared" / "corpus" / "workflows").resolve()


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def make_repo(path: Path, files: dict[str, str], *, branch: str = "main") -> Path:
    """A git repository at ``path`` with ``files`` committed on ``branch``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.email", "ci@example.test")
    git(path, "config", "user.name", "CI Test")
    commit(path, files)
    return path


def commit(path: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD")


@dataclass
class Outcome:
    """What a run left: results, records and the printed lines per job key."""

    results: list[running.RunResult]
    store: records.Store
    lines: dict[str, list[str]] = field(default_factory=dict)

    @property
    def result(self) -> running.RunResult:
        assert len(self.results) == 1, [r.workflow for r in self.results]
        return self.results[0]

    def log(self, key: str) -> str:
        return "\n".join(self.lines.get(key, []))

    def all_logs(self) -> str:
        return "\n".join(line for lines in self.lines.values() for line in lines)

    def job(self, key: str) -> records.JobRecord:
        for job in self.store.jobs(self.result.run_id):
            if job.key == key:
                return job
        raise AssertionError(f"no job {key}")


RunFn = Callable[..., Outcome]


@pytest.fixture
def ci_run(tmp_path: Path) -> Iterator[RunFn]:
    """Run the workflows of a repository; keyword arguments tune the event and runner."""
    stores: list[records.Store] = []

    def run(
        repo: Path,
        *,
        event: str = "push",
        ref: str | None = None,
        inputs: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        workflow: str | None = None,
        job: str | None = None,
        data_dir: Path | None = None,
        labels: tuple[str, ...] = (),
        max_parallel: int = 4,
        actions_dir: Path | None = None,
        base: str | None = None,
    ) -> Outcome:
        lines: dict[str, list[str]] = {}

        def on_line(key: str, line: str) -> None:
            lines.setdefault(key, []).append(line)

        runner = running.open_runner(
            data_dir=data_dir or tmp_path / "data",
            extra_labels=labels,
            max_parallel_jobs=max_parallel,
            actions_dir=actions_dir,
            on_line=on_line,
        )
        stores.append(runner.store)
        request = running.RunRequest(
            repo=repo,
            event=running.make_event(repo, name=event, ref=ref, inputs=inputs, base_ref=base),
            workflow_file=workflow,
            job=job,
            secrets=secrets or {},
        )
        return Outcome(results=runner.run(request), store=runner.store, lines=lines)

    yield run
    for store in stores:
        store.close()
