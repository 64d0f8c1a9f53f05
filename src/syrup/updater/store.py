"""The durable event queue: every event is written to SQLite before it is acknowledged.

One table holds each event from arrival to its last outcome, so the same rows serve as the
work queue (state ``received``), the audit log (``syrup image events``) and the retry list
(``failed``). The event id is unique: a re-delivered event is recognised and not queued twice.
Writes use WAL with ``synchronous=FULL``, so an acknowledged event survives a crash of the
process or of the machine.

NB: one data directory is meant to be drained by one process at a time; two processes on the
same directory would both pick up ``received`` rows (the per-repository file lock and the
commit trailer still keep the result exactly-once, but the work is done twice).
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from syrup.errors import NotFound
from syrup.updater import events, refs


class EventState(enum.StrEnum):
    """Where an event is in its life."""

    RECEIVED = "received"
    IGNORED = "ignored"
    NO_MATCH = "no_match"
    UNCHANGED = "unchanged"
    APPLIED = "applied"
    """Files were changed but, as asked, not committed."""
    COMMITTED = "committed"
    FAILED = "failed"


@dataclass(frozen=True)
class RepoOutcome:
    """What one event did to one GitOps repository."""

    repo: str
    state: EventState
    detail: str = ""
    sha: str | None = None
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredEvent:
    """A row of the queue."""

    seq: int
    event: events.ImageEvent
    source: str
    target: dict[str, Any] | None
    state: EventState
    detail: str
    outcomes: tuple[RepoOutcome, ...]
    attempts: int
    received_at: float
    updated_at: float

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def shas(self) -> tuple[str, ...]:
        return tuple(outcome.sha for outcome in self.outcomes if outcome.sha)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(path for outcome in self.outcomes for path in outcome.files)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    event TEXT NOT NULL,
    payload BLOB NOT NULL,
    target TEXT,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    outcomes TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_state ON events (state, seq);
"""


class Store:
    """The queue in ``<data dir>/updater/events.sqlite3``; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(
        self,
        event: events.ImageEvent,
        *,
        source: str,
        payload: bytes,
        target: dict[str, Any] | None = None,
    ) -> tuple[StoredEvent, bool]:
        """Store an event (durably) and return it with True, or the earlier copy with False."""
        now = time.time()
        state = EventState.RECEIVED if event.actionable else EventState.IGNORED
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO events (id, source, event, payload, target, state, detail,"
                " received_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    source,
                    _dump_event(event),
                    payload,
                    orjson.dumps(target).decode() if target is not None else None,
                    state.value,
                    event.why_ignored,
                    now,
                    now,
                ),
            )
            created = cursor.rowcount == 1
        return self.get(event.id), created

    def get(self, event_id: str) -> StoredEvent:
        with self._lock:
            row = self._db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise NotFound(f"no image event {event_id!r}")
        return _row(row)

    def select(self, *, states: Sequence[EventState] = (), limit: int = 1000) -> list[StoredEvent]:
        """Events in arrival order, optionally only those in some states."""
        query = "SELECT * FROM events"
        params: list[Any] = []
        if states:
            query += f" WHERE state IN ({', '.join('?' for _ in states)})"
            params.extend(state.value for state in states)
        query += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [_row(row) for row in rows]

    def pending(self) -> list[StoredEvent]:
        """The work queue: events received and not yet finished, oldest first."""
        return self.select(states=[EventState.RECEIVED])

    def start_attempt(self, event_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE events SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (time.time(), event_id),
            )

    def finish(
        self, event_id: str, *, state: EventState, outcomes: Sequence[RepoOutcome], detail: str
    ) -> StoredEvent:
        """Record the outcome of processing an event."""
        with self._transaction() as db:
            db.execute(
                "UPDATE events SET state = ?, outcomes = ?, detail = ?, updated_at = ?"
                " WHERE id = ?",
                (state.value, _dump_outcomes(outcomes), detail, time.time(), event_id),
            )
        return self.get(event_id)

    def requeue(self, event_id: str) -> StoredEvent:
        """Put a failed (or any finished) event back in the queue."""
        stored = self.get(event_id)
        if stored.state is EventState.IGNORED:
            return stored
        with self._transaction() as db:
            db.execute(
                "UPDATE events SET state = ?, updated_at = ? WHERE id = ?",
                (EventState.RECEIVED.value, time.time(), event_id),
            )
        return self.get(event_id)


def _dump_event(event: events.ImageEvent) -> str:
    return orjson.dumps(
        {
            "id": event.id,
            "format": event.format.value,
            "action": event.action.value,
            "succeeded": event.succeeded,
            "host": event.repository.host,
            "path": event.repository.path,
            "tag": event.tag,
            "digest": event.digest,
            "repository_name": event.repository_name,
        }
    ).decode()


def _load_event(text: str) -> events.ImageEvent:
    data = orjson.loads(text)
    return events.ImageEvent(
        id=data["id"],
        format=events.EventFormat(data["format"]),
        action=events.Action(data["action"]),
        succeeded=data["succeeded"],
        repository=refs.Repository(host=data["host"], path=data["path"]),
        tag=data["tag"],
        digest=data["digest"],
        repository_name=data["repository_name"],
    )


def _dump_outcomes(outcomes: Sequence[RepoOutcome]) -> str:
    return orjson.dumps(
        [
            {
                "repo": outcome.repo,
                "state": outcome.state.value,
                "detail": outcome.detail,
                "sha": outcome.sha,
                "files": list(outcome.files),
                "warnings": list(outcome.warnings),
            }
            for outcome in outcomes
        ]
    ).decode()


def _row(row: tuple[Any, ...]) -> StoredEvent:
    (seq, _, source, event, _, target, state, detail, outcomes, attempts, received, updated) = row
    return StoredEvent(
        seq=seq,
        event=_load_event(event),
        source=source,
        target=orjson.loads(target) if target else None,
        state=EventState(state),
        detail=detail,
        outcomes=tuple(
            RepoOutcome(
                repo=item["repo"],
                state=EventState(item["state"]),
                detail=item["detail"],
                sha=item["sha"],
                files=tuple(item["files"]),
                warnings=tuple(item["warnings"]),
            )
            for item in orjson.loads(outcomes)
        ),
        attempts=attempts,
        received_at=received,
        updated_at=updated,
    )
