"""Turning an Application's source into manifests: detection, the three tools, and a cache.

The source type is detected like Argo CD does: ``Chart.yaml`` means Helm, a kustomization file
means Kustomize, anything else is a directory of manifests; an explicit ``helm`` or
``kustomize`` block in the spec wins. Rendering is pure (same inputs, same output), so results
are cached by (repository, commit, path, render parameters, capabilities). When a new commit
does not touch the paths an app renders from, the previous result is carried forward: in a
monorepo, one app's commit re-renders only that app.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from syrup.gitops import models
from syrup.gitops.render import directory, helm, kustomize
from syrup.gitops.render._manifests import Manifest, RenderError

__all__ = ["Capabilities", "Manifest", "RenderCache", "RenderError", "Request", "detect"]

Capabilities = helm.Capabilities


def detect(app_dir: Path, source: models.Source) -> models.SourceType:
    """Which tool renders this source."""
    if source.helm is not None and (app_dir / "Chart.yaml").is_file():
        return models.SourceType.HELM
    if (app_dir / "Chart.yaml").is_file():
        return models.SourceType.HELM
    if any((app_dir / name).is_file() for name in kustomize.KUSTOMIZATION_FILES):
        return models.SourceType.KUSTOMIZE
    return models.SourceType.DIRECTORY


def _source_dir(repo_root: Path, path: str) -> Path:
    target = (repo_root / path).resolve()
    if not target.is_relative_to(repo_root.resolve()):
        raise RenderError("path leaves the repository", where=f"spec.source.path {path!r}")
    if not target.is_dir():
        raise RenderError(
            "app path does not exist in the repository", where=f"spec.source.path {path!r}"
        )
    return target


Checkout = Callable[[], Awaitable[Path]]
Changes = Callable[[str], Awaitable[frozenset[str]]]


@dataclass(frozen=True)
class Request:
    """Everything a render depends on (the tree itself is fetched only on a cache miss)."""

    repo_url: str
    sha: str
    source: models.Source
    app_name: str
    namespace: str
    capabilities: helm.Capabilities

    def key(self) -> str:
        raw = json.dumps([self.repo_url, self.source.render_key(), self.app_name, self.namespace])
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Result:
    sha: str
    source_type: models.SourceType
    manifests: tuple[Manifest, ...]
    watched: tuple[str, ...]
    #: The capabilities a Helm render used (they only matter to Helm).
    capabilities: helm.Capabilities | None = None

    def reusable_for(self, req: Request) -> bool:
        return self.capabilities is None or self.capabilities == req.capabilities


def render_now(req: Request, repo_root: Path) -> Result:
    """Render synchronously (runs in a worker thread)."""
    root = repo_root.resolve()
    app_dir = _source_dir(root, req.source.path)
    kind = detect(app_dir, req.source)
    rel = app_dir.relative_to(root).as_posix()
    watched: list[str] = [rel]
    caps = None
    if kind is models.SourceType.HELM:
        out = helm.render(
            app_dir,
            req.source.helm,
            repo_root=root,
            app_name=req.app_name,
            namespace=req.namespace,
            capabilities=req.capabilities,
        )
        watched = helm.watched_paths(app_dir, rel, req.source.helm)
        caps = req.capabilities
    elif kind is models.SourceType.KUSTOMIZE:
        out = kustomize.render(app_dir, req.source.kustomize, repo_root=root)
        # A kustomization may pull bases from anywhere in the repository.
        if ".." in _kustomization_text(app_dir):
            watched = ["."]
    else:
        out = directory.render(app_dir, req.source.directory, repo_root=root)
    return Result(
        sha=req.sha,
        source_type=kind,
        manifests=tuple(out),
        watched=tuple(watched),
        capabilities=caps,
    )


def _kustomization_text(app_dir: Path) -> str:
    for name in kustomize.KUSTOMIZATION_FILES:
        if (app_dir / name).is_file():
            return (app_dir / name).read_text(encoding="utf-8", errors="replace")
    return ""


def touches(changed: frozenset[str], watched: tuple[str, ...]) -> bool:
    """Whether any changed file lies under a watched path."""
    for path in watched:
        if path in (".", ""):
            return bool(changed)
        prefix = path.rstrip("/") + "/"
        if any(c == path or c.startswith(prefix) for c in changed):
            return True
    return False


class RenderCache:
    """Bounded LRU of render results; counts renders per app so tests can see reuse."""

    def __init__(self, *, size: int = 4096) -> None:
        self._entries: OrderedDict[str, Result] = OrderedDict()
        self._size = size
        self.renders = 0
        self.renders_by_app: dict[str, int] = {}

    def _put(self, key: str, result: Result) -> None:
        self._entries[key] = result
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    async def render(self, req: Request, *, checkout: Checkout, changes: Changes) -> Result:
        """Cached render of ``req``; the tree is checked out only on a miss.

        A result for an older commit is carried forward when the paths changed since then do
        not touch what it rendered from. Failures are not cached: the next refresh retries.
        """
        key = req.key()
        hit = self._entries.get(key)
        if hit is not None and hit.reusable_for(req):
            if hit.sha == req.sha:
                self._entries.move_to_end(key)
                return hit
            if not touches(await changes(hit.sha), hit.watched):
                carried = replace(hit, sha=req.sha)
                self._put(key, carried)
                return carried
        root = await checkout()
        self.renders += 1
        self.renders_by_app[req.app_name] = self.renders_by_app.get(req.app_name, 0) + 1
        result = await asyncio.to_thread(render_now, req, root)
        self._put(key, result)
        return result
