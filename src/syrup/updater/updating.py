"""The updater: take stored events off the queue and turn each into at most one commit per
GitOps repository.

For each event and repository, under a per-repository lock (events for one repository are
applied one at a time, in arrival order):

1. bring the working tree to the branch head and look for a commit carrying the event's
   trailer: if there is one, the event was already committed (re-delivery, or a crash after
   the push) and nothing is done;
2. edit every YAML file under the configured paths (:mod:`syrup.updater.edits`); a file that
   does not parse is skipped with a warning, the rest of the event still applies;
3. commit every changed file in one commit, author and committer from the configuration,
   message from the template plus the ``Syrup-Image-Event`` trailer;
4. push; when the remote rejects the push because the branch moved, fetch, re-apply the edit
   to the new head and retry with exponential backoff; after the configured number of attempts
   the event is marked failed, kept, and retried later (``syrup image retry`` or the server's
   periodic retry);
5. call ``on_pushed(repo_url, branch, sha)`` so the controller can refresh the applications
   built from that repository at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrup import logs
from syrup.errors import InvalidInput, RetryLater, SyrupError
from syrup.updater import config, edits, events, gitrepo, policies, refs
from syrup.updater.store import EventState, RepoOutcome, Store, StoredEvent

PushedHook = Callable[[str, str, str], None]
log = logs.get(__name__)


@dataclass(frozen=True)
class RepoTarget:
    """One GitOps repository to apply events to, and how far to go."""

    url: str
    """A URL (worked on in a cached clone) or a local checkout (edited in place)."""
    branch: str | None = None
    paths: tuple[str, ...] = ()
    message: str | None = None
    commit: bool = True
    push: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "branch": self.branch,
            "paths": list(self.paths),
            "message": self.message,
            "commit": self.commit,
            "push": self.push,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RepoTarget:
        return cls(
            url=data["url"],
            branch=data.get("branch"),
            paths=tuple(data.get("paths") or ()),
            message=data.get("message"),
            commit=bool(data.get("commit", True)),
            push=bool(data.get("push", True)),
        )


@dataclass(frozen=True)
class UpdaterSettings:
    """Everything the updater needs; one frozen object per process."""

    data_dir: Path
    config: config.UpdaterConfig = field(default_factory=config.UpdaterConfig)
    on_pushed: PushedHook | None = None

    @property
    def store_path(self) -> Path:
        return self.data_dir / "updater" / "events.sqlite3"

    @property
    def cache_root(self) -> Path:
        return self.data_dir / "updater" / "repos"


class Updater:
    """Receives events into the durable queue and applies them."""

    def __init__(self, settings: UpdaterSettings) -> None:
        self.settings = settings
        self.store = Store(settings.store_path)
        self._aliases = _aliases(settings.config)
        self._helm_keys = tuple((pair.repository, pair.tag) for pair in settings.config.helm_keys)
        self._images = _image_rules(settings.config, aliases=self._aliases)
        self._thread_lock = threading.Lock()
        self._workspaces: dict[tuple[str, str | None], tuple[gitrepo.Workspace, Path]] = {}

    def close(self) -> None:
        self.store.close()

    # -- intake ----------------------------------------------------------------------------

    def receive(
        self, payload: bytes, *, source: str, target: RepoTarget | None = None
    ) -> list[StoredEvent]:
        """Parse and store a payload; the events are durable when this returns.

        Raises :class:`InvalidInput` for a malformed payload; nothing is stored then.
        """
        parsed = events.parse(payload, where=f"{source} event")
        stored = []
        for event in parsed:
            row, created = self.store.add(
                event,
                source=source,
                payload=payload,
                target=target.to_json() if target is not None else None,
            )
            log.info(
                "image event received" if created else "image event already known",
                event_id=event.id,
                image=str(event.repository),
                tag=event.tag,
                state=row.state.value,
            )
            stored.append(row)
        return stored

    # -- processing ------------------------------------------------------------------------

    def process_pending(self) -> list[StoredEvent]:
        """Apply every queued event, oldest first; return their final rows."""
        return [self.process(row.id) for row in self.store.pending()]

    def retry(self, event_id: str) -> StoredEvent:
        """Re-queue a finished (typically failed) event and apply it now."""
        self.store.requeue(event_id)
        return self.process(event_id)

    def process(self, event_id: str) -> StoredEvent:
        """Apply one stored event to each of its repositories and record the outcome."""
        with self._thread_lock:
            row = self.store.get(event_id)
            if row.state is not EventState.RECEIVED:
                return row
            self.store.start_attempt(event_id)
            targets = (
                [RepoTarget.from_json(row.target)]
                if row.target is not None
                else [
                    RepoTarget(
                        url=repo.url, branch=repo.branch, paths=repo.paths, message=repo.message
                    )
                    for repo in self.settings.config.repos
                ]
            )
            outcomes = [self._apply_safely(row.event, target) for target in targets]
            state, detail = _summarise(outcomes)
            finished = self.store.finish(event_id, state=state, outcomes=outcomes, detail=detail)
            log.info(
                "image event processed",
                event_id=event_id,
                image=str(row.event.repository),
                tag=row.event.tag,
                state=state.value,
                shas=list(finished.shas),
            )
            return finished

    def _apply_safely(self, event: events.ImageEvent, target: RepoTarget) -> RepoOutcome:
        # A failure becomes the event's outcome (kept, retried later), never a crashed loop.
        try:
            return self.apply(event, target)
        except (SyrupError, OSError) as error:
            log.error("image event failed", event_id=event.id, repo=target.url, error=str(error))
            return RepoOutcome(repo=target.url, state=EventState.FAILED, detail=str(error))

    def apply(self, event: events.ImageEvent, target: RepoTarget) -> RepoOutcome:
        """Apply one event to one repository: edit, commit, push with retries."""
        workspace, lock_path = self._open(target)
        attempts = self.settings.config.push.attempts
        backoff = self.settings.config.push.backoff_seconds
        last: RetryLater | None = None
        with gitrepo.locked(lock_path):
            for attempt in range(1, attempts + 1):
                try:
                    return self._apply_once(event, target, workspace)
                except BaseException as error:
                    # Whatever went wrong, the clone's state is no longer known.
                    workspace.in_sync = False
                    if not isinstance(error, gitrepo.PushRejected):
                        raise
                    log.warning(
                        "push rejected, re-applying on the new head",
                        event_id=event.id,
                        repo=target.url,
                        attempt=attempt,
                    )
                    last = error
                    if not workspace.owned:
                        workspace.undo_commit()
                    time.sleep(backoff * 2 ** (attempt - 1))
        return RepoOutcome(
            repo=target.url,
            state=EventState.FAILED,
            detail=f"gave up after {attempts} push attempts: {last}",
        )

    def _apply_once(
        self, event: events.ImageEvent, target: RepoTarget, workspace: gitrepo.Workspace
    ) -> RepoOutcome:
        workspace.sync()

        # Exactly once: a commit for this event may already be on the branch.
        if target.commit:
            existing = workspace.find_event_commit(event.id)
            if existing is not None:
                return RepoOutcome(
                    repo=target.url,
                    state=EventState.COMMITTED,
                    sha=existing,
                    detail="already committed",
                )

        assert event.tag is not None, "only actionable events are applied"
        policy, pin_digest = self._policy(event)
        if not policy.eligible(event.tag):
            detail = f"tag {event.tag} is not eligible under the image's policy"
            return RepoOutcome(repo=target.url, state=EventState.UNCHANGED, detail=detail)

        results, warnings = self._edit(
            event, target, workspace, policy=policy, pin_digest=pin_digest
        )
        changed = [result for result in results if result.changed]
        if not changed:
            return _unchanged(target, results, warnings)
        for result in changed:
            workspace.write(result.path, result.text)
        files = tuple(result.path for result in changed)
        if not target.commit:
            workspace.in_sync = False
            return RepoOutcome(
                repo=target.url, state=EventState.APPLIED, files=files, warnings=warnings
            )

        sha = workspace.commit(
            files=files,
            message=self._message(event, target),
            name=self.settings.config.identity.name,
            email=self.settings.config.identity.email,
        )
        if not (target.push and workspace.has_remote):
            workspace.in_sync = False
        else:
            workspace.push()
            log.info("pushed", event_id=event.id, repo=target.url, branch=workspace.branch, sha=sha)
            if self.settings.on_pushed is not None:
                self.settings.on_pushed(target.url, workspace.branch, sha)
        return RepoOutcome(
            repo=target.url, state=EventState.COMMITTED, sha=sha, files=files, warnings=warnings
        )

    def _policy(self, event: events.ImageEvent) -> tuple[policies.Policy, bool]:
        repository = refs.canonical(event.repository, aliases=self._aliases)
        return self._images.get(repository, (policies.Policy(), False))

    def _edit(
        self,
        event: events.ImageEvent,
        target: RepoTarget,
        workspace: gitrepo.Workspace,
        *,
        policy: policies.Policy,
        pin_digest: bool,
    ) -> tuple[list[edits.FileResult], tuple[str, ...]]:
        assert event.tag is not None, "only actionable events reach the edit step"
        edit_target = edits.Target(
            repository=event.repository, tag=event.tag, digest=event.digest, pin_digest=pin_digest
        )
        rules = edits.Rules(
            aliases=self._aliases, helm_keys=self._helm_keys, is_older=policy.is_older
        )

        results: list[edits.FileResult] = []
        warnings: list[str] = []
        needle = edits.needle(event.repository)
        for path in workspace.candidates(target.paths, needle=needle):
            try:
                text = workspace.read(path)
            except (OSError, UnicodeDecodeError) as error:
                warnings.append(f"{path}: skipped, cannot be read as UTF-8 ({error})")
                continue
            try:
                results.append(edits.edit(text, path=path, target=edit_target, rules=rules))
            except InvalidInput as error:
                log.warning("skipped a file that is not YAML", file=path, error=str(error))
                warnings.append(f"skipped {error}")
        return results, tuple(warnings)

    def _message(self, event: events.ImageEvent, target: RepoTarget) -> str:
        template = target.message or self.settings.config.message
        subject = template.format(
            repository=event.repository_name,
            tag=event.tag,
            image=str(event.repository),
            digest=event.digest or "",
        )
        return f"{subject}\n\n{gitrepo.TRAILER}: {event.id}\n"

    def _open(self, target: RepoTarget) -> tuple[gitrepo.Workspace, Path]:
        # Opening asks git several questions; the answers hold for the life of the updater.
        key = (target.url, target.branch)
        if key not in self._workspaces:
            self._workspaces[key] = self._open_uncached(target)
        return self._workspaces[key]

    def _open_uncached(self, target: RepoTarget) -> tuple[gitrepo.Workspace, Path]:
        local = Path(target.url).expanduser()
        if gitrepo.is_work_tree(local):
            workspace = gitrepo.open_local(local, branch=target.branch)
            return workspace, self.settings.cache_root / "locks" / _lock_name(workspace.root)
        cache_root = self.settings.cache_root
        lock_path = cache_root / "locks" / gitrepo.cache_dir(target.url, cache_root=cache_root).name
        with gitrepo.locked(lock_path):
            workspace = gitrepo.open_cached(
                target.url, cache_root=cache_root, branch=target.branch or "main"
            )
        return workspace, lock_path


def _lock_name(root: Path) -> str:
    return gitrepo.cache_dir(str(root.resolve()), cache_root=Path()).name


def _unchanged(
    target: RepoTarget, results: Sequence[edits.FileResult], warnings: tuple[str, ...]
) -> RepoOutcome:
    slots = [slot for result in results for slot in result.slots]
    if not slots:
        detail = "no reference to the image under the configured paths"
        if warnings:
            detail += f" ({len(warnings)} file(s) skipped)"
        return RepoOutcome(
            repo=target.url, state=EventState.NO_MATCH, detail=detail, warnings=warnings
        )
    if any(slot.state is edits.SlotState.OLDER for slot in slots):
        detail = "the tag is older than the one in Git by the image's policy"
    elif any(slot.state is edits.SlotState.UNEDITABLE for slot in slots):
        detail = "the references cannot be edited surgically (escaped or folded scalars)"
    else:
        detail = "the tag is already in Git"
    return RepoOutcome(
        repo=target.url, state=EventState.UNCHANGED, detail=detail, warnings=warnings
    )


def _summarise(outcomes: Sequence[RepoOutcome]) -> tuple[EventState, str]:
    if not outcomes:
        return EventState.NO_MATCH, "no repository configured"
    for state in (
        EventState.FAILED,
        EventState.COMMITTED,
        EventState.APPLIED,
        EventState.UNCHANGED,
        EventState.NO_MATCH,
    ):
        chosen = [outcome for outcome in outcomes if outcome.state is state]
        if chosen:
            return state, "; ".join(o.detail for o in chosen if o.detail)
    return EventState.NO_MATCH, ""


def _aliases(settings: config.UpdaterConfig) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for registry in settings.registries:
        for alias in registry.aliases:
            aliases[alias.lower()] = registry.host.lower()
    return aliases


def _image_rules(
    settings: config.UpdaterConfig, *, aliases: dict[str, str]
) -> dict[refs.Repository, tuple[policies.Policy, bool]]:
    rules = {}
    for image in settings.images:
        repository = refs.canonical(refs.parse_repository(image.image), aliases=aliases)
        policy = policies.compile_policy(
            ordering=image.policy.ordering,
            direction=image.policy.order,
            range=image.policy.range,
            pattern=image.policy.pattern,
            extract=image.policy.extract,
        )
        rules[repository] = (policy, image.pin_digest)
    return rules
