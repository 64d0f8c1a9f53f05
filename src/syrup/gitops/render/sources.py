"""An Application's sources put together: Git paths, Helm chart repositories and refs.

Argo CD renders each entry of ``spec.sources`` on its own and concatenates the manifests
(REFERENCE.md; Argo CD's "Multiple Sources for an Application"). Syrup does the same:

* a Git source resolves ``targetRevision`` to a commit and renders its path;
* a chart source resolves ``targetRevision`` (a version or a semver range) in its Helm
  repository or OCI registry (:mod:`.chartrepo`) and renders the chart's archive, so the
  revision it reports is the chart version, as Argo CD shows it;
* a ``ref`` source only names its repository at its revision for the ``$ref/...`` value files
  of the others (unless it also sets ``path`` or ``chart``).

When two sources produce the same object (group, kind, namespace, name) the later source wins,
as in Argo CD, and the result lists the object so the controller can report Argo CD's
``RepeatedResourceWarning``.

Every render goes through the :class:`~syrup.gitops.render.RenderCache`, one entry per source,
so an unchanged refresh renders nothing and a commit re-renders only the sources whose watched
paths (or whose ref files) it touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from syrup.gitops import git, models
from syrup.gitops import render as grender
from syrup.gitops.render import chartrepo

#: The username/password the controller's Secrets hold for a chart repository URL.
ChartAuth = Callable[[str], chartrepo.Auth]


@dataclass(frozen=True)
class Rendered:
    """The manifests of all of an app's sources and the revision each one was rendered at."""

    result: grender.Result
    #: One per source, in order: a commit SHA, or a chart version for a chart source.
    revisions: tuple[str, ...]

    @property
    def sha(self) -> str:
        """What a sync is "of": the one revision, or all of them for a multi-source app."""
        return self.revisions[0] if len(self.revisions) == 1 else ",".join(self.revisions)


@dataclass(frozen=True)
class _Resolved:
    source: models.Source
    url: str
    #: The commit, or the chart archive's digest: what the render cache compares.
    tree: str
    #: What status shows: the commit, or the chart version.
    revision: str
    chart: chartrepo.Fetched | None = None


def _object_key(obj: grender.Manifest) -> str:
    api = str(obj.get("apiVersion") or "")
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return f"{group}/{obj.get('kind')}/{namespace}/{name}".lstrip("/")


class Sources:
    """Renders Applications from their sources, through one shared render cache."""

    def __init__(
        self,
        repos: git.RepoCache,
        charts: chartrepo.ChartRepos,
        cache: grender.RenderCache,
        *,
        chart_auth: ChartAuth | None = None,
    ) -> None:
        self.repos = repos
        self.charts = charts
        self.cache = cache
        self.chart_auth: ChartAuth = chart_auth or (lambda url: chartrepo.Auth())

    async def render(
        self,
        app: models.Application,
        *,
        capabilities: grender.Capabilities,
        fresh_after: float | None = None,
        sources: Sequence[models.Source] | None = None,
    ) -> Rendered:
        """Resolve every source, render those that render, and put the manifests together.

        ``sources`` replaces the app's own (a rollback or a sync to another revision passes
        its source with that revision). Raises :class:`git.GitError` or
        :class:`grender.RenderError`.
        """
        chosen = tuple(sources) if sources is not None else (app.sources or (app.source,))

        # Resolve all sources first: a ref's commit is part of the render of the others.
        resolved = await asyncio.gather(
            *(self._resolve(s, i, len(chosen), fresh_after) for i, s in enumerate(chosen))
        )
        refs = tuple(
            grender.RefTree(name=r.source.ref, url=r.url, sha=r.tree)
            for r in resolved
            if r.source.ref and r.chart is None
        )

        results = []
        for item in resolved:
            if len(chosen) > 1 and not item.source.renders:
                continue
            results.append(await self._render_one(app, item, refs, capabilities))
        revisions = tuple(r.revision for r in resolved)
        if len(results) == 1 and len(chosen) == 1:
            return Rendered(result=results[0], revisions=revisions)
        return Rendered(result=_combine(results, sha=",".join(revisions)), revisions=revisions)

    async def _resolve(
        self, source: models.Source, index: int, count: int, fresh_after: float | None
    ) -> _Resolved:
        where = f"spec.sources[{index}]" if count > 1 else "spec.source"
        if source.chart:
            ref = chartrepo.ChartRef(source.repo_url, source.chart, source.target_revision)
            try:
                fetched = await asyncio.to_thread(
                    self.charts.fetch,
                    ref,
                    auth=self.chart_auth(source.repo_url),
                    refresh=fresh_after is not None,
                )
            except chartrepo.ChartError as exc:
                raise grender.RenderError(str(exc), where=f"{where} chart") from exc
            return _Resolved(
                source=source,
                url=source.repo_url,
                tree=fetched.digest or fetched.version,
                revision=fetched.version,
                chart=fetched,
            )
        found = await self.repos.resolve(
            source.repo_url, source.target_revision, fresh_after=fresh_after
        )
        return _Resolved(source=source, url=found.url, tree=found.sha, revision=found.sha)

    async def _render_one(
        self,
        app: models.Application,
        item: _Resolved,
        refs: tuple[grender.RefTree, ...],
        capabilities: grender.Capabilities,
    ) -> grender.Result:
        uses = {
            found[0]
            for name in (item.source.helm.value_files if item.source.helm else ())
            if (found := grender.helm.ref_file(name)) is not None
        }
        req = grender.Request(
            repo_url=item.url,
            sha=item.tree,
            source=item.source,
            app_name=app.name,
            namespace=app.destination.namespace,
            capabilities=capabilities,
            refs=tuple(r for r in refs if r.name in uses),
            generate_paths=app.generate_paths,
        )
        fetched = item.chart
        if fetched is not None:
            chart = fetched

            async def checkout() -> Path:
                try:
                    return await asyncio.to_thread(self.charts.unpack, chart)
                except chartrepo.ChartError as exc:
                    raise grender.RenderError(str(exc), where=item.source.chart) from exc

            async def changes(old: str) -> frozenset[str]:
                return frozenset({"."})  # never asked: a new archive always renders

        else:
            url, sha = item.url, item.tree

            async def checkout() -> Path:
                return await self.repos.snapshot(url, sha)

            async def changes(old: str) -> frozenset[str]:
                return await self.repos.changed_paths(url, old, sha)

        result = await self.cache.render(
            req,
            checkout=checkout,
            changes=changes,
            ref_checkout=self.repos.snapshot,
            ref_changes=self.repos.changed_paths,
        )
        if fetched is not None:
            # Status and history show the chart version, as Argo CD does.
            result = replace(result, sha=item.revision)
        return result


def _combine(results: Sequence[grender.Result], *, sha: str) -> grender.Result:
    """The sources' manifests in order; a later source's copy of an object replaces it."""
    by_key: dict[str, grender.Manifest] = {}
    repeated: list[str] = []
    for result in results:
        for obj in result.manifests:
            key = _object_key(obj)
            if key in by_key:
                repeated.append(key)
            by_key[key] = obj
    return grender.Result(
        sha=sha,
        source_type=results[0].source_type if results else models.SourceType.DIRECTORY,
        manifests=tuple(by_key.values()),
        watched=(),
        repeated=tuple(dict.fromkeys(repeated)),
    )
