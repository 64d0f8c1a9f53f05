"""``status.history``: what was deployed, when and by whom; and choosing a rollback.

Argo CD keeps one entry per successful sync (REFERENCE.md, "History and rollback")::

    history:
      - id: 3
        revision: 5f0c...
        source: {repoURL: ..., path: ..., targetRevision: ...}
        deployedAt: "2026-12-03T18:00:00Z"
        deployStartedAt: "2026-12-03T17:59:58Z"
        initiatedBy: {username: alice}      # or {automated: true}

Ids grow by one and never repeat; only the newest ``revisionHistoryLimit`` entries (default
10) are kept. A rollback names an id and re-applies exactly that entry's revision and source.

Argo CD refuses a rollback while automated sync is on, since the next auto-sync would undo it.
Syrup refuses the same way by default, and with ``pause=True`` instead records a pause in the
app's status (:data:`PAUSE_FIELD`); the controller does not auto-sync a paused app until it is
resumed. The pause lives in status rather than spec so Git stays the source of the spec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syrup import errors

DEFAULT_LIMIT = 10
PAUSE_FIELD = "automationPaused"


class RollbackRefused(errors.InvalidInput):
    """A rollback that cannot run as asked (unknown id, or automation on without pause)."""


@dataclass(frozen=True)
class Initiator:
    username: str = ""
    automated: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.automated:
            out["automated"] = True
        return out


@dataclass(frozen=True)
class Entry:
    id: int
    revision: str
    source: Mapping[str, Any]
    deployed_at: dt.datetime
    initiated_by: Initiator
    deploy_started_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "revision": self.revision,
            "source": dict(self.source),
            "deployedAt": _stamp(self.deployed_at),
            "initiatedBy": self.initiated_by.to_json(),
        }
        if self.deploy_started_at is not None:
            out["deployStartedAt"] = _stamp(self.deploy_started_at)
        return out


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(raw: Any, where: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidInput(f"expected an RFC 3339 time, got {raw!r}", where=where) from None


def parse(raw: Any, *, where: str = "status.history") -> list[Entry]:
    """Read ``status.history`` as stored (oldest first)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise errors.InvalidInput("expected a list", where=where)
    out = []
    for i, item in enumerate(raw):
        w = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
            raise errors.InvalidInput("expected a map with an integer id", where=w)
        by = item.get("initiatedBy") or {}
        started = item.get("deployStartedAt")
        out.append(
            Entry(
                id=int(item["id"]),
                revision=str(item.get("revision") or ""),
                source=dict(item.get("source") or {}),
                deployed_at=_parse_time(item.get("deployedAt"), f"{w}.deployedAt"),
                initiated_by=Initiator(
                    username=str(by.get("username") or ""), automated=bool(by.get("automated"))
                ),
                deploy_started_at=(
                    _parse_time(started, f"{w}.deployStartedAt") if started else None
                ),
            )
        )
    return out


def limit_of(spec: Mapping[str, Any]) -> int:
    """``spec.revisionHistoryLimit``, 10 when unset."""
    raw = spec.get("revisionHistoryLimit")
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise errors.InvalidInput(
            f"expected a non-negative integer, got {raw!r}", where="spec.revisionHistoryLimit"
        )
    return raw


def record(
    history: Sequence[Entry],
    *,
    revision: str,
    source: Mapping[str, Any],
    initiated_by: Initiator,
    deployed_at: dt.datetime,
    started_at: dt.datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Entry]:
    """The history after one more successful sync, trimmed to the newest ``limit``."""
    next_id = max((e.id for e in history), default=-1) + 1
    entry = Entry(
        id=next_id,
        revision=revision,
        source=dict(source),
        deployed_at=deployed_at,
        initiated_by=initiated_by,
        deploy_started_at=started_at,
    )
    kept = [*history, entry]
    return kept[-limit:] if limit > 0 else []


def to_json(history: Sequence[Entry]) -> list[dict[str, Any]]:
    return [e.to_json() for e in history]


@dataclass(frozen=True)
class Rollback:
    """What a rollback will do: apply ``entry``; pause automation when ``pause`` is set."""

    entry: Entry
    pause: bool
    messages: list[str] = field(default_factory=list)


def plan_rollback(
    history: Sequence[Entry], *, id: int, automated: bool, paused: bool, pause: bool = False
) -> Rollback:
    """Choose the entry to roll back to, or refuse with a message that says what to do."""
    entry = next((e for e in history if e.id == id), None)
    if entry is None:
        known = ", ".join(str(e.id) for e in history) or "none"
        raise RollbackRefused(
            f"no history entry with id {id} (known ids: {known})", where="rollback"
        )
    if automated and not paused and not pause:
        raise RollbackRefused(
            "automated sync is enabled, so the next auto-sync would undo the rollback; disable "
            "automation in the Application, or roll back with the pause flag to pause "
            "automation for this app until it is resumed",
            where="rollback",
        )
    messages = []
    if automated and pause and not paused:
        messages.append("automated sync paused until resumed")
    return Rollback(entry=entry, pause=automated and not paused and pause, messages=messages)


def is_paused(status: Mapping[str, Any]) -> bool:
    """Whether the app's automation is paused (see the module docstring)."""
    return bool(status.get(PAUSE_FIELD))


def pause_patch(*, paused: bool, reason: str = "") -> dict[str, Any]:
    """A merge patch for the status subresource that pauses or resumes automation."""
    if paused:
        return {"status": {PAUSE_FIELD: {"reason": reason or "rollback"}}}
    return {"status": {PAUSE_FIELD: None}}


#: Annotation a person (or ``syrup app resume``) sets to resume paused automation.
RESUME_ANNOTATION = "syrup.dev/resume-automation"


@dataclass(frozen=True)
class RollbackRequest:
    """``operation.rollback`` (a Syrup extension beside Argo CD's ``operation.sync``)."""

    id: int
    pause: bool


def rollback_request(obj: Mapping[str, Any]) -> RollbackRequest | None:
    """The rollback an Application's ``operation`` asks for, if any."""
    op = obj.get("operation")
    if not isinstance(op, Mapping) or "rollback" not in op:
        return None
    raw = op.get("rollback")
    if not isinstance(raw, Mapping):
        raise RollbackRefused("expected a map", where="operation.rollback")
    target = raw.get("id")
    if isinstance(target, bool) or not isinstance(target, int):
        raise RollbackRefused(
            f"expected an integer id, got {target!r}", where="operation.rollback.id"
        )
    pause = raw.get("pauseAutomation", False)
    if not isinstance(pause, bool):
        raise RollbackRefused(
            f"expected true or false, got {pause!r}", where="operation.rollback.pauseAutomation"
        )
    return RollbackRequest(id=target, pause=pause)


def resume_requested(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(RESUME_ANNOTATION, "")).lower() == "true"
