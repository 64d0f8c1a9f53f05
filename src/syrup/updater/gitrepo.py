"""The GitOps repository as the updater sees it: a working tree it can read, edit, commit in
and push from, through the ``git`` command line.

Two kinds of working tree:

* a **cached clone** of a URL under the data directory, which the updater owns: it is fetched
  and reset to the remote branch whenever its state is not known (first use in a process,
  after a rejected or failed push), so an edit is always applied to the current head; this is
  how a non-fast-forward push is retried: fetch, re-apply, push, never a blind rebase. Between
  two successful pushes of one process the fetch is skipped (optimistic: the remote refusing
  a push is the signal that it moved). NB: two processes sharing one data directory share the
  clone, so one may push the other's unpushed commit; the trailer check keeps the outcome
  exactly-once all the same;
* a **local checkout** named by the user (``syrup image update --repo DIR``), edited in place;
  its other changes are never touched (commits name their files explicitly).

Exactly-once: each commit carries the event id in a ``Syrup-Image-Event:`` trailer, and
:meth:`Workspace.find_event_commit` looks for it on the branch before anything is committed,
so an event whose commit already reached the remote (pushed just before a crash) is not
committed again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from syrup.errors import InvalidInput, RetryLater, Unavailable

TRAILER = "Syrup-Image-Event"


class GitFailed(Unavailable):
    """A git command failed (network, permissions, a broken repository)."""


class PushRejected(RetryLater):
    """The remote refused the push because the branch moved: fetch, re-apply, retry."""


_REJECTED_MARKERS = (
    "[rejected]",
    "non-fast-forward",
    "fetch first",
    "failed to update ref",
    "cannot lock ref",
    "[remote rejected]",
)


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run git and return its standard output; raise :class:`GitFailed` with its message."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})},
    )
    if result.returncode != 0:
        raise GitFailed(f"git {args[0]} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Workspace:
    """A working tree the updater edits; see the module docstring for the two kinds."""

    root: Path
    branch: str
    owned: bool
    has_remote: bool
    in_sync: bool = False
    """True while an owned clone's branch is known to equal the remote's (after a fetch, or
    after our own successful push); anything else clears it."""

    def sync(self) -> None:
        """Bring an owned clone to the remote branch's head (no-op for a local checkout, or
        when the clone is known to be in sync: a moved remote then shows as a rejected push,
        which clears :attr:`in_sync` and so costs one fetch only when it happens)."""
        if not self.owned or self.in_sync:
            return
        # The clone is on the branch and the updater writes only tracked files, so a hard reset
        # is enough to drop anything a crashed attempt left (a local commit, edited files).
        git("fetch", "--quiet", "--no-tags", "origin", self.branch, cwd=self.root)
        git("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=self.root)
        self.in_sync = True

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.root).strip()

    def find_event_commit(self, event_id: str) -> str | None:
        """The commit on HEAD's history that carries the event's trailer, if any."""
        try:
            out = git(
                "log",
                "-n",
                "1",
                "--format=%H",
                "--fixed-strings",
                f"--grep={TRAILER}: {event_id}",
                "HEAD",
                "--",
                cwd=self.root,
            )
        except GitFailed:
            # An empty repository has no HEAD, hence no commit for any event.
            return None
        return out.strip() or None

    def candidates(self, patterns: Sequence[str], *, needle: str) -> list[str]:
        """Tracked YAML files under the configured paths whose text contains ``needle``.

        One ``git grep`` instead of reading every file: the pre-filter that keeps an event on
        a large repository fast. A path is a directory or a git pathspec glob (``**/*.yaml``).
        """
        pathspecs = [_pathspec(pattern) for pattern in patterns] or ["."]
        result = subprocess.run(
            ["git", "grep", "-l", "-z", "-F", "-I", "-e", needle, "--", *pathspecs],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        # git grep exits 1 when nothing matches: not an error.
        if result.returncode not in (0, 1):
            raise GitFailed(f"git grep failed in {self.root}: {result.stderr.strip()}")
        found = [path for path in result.stdout.split("\0") if path]
        return [path for path in found if path.endswith((".yaml", ".yml"))]

    def read(self, path: str) -> str:
        # Bytes in, text out, newlines untouched: CRLF files must stay CRLF.
        return (self.root / path).read_bytes().decode("utf-8")

    def write(self, path: str, text: str) -> None:
        (self.root / path).write_bytes(text.encode("utf-8"))

    def commit(self, *, files: Sequence[str], message: str, name: str, email: str) -> str:
        """Commit exactly ``files`` (nothing else the user staged) and return the SHA."""
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
        }
        git(
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=verbatim",
            "-m",
            message,
            "--",
            *files,
            cwd=self.root,
            env=identity,
        )
        return self.head()

    def push(self) -> None:
        """Push HEAD to the branch; :class:`PushRejected` when the branch moved meanwhile."""
        result = subprocess.run(
            ["git", "push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}"],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )
        if result.returncode == 0:
            return
        output = result.stdout + result.stderr
        if any(marker in output for marker in _REJECTED_MARKERS):
            raise PushRejected(f"push to {self.branch} rejected: {output.strip()}")
        raise GitFailed(f"git push failed in {self.root}: {output.strip()}")

    def undo_commit(self) -> None:
        """Drop the updater's own last commit before re-applying the event on a new head."""
        if self.owned:
            return
        git("reset", "--quiet", "--keep", "HEAD~1", cwd=self.root)
        git("fetch", "--quiet", "--no-tags", "origin", self.branch, cwd=self.root)
        git("merge", "--quiet", "--ff-only", "FETCH_HEAD", cwd=self.root)

    def remote_url(self) -> str:
        return git("remote", "get-url", "origin", cwd=self.root).strip()


def _pathspec(pattern: str) -> str:
    if any(char in pattern for char in "*?["):
        return f":(glob){pattern}"
    return pattern.rstrip("/") or "."


def is_work_tree(path: Path) -> bool:
    """True for a checkout (a directory inside a work tree); false for a bare repo or URL."""
    if not path.is_dir():
        return False
    try:
        return git("rev-parse", "--is-inside-work-tree", cwd=path).strip() == "true"
    except GitFailed:
        return False


def open_local(path: Path, *, branch: str | None) -> Workspace:
    """Use a checkout in place; its current branch unless one is named."""
    root = Path(git("rev-parse", "--show-toplevel", cwd=path).strip())
    current = git("rev-parse", "--abbrev-ref", "HEAD", cwd=root).strip()
    if branch is not None and branch != current:
        raise InvalidInput(f"checkout is on {current!r}, not {branch!r}", where=str(path))
    remotes = git("remote", cwd=root).split()
    return Workspace(root=root, branch=current, owned=False, has_remote="origin" in remotes)


def cache_dir(url: str, *, cache_root: Path) -> Path:
    """Where the cached clone of ``url`` lives."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "repo"
    return cache_root / f"{name}-{digest}"


def open_cached(url: str, *, cache_root: Path, branch: str) -> Workspace:
    """Clone ``url`` into the cache once; later calls reuse it (call :meth:`sync` per event)."""
    root = cache_dir(url, cache_root=cache_root)
    if not (root / ".git").is_dir():
        # Clone beside and rename, so a clone cut short by a crash is never mistaken for one.
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--quiet", "--no-tags", "--branch", branch, url, str(partial), cwd=root.parent)
        partial.rename(root)
    return Workspace(root=root, branch=branch, owned=True, has_remote=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on a repository across processes: one event at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
