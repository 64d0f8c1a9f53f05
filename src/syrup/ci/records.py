"""Run records in SQLite: runs, jobs, steps, timestamped log lines and run numbers.

One database file (``<data>/ci/ci.db``, WAL mode) is shared by every Syrup process, so that
``syrup ci logs RUN --follow`` in one terminal reads what ``syrup ci run`` writes in another.
Each run remembers the process that owns it; when a store opens, runs whose owner is gone are
marked failed with a reason ("the runner stopped while this run was in flight"), and finished
records are never touched. ``github.run_number`` comes from a per-workflow counter here, so it
increments across restarts as GitHub's does.

Nothing secret is stored: the executor masks log lines and outputs before they arrive here.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syrup.errors import NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    workflow TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    event TEXT NOT NULL,
    ref TEXT NOT NULL,
    sha TEXT NOT NULL,
    run_number INTEGER NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    reason TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    owner_pid INTEGER,
    owner_start TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    concurrency_group TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    reason TEXT,
    started_at REAL,
    finished_at REAL,
    outputs TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '',
    concurrency_group TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    number INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    conclusion TEXT,
    outcome TEXT,
    started_at REAL,
    finished_at REAL,
    outputs TEXT NOT NULL DEFAULT '{}',
    annotations TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    step INTEGER,
    at REAL NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id, id);
CREATE TABLE IF NOT EXISTS counters (
    repo TEXT NOT NULL,
    workflow TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (repo, workflow)
);
"""


class Status(enum.StrEnum):
    """Where a run, job or step is in its life (GitHub's ``status``)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class Conclusion(enum.StrEnum):
    """How a finished run, job or step ended (GitHub's ``conclusion``)."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RunRecord:
    """A row of ``runs`` as the CLI and UI show it."""

    id: int
    repo: str
    workflow: str
    workflow_name: str
    event: str
    ref: str
    sha: str
    run_number: int
    status: Status
    conclusion: Conclusion | None
    reason: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class JobRecord:
    """A row of ``jobs``."""

    id: int
    run_id: int
    key: str
    name: str
    status: Status
    conclusion: Conclusion | None
    reason: str | None
    outputs: Mapping[str, str]
    summary: str


@dataclass(frozen=True)
class StepRecord:
    """A row of ``steps``."""

    id: int
    job_id: int
    number: int
    name: str
    status: Status
    conclusion: Conclusion | None
    outcome: Conclusion | None
    outputs: Mapping[str, str]
    annotations: list[Mapping[str, Any]]


@dataclass(frozen=True)
class LogLine:
    """One timestamped log line of a job."""

    id: int
    job_id: int
    step: int | None
    at: float
    line: str


def _process_start(pid: int) -> str | None:
    """The kernel's start time of a process, to tell a live owner from a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


class Store:
    """Thread-safe access to the run database; one instance per process is enough."""

    _FLUSH_SECONDS = 0.2

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._pending_logs: list[tuple[int, int, int | None, float, str]] = []
        self._last_flush = time.monotonic()
        self._pid = os.getpid()
        self._start = _process_start(self._pid)
        # Lines are written in batches; this thread bounds how stale a follower's view is.
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="ci-log-flush", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self._FLUSH_SECONDS):
            with self._lock:
                if self._closed.is_set():
                    return
                if self._pending_logs:
                    self.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self.flush()
            self._db.close()

    # ---- runs --------------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Mark in-flight runs whose owning process is gone as failed; return their ids."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, owner_pid, owner_start FROM runs WHERE status != ?",
                (Status.COMPLETED,),
            ).fetchall()
            orphaned = [
                run_id
                for run_id, pid, start in rows
                if pid is None or _process_start(int(pid)) != start
            ]
            now = time.time()
            reason = "the runner stopped while this run was in flight"
            for run_id in orphaned:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "UPDATE runs SET status=?, conclusion=?, reason=?, finished_at=? WHERE id=?",
                    (Status.COMPLETED, Conclusion.FAILURE, reason, now, run_id),
                )
                self._db.execute(
                    "UPDATE jobs SET status=?, conclusion=?, reason=?, finished_at=? "
                    "WHERE run_id=? AND status != ?",
                    (Status.COMPLETED, Conclusion.FAILURE, reason, now, run_id, Status.COMPLETED),
                )
                self._db.execute(
                    "UPDATE steps SET status=?, conclusion=?, outcome=?, finished_at=? "
                    "WHERE status != ? AND job_id IN (SELECT id FROM jobs WHERE run_id=?)",
                    (
                        Status.COMPLETED,
                        Conclusion.FAILURE,
                        Conclusion.FAILURE,
                        now,
                        Status.COMPLETED,
                        run_id,
                    ),
                )
                self._db.execute("COMMIT")
            return orphaned

    def next_run_number(self, *, repo: str, workflow: str) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO counters(repo, workflow, value) VALUES (?, ?, 1) "
                "ON CONFLICT(repo, workflow) DO UPDATE SET value = value + 1",
                (repo, workflow),
            )
            (value,) = self._db.execute(
                "SELECT value FROM counters WHERE repo=? AND workflow=?", (repo, workflow)
            ).fetchone()
            self._db.execute("COMMIT")
            return int(value)

    def create_run(
        self,
        *,
        repo: str,
        workflow: str,
        workflow_name: str,
        event: str,
        ref: str,
        sha: str,
        run_number: int,
        concurrency_group: str | None = None,
    ) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO runs(repo, workflow, workflow_name, event, ref, sha, run_number,"
                " status, created_at, owner_pid, owner_start, concurrency_group)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    repo,
                    workflow,
                    workflow_name,
                    event,
                    ref,
                    sha,
                    run_number,
                    Status.QUEUED,
                    time.time(),
                    self._pid,
                    self._start,
                    concurrency_group,
                ),
            )
            return int(cursor.lastrowid or 0)

    def start_run(self, run_id: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE runs SET status=?, started_at=? WHERE id=?",
                (Status.IN_PROGRESS, time.time(), run_id),
            )

    def finish_run(self, run_id: int, *, conclusion: Conclusion, reason: str | None = None) -> None:
        with self._lock:
            self.flush()
            self._db.execute(
                "UPDATE runs SET status=?, conclusion=?, reason=?, finished_at=? WHERE id=?",
                (Status.COMPLETED, conclusion, reason, time.time(), run_id),
            )

    def request_cancel(self, run_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))

    def cancel_requested(self, run_id: int) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT cancel_requested FROM runs WHERE id=?", (run_id,)
            ).fetchone()
            return bool(row and row[0])

    def active_in_group(self, group: str, *, exclude_run: int) -> list[int]:
        """Runs of a concurrency group that are queued or in progress (other than one)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM runs WHERE concurrency_group=? AND status != ? AND id != ?",
                (group, Status.COMPLETED, exclude_run),
            ).fetchall()
            return [int(row[0]) for row in rows]

    def run(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=?", (run_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no CI run {run_id}")
        return _run_record(row)

    def runs(self, *, limit: int = 50) -> list[RunRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run_record(row) for row in rows]

    # ---- jobs and steps ----------------------------------------------------------------

    def create_job(self, *, run_id: int, key: str, name: str) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO jobs(run_id, key, name, status) VALUES (?,?,?,?)",
                (run_id, key, name, Status.QUEUED),
            )
            return int(cursor.lastrowid or 0)

    def start_job(self, job_id: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status=?, started_at=? WHERE id=?",
                (Status.IN_PROGRESS, time.time(), job_id),
            )

    def finish_job(
        self,
        job_id: int,
        *,
        conclusion: Conclusion,
        outputs: Mapping[str, str] | None = None,
        summary: str = "",
        reason: str | None = None,
    ) -> None:
        with self._lock:
            self.flush()
            self._db.execute(
                "UPDATE jobs SET status=?, conclusion=?, reason=?, finished_at=?, outputs=?,"
                " summary=? WHERE id=?",
                (
                    Status.COMPLETED,
                    conclusion,
                    reason,
                    time.time(),
                    json.dumps(dict(outputs or {})),
                    summary,
                    job_id,
                ),
            )

    def jobs(self, run_id: int) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, run_id, key, name, status, conclusion, reason, outputs, summary"
                " FROM jobs WHERE run_id=? ORDER BY id",
                (run_id,),
            ).fetchall()
        return [
            JobRecord(
                id=row[0],
                run_id=row[1],
                key=row[2],
                name=row[3],
                status=Status(row[4]),
                conclusion=Conclusion(row[5]) if row[5] else None,
                reason=row[6],
                outputs=json.loads(row[7]),
                summary=row[8],
            )
            for row in rows
        ]

    def create_step(self, *, job_id: int, number: int, name: str) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO steps(job_id, number, name, status, started_at) VALUES (?,?,?,?,?)",
                (job_id, number, name, Status.IN_PROGRESS, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def finish_step(
        self,
        step_id: int,
        *,
        conclusion: Conclusion,
        outcome: Conclusion,
        outputs: Mapping[str, str],
        annotations: list[Mapping[str, Any]],
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE steps SET status=?, conclusion=?, outcome=?, finished_at=?, outputs=?,"
                " annotations=? WHERE id=?",
                (
                    Status.COMPLETED,
                    conclusion,
                    outcome,
                    time.time(),
                    json.dumps(dict(outputs)),
                    json.dumps(annotations),
                    step_id,
                ),
            )

    def steps(self, job_id: int) -> list[StepRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, job_id, number, name, status, conclusion, outcome, outputs, annotations"
                " FROM steps WHERE job_id=? ORDER BY number",
                (job_id,),
            ).fetchall()
        return [
            StepRecord(
                id=row[0],
                job_id=row[1],
                number=row[2],
                name=row[3],
                status=Status(row[4]),
                conclusion=Conclusion(row[5]) if row[5] else None,
                outcome=Conclusion(row[6]) if row[6] else None,
                outputs=json.loads(row[7]),
                annotations=json.loads(row[8]),
            )
            for row in rows
        ]

    # ---- logs --------------------------------------------------------------------------

    def append_log(self, *, run_id: int, job_id: int, step: int | None, line: str) -> None:
        """Buffer one (already masked) log line; buffered lines reach the file within 0.2 s."""
        with self._lock:
            self._pending_logs.append((run_id, job_id, step, time.time(), line))
            if time.monotonic() - self._last_flush >= self._FLUSH_SECONDS:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._pending_logs:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO logs(run_id, job_id, step, at, line) VALUES (?,?,?,?,?)",
                    self._pending_logs,
                )
                self._db.execute("COMMIT")
                self._pending_logs.clear()
            self._last_flush = time.monotonic()

    def logs(self, run_id: int, *, after: int = 0) -> list[LogLine]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, job_id, step, at, line FROM logs WHERE run_id=? AND id>? ORDER BY id",
                (run_id, after),
            ).fetchall()
        return [LogLine(id=r[0], job_id=r[1], step=r[2], at=r[3], line=r[4]) for r in rows]

    def follow(self, run_id: int, *, poll: float = 0.2) -> Iterator[LogLine]:
        """Yield a run's log lines as they are written, until the run completes."""
        last = 0
        while True:
            finished = self.run(run_id).status is Status.COMPLETED
            for line in self.logs(run_id, after=last):
                last = line.id
                yield line
            if finished:
                return
            time.sleep(poll)


_RUN_COLUMNS = (
    "id, repo, workflow, workflow_name, event, ref, sha, run_number, status, conclusion, reason,"
    " created_at, started_at, finished_at"
)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0],
        repo=row[1],
        workflow=row[2],
        workflow_name=row[3],
        event=row[4],
        ref=row[5],
        sha=row[6],
        run_number=row[7],
        status=Status(row[8]),
        conclusion=Conclusion(row[9]) if row[9] else None,
        reason=row[10],
        created_at=row[11],
        started_at=row[12],
        finished_at=row[13],
    )


def open_store(data_dir: Path) -> Store:
    """Open the run database under the data dir and recover runs orphaned by a restart."""
    store = Store(data_dir / "ci" / "ci.db")
    store.recover()
    return store
