"""Git sources: revisions resolve with one remote call, fetches happen only when needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from syrup.gitops import git as gitsrc
from tests.gitops.conftest import EXAMPLES, Repo, git


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


@pytest.fixture
def repo(make_repo: Callable[..., Repo]) -> Repo:
    r = make_repo(EXAMPLES)
    git("tag", "v1.0", cwd=r.work)
    git("tag", "-a", "v1.1", "-m", "annotated", cwd=r.work)
    git("branch", "release", cwd=r.work)
    git("push", "-q", "origin", "--tags", "release", cwd=r.work)
    return r


@pytest.mark.parametrize("revision", ["HEAD", "main", "release", "v1.0", "v1.1", "refs/heads/main"])
def test_a_named_revision_resolves_to_the_commit_it_points_at(
    repo: Repo, tmp_path: Path, revision: str
) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache")
    resolved = run(cache.resolve(repo.url, revision))
    assert resolved.sha == repo.head()


def test_a_commit_sha_resolves_even_when_no_ref_points_at_it(repo: Repo, tmp_path: Path) -> None:
    first = repo.head()
    repo.write("guestbook/extra.yaml", "")
    repo.commit()
    cache = gitsrc.RepoCache(tmp_path / "cache")
    assert run(cache.resolve(repo.url, first)).sha == first
    assert run(cache.resolve(repo.url, first[:10])).sha == first


def test_a_revision_that_does_not_exist_is_reported_as_not_found(
    repo: Repo, tmp_path: Path
) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache")
    with pytest.raises(gitsrc.RevisionNotFound, match="no-such-branch"):
        run(cache.resolve(repo.url, "no-such-branch"))


def test_an_unreachable_repository_is_unavailable_not_a_hang(
    tmp_path: Path, git_home: Path
) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache")
    with pytest.raises(gitsrc.RepoUnavailable, match=r"missing\.git"):
        run(cache.resolve(str(tmp_path / "missing.git"), "HEAD"))
    with pytest.raises(gitsrc.RepoUnavailable):
        run(cache.resolve("https://127.0.0.1:1/nobody/nothing.git", "HEAD"))


def test_url_rewrites_from_the_users_git_config_are_honoured(
    repo: Repo, tmp_path: Path, git_rewrite: Callable[[str, Repo], None]
) -> None:
    url = "https://github.com/argoproj/argocd-example-apps.git"
    git_rewrite(url, repo)
    cache = gitsrc.RepoCache(tmp_path / "cache")
    resolved = run(cache.resolve(url, "HEAD"))
    tree = run(cache.snapshot(url, resolved.sha))
    assert (tree / "guestbook" / "guestbook-ui-svc.yaml").is_file()


def test_fetching_happens_only_when_the_resolved_commit_is_new(repo: Repo, tmp_path: Path) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache", ls_remote_ttl=0)

    async def refresh() -> Path:
        resolved = await cache.resolve(repo.url, "HEAD")
        return await cache.snapshot(repo.url, resolved.sha)

    run(refresh())
    run(refresh())
    assert cache.fetches == 1
    repo.write("guestbook/new.yaml", "")
    repo.commit()
    tree = run(refresh())
    assert cache.fetches == 2
    assert (tree / "guestbook" / "new.yaml").exists()


def test_concurrent_resolutions_of_one_repository_share_one_remote_call(
    repo: Repo, tmp_path: Path
) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache")

    async def many() -> set[str]:
        results = await asyncio.gather(*(cache.resolve(repo.url, "HEAD") for _ in range(50)))
        return {r.sha for r in results}

    assert run(many()) == {repo.head()}
    assert cache.ls_remote_calls == 1


def test_changed_paths_list_the_files_a_commit_touched(repo: Repo, tmp_path: Path) -> None:
    before = repo.head()
    repo.write("guestbook/guestbook-ui-svc.yaml", "# changed\n")
    repo.write("new-app/a.yaml", "")
    after = repo.commit()
    cache = gitsrc.RepoCache(tmp_path / "cache")
    changed = run(cache.changed_paths(repo.url, before, after))
    assert changed == {"guestbook/guestbook-ui-svc.yaml", "new-app/a.yaml"}


def test_hooks_configured_for_git_never_run_on_fetch(
    repo: Repo, tmp_path: Path, git_home: Path
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "hook-ran"
    hook = hooks / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    with git_home.open("a") as f:
        f.write(f"[core]\n\thooksPath = {hooks}\n")
    cache = gitsrc.RepoCache(tmp_path / "cache")
    resolved = run(cache.resolve(repo.url, "HEAD"))
    run(cache.snapshot(repo.url, resolved.sha))
    assert not marker.exists()


def test_a_requested_refresh_sees_a_commit_pushed_within_the_cache_ttl(
    repo: Repo, tmp_path: Path
) -> None:
    cache = gitsrc.RepoCache(tmp_path / "cache", ls_remote_ttl=3600)
    first = run(cache.resolve(repo.url, "HEAD")).sha
    repo.write("guestbook/new.yaml", "")
    second = repo.commit()
    assert run(cache.resolve(repo.url, "HEAD")).sha == first  # the periodic path: cached
    requested = time.monotonic()
    assert run(cache.resolve(repo.url, "HEAD", fresh_after=requested)).sha == second
