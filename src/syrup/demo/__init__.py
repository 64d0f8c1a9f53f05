"""The demo GitOps repository Syrup ships, served from a local bare repository.

``repo/`` is an app-of-apps written for Syrup: ``apps/`` holds three Argo CD Applications (a
Helm chart, a Kustomize overlay, plain manifests with a sync wave and a PreSync hook). The
Applications name their repository as ``__REPO_URL__``; :func:`seed` writes the tree with the
real ``file://`` URL of the bare repo it creates in the data dir, commits it on ``main`` and
returns that URL. Nothing here needs the internet.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from syrup import errors, logs

_log = logs.get(__name__)

SOURCE = Path(__file__).resolve().parent / "repo"
ROOT_APP = "demo"
PLACEHOLDER = "__REPO_URL__"
_GIT_ID = ["-c", "user.name=Syrup", "-c", "user.email=demo@syrup.invalid"]


def bare_repo(data_dir: Path) -> Path:
    return data_dir / "demo" / "demo.git"


def repo_url(data_dir: Path) -> str:
    return bare_repo(data_dir).resolve().as_uri()


def _git(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        ["git", *_GIT_ID, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise errors.ConfigError(f"demo repo: git {args[0]} failed: {proc.stderr.strip()}")


def seed(data_dir: Path) -> str:
    """Create the demo's bare repo once (a second call leaves the user's pushes alone)."""
    bare = bare_repo(data_dir)
    url = repo_url(data_dir)
    if (bare / "HEAD").exists():
        return url
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "--bare", "--initial-branch=main", str(bare), cwd=bare.parent)
    with tempfile.TemporaryDirectory(prefix="syrup-demo-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(SOURCE, work)
        for path in work.rglob("*.yaml"):
            text = path.read_text()
            if PLACEHOLDER in text:
                path.write_text(text.replace(PLACEHOLDER, url))
        _git("init", "--initial-branch=main", ".", cwd=work)
        _git("add", "-A", cwd=work)
        _git(
            "commit",
            "-q",
            "-m",
            "Syrup demo: an app-of-apps with Helm, Kustomize and plain apps",
            cwd=work,
        )
        _git("push", "-q", str(bare), "main", cwd=work)
    _log.info("demo repository created", repo=url)
    return url


def root_application(url: str, *, namespace: str = "argocd") -> dict[str, Any]:
    """The app-of-apps: it syncs ``apps/`` (the child Applications) into ``namespace``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": ROOT_APP,
            "namespace": namespace,
            "labels": {"demo.syrup.dev/kind": "app-of-apps"},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "apps"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def refs_stamp(data_dir: Path) -> tuple[float, ...]:
    """Modification times that change whenever someone pushes to the demo repo."""
    bare = bare_repo(data_dir)
    stamps = []
    for path in (bare / "packed-refs", bare / "refs" / "heads"):
        try:
            stamps.append(path.stat().st_mtime)
        except FileNotFoundError:
            stamps.append(0.0)
    heads = bare / "refs" / "heads"
    if heads.is_dir():
        stamps += [p.stat().st_mtime for p in sorted(heads.rglob("*")) if p.is_file()]
    return tuple(stamps)
