"""Fixtures for the GitOps tests: real Git repositories built from the corpus.

``make_repo`` turns a corpus folder (or any files) into a bare repository served over a local
path, like a Git host would serve it; ``git_rewrite`` points a GitHub URL at such a repository
through the user's git configuration (``url.<base>.insteadOf``), the way tests reach the URLs
real repositories hold.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.gitops import harness

ROOT = Path(__file__).resolve().parents[2]
CORPUS = (ROOT / ".." / "shared" / "corpus").resolve()
EXAMPLES = CORPUS / "argocd-example-apps"
WAFFLE = CORPUS / "waffle-world"


def git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


class Repo:
    """A working copy and the bare repository it pushes to."""

    def __init__(self, work: Path, bare: Path) -> None:
        self.work = work
        self.bare = bare

    @property
    def url(self) -> str:
        return str(self.bare)

    def commit(self, message: str = "change") -> str:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", message, cwd=self.work)
        git("push", "-q", "origin", "HEAD", cwd=self.work)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)

    def write(self, rel: str, text: str) -> None:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private global git config for the test (the user's configuration Syrup honours)."""
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return config


@pytest.fixture
def make_repo(tmp_path: Path, git_home: Path) -> Callable[..., Repo]:
    counter = iter(range(1000))

    def make(source: Path | None = None, *, branch: str = "main") -> Repo:
        n = next(counter)
        work = tmp_path / f"work{n}"
        bare = tmp_path / f"remote{n}.git"
        if source is not None:
            shutil.copytree(source, work)
        else:
            work.mkdir()
        git("init", "-q", "-b", branch, cwd=work)
        git("init", "-q", "--bare", "-b", branch, str(bare), cwd=tmp_path)
        git("remote", "add", "origin", str(bare), cwd=work)
        (work / ".keep").write_text("")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "initial", cwd=work)
        git("push", "-q", "origin", branch, cwd=work)
        return Repo(work, bare)

    return make


@pytest.fixture
def git_rewrite(git_home: Path) -> Callable[[str, Repo], None]:
    """Serve ``url`` from a local repository through ``url.<base>.insteadOf``."""

    def rewrite(url: str, repo: Repo) -> None:
        with git_home.open("a") as f:
            f.write(f'[url "{repo.bare}"]\n\tinsteadOf = {url}\n')

    return rewrite


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the controller's credential files go to, for this test only."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


@pytest.fixture
def private_running(
    cluster: Cluster, ns: str, tmp_path: Path, git_home: Path, private_tmp: Path
) -> Iterator[harness.Running]:
    """A controller for ``ns`` whose credential files go to ``private_tmp``."""
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()
