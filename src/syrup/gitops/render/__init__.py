"""Turning an Application's source into manifests: detection, the three tools, and a cache.

The source type is detected like Argo CD does: ``Chart.yaml`` means Helm, a kustomization file
means Kustomize, anything else is a directory of manifests; an explicit ``helm`` or
``kustomize`` block in the spec wins. Rendering is pure (same inputs, same output), so results
are cached by (repository, commit, path, render parameters, capabilities). When a new commit
does not touch the paths an app renders from, the previous result is carried forward: in a
monorepo, one app's commit re-renders only that app. An app's
``argocd.argoproj.io/manifest-generate-paths`` annotation replaces those paths with its own
list (Argo CD's rule: relative to the source path, ``/`` from the repository root).

A Helm value file written ``$ref/path`` is read from the tree of another source of the same
app (the one with ``ref: ref``); its path is watched in that source's repository, so a commit
there re-renders the app and a commit elsewhere does not. Multi-source apps and chart
repositories are put together by :mod:`.sources`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from syrup.gitops import models
from syrup.gitops.render import directory, helm, kustomize
from syrup.gitops.render._manifests import Manifest, RenderError

__all__ = [
    "Capabilities",
    "Manifest",
    "RefTree",
    "RenderCache",
    "RenderError",
    "Request",
    "detect",
]

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
#: The tree of a ref source at a commit: (url, sha) -> directory.
RefCheckout = Callable[[str, str], Awaitable[Path]]
#: Paths changed in a ref source's repository: (url, old sha, new sha) -> paths.
RefChanges = Callable[[str, str, str], Awaitable[frozenset[str]]]


@dataclass(frozen=True)
class RefTree:
    """Another source of the app that value files reach as ``$name/...``, at one commit."""

    name: str
    url: str
    sha: str


@dataclass(frozen=True)
class Request:
    """Everything a render depends on (the tree itself is fetched only on a cache miss).

    For a chart source, ``sha`` names the chart archive (its digest) and the tree is the
    unpacked archive, with the chart in a folder of its name.
    """

    repo_url: str
    sha: str
    source: models.Source
    app_name: str
    namespace: str
    capabilities: helm.Capabilities
    refs: tuple[RefTree, ...] = ()
    #: The manifest-generate-paths annotation, if the app has one.
    generate_paths: tuple[str, ...] | None = None

    def key(self) -> str:
        raw = json.dumps(
            [
                self.repo_url,
                self.source.render_key(),
                self.app_name,
                self.namespace,
                [(r.name, r.url) for r in self.refs],
                self.generate_paths,
            ]
        )
        return hashlib.sha256(raw.encode()).hexdigest()

    def ref_shas(self) -> tuple[tuple[str, str], ...]:
        return tuple((r.name, r.sha) for r in self.refs)


@dataclass(frozen=True)
class Result:
    sha: str
    source_type: models.SourceType
    manifests: tuple[Manifest, ...]
    watched: tuple[str, ...]
    #: The capabilities a Helm render used (they only matter to Helm).
    capabilities: helm.Capabilities | None = None
    #: The commit of each ref source the render read, and the paths it read there.
    ref_shas: tuple[tuple[str, str], ...] = ()
    ref_watched: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Objects more than one source of a multi-source app produced (the last one is kept).
    repeated: tuple[str, ...] = field(default=())

    def reusable_for(self, req: Request) -> bool:
        return self.capabilities is None or self.capabilities == req.capabilities


def generate_paths(paths: tuple[str, ...], source_path: str) -> tuple[str, ...]:
    """The manifest-generate-paths annotation as repository paths (Argo CD's reading)."""
    out = []
    for path in paths:
        if path.startswith("/"):
            out.append(helm._normpath(path))
        else:
            out.append(helm._normpath(f"{source_path}/{path}"))
    return tuple(dict.fromkeys(out))


def render_now(
    req: Request, repo_root: Path, *, ref_roots: Mapping[str, Path] | None = None
) -> Result:
    """Render synchronously (runs in a worker thread).

    ``ref_roots`` holds the trees of the ref sources ``req.refs`` names.
    """
    root = repo_root.resolve()
    if req.source.chart:
        app_dir = _source_dir(root, req.source.chart)
        if not (app_dir / "Chart.yaml").is_file():
            raise RenderError("the chart archive holds no Chart.yaml", where=req.source.chart)
    else:
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
            refs=ref_roots,
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
    if req.generate_paths is not None and not req.source.chart:
        watched = list(generate_paths(req.generate_paths, rel))
    by_ref = helm.ref_watched(req.source.helm) if kind is models.SourceType.HELM else {}
    return Result(
        sha=req.sha,
        source_type=kind,
        manifests=tuple(out),
        watched=tuple(watched),
        capabilities=caps,
        ref_shas=req.ref_shas(),
        ref_watched=tuple((name, tuple(paths)) for name, paths in sorted(by_ref.items())),
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

    async def render(
        self,
        req: Request,
        *,
        checkout: Checkout,
        changes: Changes,
        ref_checkout: RefCheckout | None = None,
        ref_changes: RefChanges | None = None,
    ) -> Result:
        """Cached render of ``req``; the tree is checked out only on a miss.

        A result for an older commit is carried forward when the paths changed since then do
        not touch what it rendered from, in its own repository and in each ref source's.
        A chart archive is never carried forward (its digest names its whole content).
        Failures are not cached: the next refresh retries.
        """
        key = req.key()
        hit = self._entries.get(key)
        if hit is not None and hit.reusable_for(req):
            if hit.sha == req.sha and hit.ref_shas == req.ref_shas():
                self._entries.move_to_end(key)
                return hit
            if await self._untouched(hit, req, changes=changes, ref_changes=ref_changes):
                carried = replace(hit, sha=req.sha, ref_shas=req.ref_shas())
                self._put(key, carried)
                return carried
        root = await checkout()
        ref_roots: dict[str, Path] = {}
        for ref in req.refs:
            if ref_checkout is None:
                raise RenderError("no tree for ref sources", where=f"${ref.name}")
            ref_roots[ref.name] = await ref_checkout(ref.url, ref.sha)
        self.renders += 1
        self.renders_by_app[req.app_name] = self.renders_by_app.get(req.app_name, 0) + 1
        result = await asyncio.to_thread(render_now, req, root, ref_roots=ref_roots)
        self._put(key, result)
        return result

    async def _untouched(
        self,
        hit: Result,
        req: Request,
        *,
        changes: Changes,
        ref_changes: RefChanges | None,
    ) -> bool:
        if req.source.chart and hit.sha != req.sha:
            return False
        if hit.sha != req.sha and touches(await changes(hit.sha), hit.watched):
            return False
        old = dict(hit.ref_shas)
        watched = dict(hit.ref_watched)
        for ref in req.refs:
            before = old.get(ref.name)
            if before is None or ref_changes is None:
                return False
            if before != ref.sha and touches(
                await ref_changes(ref.url, before, ref.sha), watched.get(ref.name, ())
            ):
                return False
        return True
