"""Git sources: one cached bare clone per repository URL, driven through the ``git`` CLI.

Argo CD talks to Git through the ``git`` command line, and so does Syrup, so everything a user
configured for ``git`` keeps working: ``url.<base>.insteadOf`` rewrites, credential helpers,
proxies. The controller resolves an Application's ``targetRevision`` (``HEAD``, a branch, a tag
or a commit SHA) with one ``git ls-remote`` per refresh, and fetches only when the resolved SHA
is not in the local clone yet. Trees are materialised per commit with ``git archive`` into a
read-only snapshot that every Application of that commit shares.

Fetched repositories are untrusted: hooks never run (``core.hooksPath=/dev/null``), prompts are
disabled so an unreachable or private remote fails fast instead of hanging a worker.

Every call that talks to a remote (``ls-remote``, ``fetch``) gets the credentials that
:attr:`RepoCache.credentials` finds for its URL (Argo CD's ``repository`` and ``repo-creds``
Secrets) through :func:`syrup.gitops.credentials.git_env`: private files that live only for
that call, never a command line or a log line.

Trade-off: a whole-repo fetch of every branch and tag is simpler and fast for GitOps repos
(small, text only); a shallow fetch of one SHA would need ``uploadpack.allowReachableSHA1InWant``
on the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from syrup import errors, logs
from syrup.gitops import credentials

_log = logs.get(__name__)

_SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
_SAFE_ARGS = ("-c", "core.hooksPath=/dev/null", "-c", "protocol.file.allow=always")


class GitError(errors.SyrupError):
    """Base of the Git source's errors."""


class RepoUnavailable(GitError, errors.Unavailable):
    """The remote did not answer or refused us: retry later."""


class RevisionNotFound(GitError, errors.NotFound):
    """``targetRevision`` names no branch, tag or commit of the repository."""


@dataclass(frozen=True)
class Resolved:
    """A ``targetRevision`` resolved to a commit of one repository."""

    url: str
    revision: str
    sha: str


def _repo_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:20]


def normalize_url(url: str) -> str:
    """The form used as a cache key: a plain path becomes absolute, ``.git`` stays as given."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())


#: Finds the credentials for a repository URL (None: go without).
CredentialsLookup = Callable[[str], "credentials.RepoCredentials | None"]


#: The advice git prints after every failed remote call; it would hide the cause (such as
#: ``Host key verification failed.``) from the last lines the message keeps.
_GIT_BOILERPLATE = (
    "Please make sure you have the correct access rights",
    "and the repository exists",
)


async def _run(
    args: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 60.0,
    what: str,
    auth: Mapping[str, str] | None = None,
) -> str:
    """Run ``git`` with the safety switches; raise :class:`RepoUnavailable` on failure.

    ``auth`` is the environment :func:`credentials.git_env` made for a remote call.
    """
    env: Mapping[str, str] = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GCM_INTERACTIVE": "never",
        **(auth or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        "git",
        *_SAFE_ARGS,
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise RepoUnavailable(f"{what}: git timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        message = [
            line.strip()
            for line in err.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith(_GIT_BOILERPLATE)
        ]
        raise RepoUnavailable(f"{what}: {' '.join(message[-3:]) or 'git failed'}")
    return out.decode(errors="replace")


class RepoCache:
    """Bare clones and commit snapshots under ``<data dir>/git``, one per repository URL.

    Concurrency: one lock per URL serialises fetches; snapshots are written to a temporary
    directory and renamed into place, so readers never see half a tree.
    """

    def __init__(self, root: Path, *, ls_remote_ttl: float = 2.0, keep_snapshots: int = 4) -> None:
        self.root = root
        self.ls_remote_ttl = ls_remote_ttl
        self.keep_snapshots = keep_snapshots
        self._locks: dict[str, asyncio.Lock] = {}
        self._refs: dict[str, tuple[float, dict[str, str]]] = {}
        self._inflight: dict[str, tuple[float, asyncio.Future[dict[str, str]]]] = {}
        self._changes: dict[tuple[str, str, str], frozenset[str]] = {}
        self._diff_locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._known: set[tuple[Path, str]] = set()
        self.ls_remote_calls = 0
        self.fetches = 0
        #: Set by the controller: the credentials its Secrets hold for a URL.
        self.credentials: CredentialsLookup | None = None
        #: Set by the controller: the known SSH host keys (Argo CD's
        #: ``argocd-ssh-known-hosts-cm``), checked strictly for SSH repositories.
        self.known_hosts: Callable[[], str] | None = None

    async def _remote(self, args: list[str], *, url: str, what: str, timeout: float) -> str:
        """A git call against ``url``'s remote, with the credentials found for it."""
        creds = self.credentials(url) if self.credentials is not None else None
        hosts = self.known_hosts() if creds is not None and creds.ssh and self.known_hosts else ""
        with credentials.git_env(creds, url=url, known_hosts=hosts) as auth:
            return await _run(args, what=what, timeout=timeout, auth=auth)

    def _lock(self, url: str) -> asyncio.Lock:
        return self._locks.setdefault(url, asyncio.Lock())

    def _clone_dir(self, url: str) -> Path:
        return self.root / "repos" / f"{_repo_key(url)}.git"

    # -- resolving ------------------------------------------------------------------------

    async def ls_remote(
        self, url: str, *, max_age: float | None = None, fresh_after: float | None = None
    ) -> dict[str, str]:
        """Refs of the remote (``HEAD``, ``refs/heads/*``, ``refs/tags/*``) to SHAs.

        An answer is reused while younger than ``max_age`` seconds (default: the cache's TTL)
        and, when ``fresh_after`` (a ``time.monotonic()`` instant) is given, only if its call
        started after that instant: a refresh requested at T never sees refs read before T.
        Concurrent callers share one process, so 300 Applications of one monorepo cost one
        ``ls-remote`` per refresh cycle, and a webhook refreshing all of them costs about one.
        """
        url = normalize_url(url)
        ttl = self.ls_remote_ttl if max_age is None else max_age
        floor = fresh_after if fresh_after is not None else time.monotonic() - ttl
        cached = self._refs.get(url)
        if cached and cached[0] >= floor:
            return cached[1]
        pending = self._inflight.get(url)
        if pending is not None and pending[0] >= floor:
            return await asyncio.shield(pending[1])
        started = time.monotonic()
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._inflight[url] = (started, future)
        try:
            refs = await self._ls_remote(url)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # NB: mark retrieved so an unshared failure logs no warning
            raise
        finally:
            if self._inflight.get(url, (0.0, None))[1] is future:
                del self._inflight[url]
        future.set_result(refs)
        if url not in self._refs or self._refs[url][0] <= started:
            self._refs[url] = (started, refs)
        return refs

    async def _ls_remote(self, url: str) -> dict[str, str]:
        self.ls_remote_calls += 1
        out = await self._remote(["ls-remote", url], url=url, what=f"repository {url}", timeout=30)
        refs: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref.endswith("^{}"):
                # A peeled tag: the commit the annotated tag points at wins.
                refs[ref[:-3]] = sha
            else:
                refs.setdefault(ref, sha)
        return refs

    async def resolve(
        self, url: str, revision: str, *, fresh_after: float | None = None
    ) -> Resolved:
        """Turn ``targetRevision`` into a commit SHA with one cheap remote call."""
        url = normalize_url(url)
        rev = (revision or "HEAD").strip()
        refs = await self.ls_remote(url, fresh_after=fresh_after)
        for candidate in (rev, f"refs/heads/{rev}", f"refs/tags/{rev}", f"refs/{rev}"):
            if candidate in refs:
                return Resolved(url=url, revision=rev, sha=refs[candidate])
        if _SHA_RE.match(rev.lower()):
            sha = await self._sha_from_commit(url, rev.lower(), refs)
            return Resolved(url=url, revision=rev, sha=sha)
        raise RevisionNotFound(
            f"repository {url}: unable to resolve targetRevision {rev!r} to a commit "
            "(no such branch, tag or commit)"
        )

    async def _sha_from_commit(self, url: str, rev: str, refs: dict[str, str]) -> str:
        if len(rev) == 40 and rev in refs.values():
            return rev
        # A commit not at the tip of any ref: it must be in the fetched history.
        await self.fetch(url, want=None)
        try:
            out = await _run(
                [
                    "--git-dir",
                    str(self._clone_dir(url)),
                    "rev-parse",
                    "--verify",
                    f"{rev}^{{commit}}",
                ],
                what=f"repository {url}",
            )
        except RepoUnavailable as exc:
            raise RevisionNotFound(
                f"repository {url}: targetRevision {rev!r} is not a commit of the repository"
            ) from exc
        return out.strip()

    # -- fetching -------------------------------------------------------------------------

    async def _has_commit(self, clone: Path, sha: str) -> bool:
        # Commits never leave a clone (fetch only adds), so a positive answer is remembered.
        if (clone, sha) in self._known:
            return True
        try:
            await _run(
                ["--git-dir", str(clone), "cat-file", "-e", f"{sha}^{{commit}}"],
                what="cat-file",
            )
        except RepoUnavailable:
            return False
        self._known.add((clone, sha))
        return True

    async def fetch(self, url: str, *, want: str | None) -> Path:
        """Make sure the clone holds ``want`` (or refresh every ref when ``want`` is None)."""
        url = normalize_url(url)
        clone = self._clone_dir(url)
        async with self._lock(url):
            if not clone.exists():
                clone.parent.mkdir(parents=True, exist_ok=True)
                await _run(["init", "--bare", "--quiet", str(clone)], what=f"init clone of {url}")
            if want is not None and await self._has_commit(clone, want):
                return clone
            self.fetches += 1
            _log.info("fetching repository", repo=url, want=want)
            await self._remote(
                [
                    "--git-dir",
                    str(clone),
                    "fetch",
                    "--quiet",
                    "--prune",
                    "--force",
                    url,
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                url=url,
                what=f"repository {url}",
                timeout=300,
            )
            if want is not None and not await self._has_commit(clone, want):
                raise RevisionNotFound(f"repository {url}: commit {want} not found after fetch")
        return clone

    async def snapshot(self, url: str, sha: str) -> Path:
        """A read-only directory with the tree of ``sha``, shared by every user of that commit."""
        url = normalize_url(url)
        target = self.root / "trees" / _repo_key(url) / sha
        if target.exists():
            return target
        clone = await self.fetch(url, want=sha)
        async with self._lock(url):
            if target.exists():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=target.parent))
            archive = tmp / ".archive.tar"
            await _run(
                ["--git-dir", str(clone), "archive", "--format=tar", "-o", str(archive), sha],
                what=f"repository {url}",
            )
            await asyncio.to_thread(_extract, archive, tmp)
            archive.unlink()
            tmp.rename(target)
            self._trim_snapshots(target.parent, keep=target)
        return target

    def _trim_snapshots(self, parent: Path, *, keep: Path) -> None:
        trees = sorted(
            (p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in trees[: max(0, len(trees) - self.keep_snapshots)]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    async def changed_paths(self, url: str, old: str, new: str) -> frozenset[str]:
        """Paths that differ between two commits (for re-rendering only the apps they touch)."""
        url = normalize_url(url)
        key = (url, old, new)
        if key in self._changes:
            return self._changes[key]
        # Every app of a monorepo asks for the same pair at once: compute it once.
        async with self._diff_locks.setdefault(key, asyncio.Lock()):
            if key not in self._changes:
                clone = await self.fetch(url, want=new)
                await self.fetch(url, want=old)
                out = await _run(
                    ["--git-dir", str(clone), "diff", "--name-only", "--no-renames", old, new],
                    what=f"repository {url}",
                )
                self._changes[key] = frozenset(line for line in out.splitlines() if line)
        self._diff_locks.pop(key, None)
        return self._changes[key]


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
