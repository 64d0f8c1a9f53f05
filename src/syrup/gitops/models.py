"""Typed views of Argo CD's ``Application`` (``argoproj.io/v1alpha1``).

Syrup reads the same objects Argo CD does so existing repositories and app-of-apps charts work
as they are. Parsing is strict about shapes (a list where a map is expected, a value of the
wrong type) and names the offending field as ``spec.source.helm.valueFiles[1]``; it is lenient
about fields Syrup does not implement yet, which it ignores like an older Argo CD would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from syrup import errors

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
#: ``;``-separated paths whose change re-renders the app (relative to the source path, or
#: absolute from the repository root with a leading ``/``; ``.`` is the source path itself).
GENERATE_PATHS_ANNOTATION = "argocd.argoproj.io/manifest-generate-paths"
TRACKING_LABEL = "app.kubernetes.io/instance"


class InvalidSpec(errors.InvalidInput):
    """An Application or AppProject field has the wrong shape."""


class SourceType(StrEnum):
    HELM = "Helm"
    KUSTOMIZE = "Kustomize"
    DIRECTORY = "Directory"


@dataclass(frozen=True)
class HelmParameter:
    name: str
    value: str
    force_string: bool = False


@dataclass(frozen=True)
class HelmSource:
    release_name: str | None = None
    value_files: tuple[str, ...] = ()
    values: str = ""
    values_object: Mapping[str, Any] | None = None
    parameters: tuple[HelmParameter, ...] = ()
    ignore_missing_value_files: bool = False


@dataclass(frozen=True)
class KustomizeSource:
    images: tuple[str, ...] = ()
    name_prefix: str = ""
    name_suffix: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = ""


@dataclass(frozen=True)
class DirectorySource:
    recurse: bool = False
    include: str = ""
    exclude: str = ""


@dataclass(frozen=True)
class Source:
    """One ``spec.source`` or one entry of ``spec.sources``.

    A source with ``chart`` comes from a Helm chart repository (``repoURL`` is the repository,
    ``oci://`` for a registry) and ``targetRevision`` is a chart version or a semver range.
    A source with ``ref`` names its repository for ``$ref/...`` value files of other sources;
    it contributes manifests only when it also sets ``path`` or ``chart``.
    """

    repo_url: str
    path: str = "."
    target_revision: str = "HEAD"
    helm: HelmSource | None = None
    kustomize: KustomizeSource | None = None
    directory: DirectorySource | None = None
    chart: str = ""
    ref: str = ""
    #: Whether the spec set ``path`` (a ``ref`` source without one renders nothing).
    path_given: bool = True

    @property
    def renders(self) -> bool:
        return not self.ref or bool(self.chart) or self.path_given

    def render_key(self) -> str:
        """Everything but the revision that changes what renders: part of the cache key."""
        return json.dumps(_plain(self), sort_keys=True, default=str)


@dataclass(frozen=True)
class Destination:
    server: str = ""
    name: str = ""
    namespace: str = ""

    @property
    def in_cluster(self) -> bool:
        return self.server.rstrip("/") == IN_CLUSTER_SERVER or self.name == IN_CLUSTER_NAME


@dataclass(frozen=True)
class SyncPolicy:
    automated: bool = False
    prune: bool = False
    self_heal: bool = False
    allow_empty: bool = False
    options: frozenset[str] = frozenset()

    def has(self, option: str) -> bool:
        return option in self.options


@dataclass(frozen=True)
class SyncOperation:
    """``operation.sync``: a sync someone asked for (the Argo CD CLI writes it)."""

    revision: str = ""
    prune: bool = False
    dry_run: bool = False
    options: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Application:
    namespace: str
    name: str
    project: str
    source: Source
    destination: Destination
    sync_policy: SyncPolicy
    operation: SyncOperation | None
    refresh: str | None
    generation: int
    spec_hash: str
    #: Every source in order: ``spec.sources`` when given (it wins, as in Argo CD), else the
    #: one ``spec.source``. ``source`` is the first of them.
    sources: tuple[Source, ...] = ()
    #: ``spec.sources`` was used: status carries ``revisions``/``sources`` lists.
    multi_source: bool = False
    #: The manifest-generate-paths annotation split on ``;`` (None: not set).
    generate_paths: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def repo_urls(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.repo_url for s in self.sources or (self.source,)))


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# -- field readers that name the field on error -------------------------------------------


def _map(obj: Any, where: str) -> Mapping[str, Any]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise InvalidSpec(f"expected a map, got {type(obj).__name__}", where=where)
    return obj


def _str(obj: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidSpec(f"expected a string, got {type(value).__name__}", where=f"{where}.{key}")
    return str(value)


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidSpec(f"expected true or false, got {value!r}", where=f"{where}.{key}")
    return value


def _strs(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise InvalidSpec("expected a list", where=f"{where}.{key}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            raise InvalidSpec("expected a string", where=f"{where}.{key}[{i}]")
        out.append(str(item))
    return tuple(out)


def _helm(raw: Mapping[str, Any], where: str) -> HelmSource:
    params = []
    plist = raw.get("parameters") or []
    if not isinstance(plist, list):
        raise InvalidSpec("expected a list", where=f"{where}.parameters")
    for i, p in enumerate(plist):
        pw = f"{where}.parameters[{i}]"
        pm = _map(p, pw)
        name = _str(pm, "name", pw)
        if not name:
            raise InvalidSpec("a parameter needs a name", where=f"{pw}.name")
        params.append(
            HelmParameter(
                name=name, value=_str(pm, "value", pw), force_string=_bool(pm, "forceString", pw)
            )
        )
    values = raw.get("values") or ""
    if isinstance(values, Mapping):
        # Argo CD accepts values as a map too (it re-serialises it).
        values = json.dumps(values)
    elif not isinstance(values, str):
        raise InvalidSpec("expected a YAML string", where=f"{where}.values")
    values_object = raw.get("valuesObject")
    if values_object is not None and not isinstance(values_object, Mapping):
        raise InvalidSpec("expected a map", where=f"{where}.valuesObject")
    return HelmSource(
        release_name=_str(raw, "releaseName", where) or None,
        value_files=_strs(raw, "valueFiles", where),
        values=values,
        values_object=values_object,
        parameters=tuple(params),
        ignore_missing_value_files=_bool(raw, "ignoreMissingValueFiles", where),
    )


def _kustomize(raw: Mapping[str, Any], where: str) -> KustomizeSource:
    labels = _map(raw.get("commonLabels"), f"{where}.commonLabels")
    return KustomizeSource(
        images=_strs(raw, "images", where),
        name_prefix=_str(raw, "namePrefix", where),
        name_suffix=_str(raw, "nameSuffix", where),
        common_labels={str(k): str(v) for k, v in labels.items()},
        namespace=_str(raw, "namespace", where),
    )


def _chart_repo(repo: str) -> str:
    """Argo CD takes a registry host without a scheme as an OCI registry."""
    if "://" in repo:
        return repo.rstrip("/")
    return f"oci://{repo.rstrip('/')}"


#: What git reads as a remote: a URL with a scheme, scp-like ``user@host:path``, or an
#: absolute local path.
_GIT_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[^/:@\s]+@[^/:\s]+:|/)")


def _source(raw: Mapping[str, Any], where: str) -> Source:
    repo = _str(raw, "repoURL", where)
    if not repo:
        raise InvalidSpec("repoURL is required", where=f"{where}.repoURL")
    chart = _str(raw, "chart", where).strip()
    ref = _str(raw, "ref", where).strip()
    if ref and not re.fullmatch(r"[A-Za-z0-9_-]+", ref):
        raise InvalidSpec("a ref is a name of letters, digits, '-' and '_'", where=f"{where}.ref")
    if not chart and not _GIT_URL.match(repo):
        # git would take anything else as a path relative to the controller's directory.
        raise InvalidSpec(
            f"{repo!r} is not a repository URL: use scheme://..., user@host:path or an "
            "absolute path",
            where=f"{where}.repoURL",
        )
    if chart:
        if "/" in chart or chart.startswith("."):
            raise InvalidSpec("a chart is a name, not a path", where=f"{where}.chart")
        if raw.get("kustomize") is not None or raw.get("directory") is not None:
            raise InvalidSpec("a chart source takes helm options only", where=f"{where}.chart")
        repo = _chart_repo(repo)
        revision = _str(raw, "targetRevision", where).strip()
        if not revision:
            raise InvalidSpec(
                "a chart source needs targetRevision (a version or a range such as 1.2.*)",
                where=f"{where}.targetRevision",
            )
        try:
            _check_range(revision)
        except ValueError as exc:
            raise InvalidSpec(str(exc), where=f"{where}.targetRevision") from None
    helm = raw.get("helm")
    kustomize = raw.get("kustomize")
    directory = raw.get("directory")
    dmap = _map(directory, f"{where}.directory")
    return Source(
        repo_url=repo,
        chart=chart,
        ref=ref,
        path_given=bool(_str(raw, "path", where)),
        path=_str(raw, "path", where, ".") or ".",
        target_revision=_str(raw, "targetRevision", where, "HEAD") or "HEAD",
        helm=_helm(_map(helm, f"{where}.helm"), f"{where}.helm") if helm is not None else None,
        kustomize=(
            _kustomize(_map(kustomize, f"{where}.kustomize"), f"{where}.kustomize")
            if kustomize is not None
            else None
        ),
        directory=(
            DirectorySource(
                recurse=_bool(dmap, "recurse", f"{where}.directory"),
                include=_str(dmap, "include", f"{where}.directory"),
                exclude=_str(dmap, "exclude", f"{where}.directory"),
            )
            if directory is not None
            else None
        ),
    )


def _sync_policy(raw: Mapping[str, Any], where: str) -> SyncPolicy:
    automated = raw.get("automated")
    amap = _map(automated, f"{where}.automated")
    return SyncPolicy(
        automated=automated is not None,
        prune=_bool(amap, "prune", f"{where}.automated"),
        self_heal=_bool(amap, "selfHeal", f"{where}.automated"),
        allow_empty=_bool(amap, "allowEmpty", f"{where}.automated"),
        options=frozenset(_strs(raw, "syncOptions", where)),
    )


def _operation(raw: Any) -> SyncOperation | None:
    op = _map(raw, "operation")
    if "sync" not in op:
        return None
    sync = _map(op.get("sync"), "operation.sync")
    return SyncOperation(
        revision=_str(sync, "revision", "operation.sync"),
        prune=_bool(sync, "prune", "operation.sync"),
        dry_run=_bool(sync, "dryRun", "operation.sync"),
        options=frozenset(_strs(sync, "syncOptions", "operation.sync")),
    )


def parse_application(obj: Mapping[str, Any]) -> Application:
    """Read an Application object; :class:`InvalidSpec` names the first wrong field."""
    meta = _map(obj.get("metadata"), "metadata")
    spec = _map(obj.get("spec"), "spec")
    name = _str(meta, "name", "metadata")
    sources = _sources(spec)
    dest = _map(spec.get("destination"), "spec.destination")
    annotations = _map(meta.get("annotations"), "metadata.annotations")
    refresh = annotations.get(REFRESH_ANNOTATION)
    generate = annotations.get(GENERATE_PATHS_ANNOTATION)
    return Application(
        namespace=_str(meta, "namespace", "metadata"),
        name=name,
        project=_str(spec, "project", "spec", "default") or "default",
        source=sources[0],
        sources=sources,
        multi_source=bool(spec.get("sources")),
        generate_paths=_generate_paths(generate) if generate is not None else None,
        destination=Destination(
            server=_str(dest, "server", "spec.destination"),
            name=_str(dest, "name", "spec.destination"),
            namespace=_str(dest, "namespace", "spec.destination"),
        ),
        sync_policy=_sync_policy(
            _map(spec.get("syncPolicy"), "spec.syncPolicy"), "spec.syncPolicy"
        ),
        operation=_operation(obj.get("operation")),
        refresh=str(refresh) if refresh else None,
        generation=int(meta.get("generation") or 0),
        spec_hash=json.dumps(spec, sort_keys=True, default=str),
    )


def parse_source(raw: Any, *, where: str) -> Source:
    """One source as written in a spec or a history entry; :class:`InvalidSpec` names it."""
    return _source(_map(raw, where), where)


def _sources(spec: Mapping[str, Any]) -> tuple[Source, ...]:
    """``spec.sources`` when it has entries (it wins over ``spec.source``), else the one."""
    raw = spec.get("sources")
    if raw:
        if not isinstance(raw, list):
            raise InvalidSpec("expected a list", where="spec.sources")
        out = tuple(
            _source(_map(s, f"spec.sources[{i}]"), f"spec.sources[{i}]") for i, s in enumerate(raw)
        )
        names = [s.ref for s in out if s.ref]
        for i, source in enumerate(out):
            if source.ref and names.count(source.ref) > 1:
                raise InvalidSpec(
                    f"ref {source.ref!r} is used twice", where=f"spec.sources[{i}].ref"
                )
        for i, source in enumerate(out):
            for j, name in enumerate(source.helm.value_files if source.helm else ()):
                ref = name[1:].split("/", 1)[0] if name.startswith("$") else ""
                if ref and ref not in names:
                    raise InvalidSpec(
                        f"no source has ref {ref!r}",
                        where=f"spec.sources[{i}].helm.valueFiles[{j}]",
                    )
        if not any(s.renders for s in out):
            raise InvalidSpec(
                "no source renders manifests (each has only ref)", where="spec.sources"
            )
        return out
    if spec.get("source") is None:
        raise InvalidSpec("source or sources is required", where="spec.source")
    return (_source(_map(spec.get("source"), "spec.source"), "spec.source"),)


def _generate_paths(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, str):
        raise InvalidSpec(
            "expected a string", where=f"metadata.annotations[{GENERATE_PATHS_ANNOTATION}]"
        )
    return tuple(p.strip() for p in raw.split(";") if p.strip())


_RANGE_WORD = re.compile(
    r"(\^|~>?|>=|<=|!=|>|<|=)?v?(\d+|[xX*])(\.(\d+|[xX*])){0,2}"
    r"(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?"
)


def _check_range(text: str) -> None:
    """A chart version or a semver range in the syntax Helm reads; ValueError otherwise.

    Only the shape is checked here (a wrong word is named at once); the chart repository
    layer evaluates the range.
    """
    for alternative in text.split("||"):
        # An operator may stand apart from its version (">= 1.0"), a hyphen range is "a - b".
        glued = re.sub(r"([<>=!~^]+)\s+", r"\1", alternative.strip())
        words = [w for w in re.split(r"[\s,]+", glued) if w and w != "-"]
        if not words:
            raise ValueError(f"empty version range in {text!r}")
        for word in words:
            if not _RANGE_WORD.fullmatch(word):
                raise ValueError(f"{word!r} is neither a chart version nor a semver range")
