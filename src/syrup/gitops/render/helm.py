"""The Helm source, rendered by Helm's own engine through ``helm-python-sdk``.

Follows Argo CD's ``helm template`` call: the release name defaults to the Application's name,
the namespace is the destination namespace, value files are read relative to the chart (and
must stay inside the repository), then inline ``values``, then ``valuesObject``, then
``parameters`` (Helm's ``--set``) override in that order. The target cluster's Kubernetes
version and API versions are passed as capabilities, so ``.Capabilities.APIVersions.Has``
reflects the destination; ``lookup`` returns nothing. Chart dependencies vendored in
``charts/`` are used as they are; declared ones on local paths are built before rendering.

NB: the SDK's public ``Chart.render`` does not expose the capability options that its C ABI
accepts (``kube_version``, ``api_versions``); :func:`_render_chart` calls the same native
function with them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

from syrup.gitops import models
from syrup.gitops.render import _manifests

_deps_lock = threading.Lock()


@dataclass(frozen=True)
class Capabilities:
    """What ``.Capabilities`` shows the templates: taken from the target cluster's discovery."""

    kube_version: str = "v1.30.0"
    api_versions: tuple[str, ...] = ()


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of user values: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def ref_file(name: str) -> tuple[str, str] | None:
    """``$ref/path/values.yaml`` as (ref, path), or None for a file of the chart's own tree."""
    if not name.startswith("$"):
        return None
    ref, _, rest = name[1:].partition("/")
    return ref, rest


def _value_file(
    chart_dir: Path,
    repo_root: Path,
    name: str,
    *,
    ignore_missing: bool,
    refs: Mapping[str, Path],
) -> Any:
    where = f"{chart_dir.relative_to(repo_root).as_posix()}/{name}"
    if "://" in name:
        raise _manifests.RenderError("remote value files are not supported", where=where)
    in_ref = ref_file(name)
    if in_ref is not None:
        # A file of another source's repository, at that source's targetRevision.
        where = name
        if in_ref[0] not in refs:
            raise _manifests.RenderError(f"no source has ref {in_ref[0]!r}", where=where)
        repo_root = refs[in_ref[0]]
        path = (repo_root / in_ref[1]).resolve()
    else:
        path = (chart_dir / name).resolve()
    if not path.is_relative_to(repo_root.resolve()):
        raise _manifests.RenderError("value file is outside the repository", where=where)
    if not path.is_file():
        if ignore_missing:
            return None
        raise _manifests.RenderError("value file does not exist", where=where)
    rel = path.relative_to(repo_root.resolve()).as_posix()
    if in_ref is not None:
        rel = f"${in_ref[0]}/{rel}"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise _manifests.RenderError(f"invalid YAML: {exc.problem}", where=f"{rel}{line}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise _manifests.RenderError("a values file must hold a map", where=rel)
    return loaded


def user_values(
    chart_dir: Path,
    repo_root: Path,
    spec: models.HelmSource,
    *,
    refs: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """The values a user gave, merged in Argo CD's order of precedence.

    ``refs`` maps the ``ref`` names of an app's other sources to their trees, for value files
    written ``$ref/path``.
    """
    merged: dict[str, Any] = {}
    for name in spec.value_files:
        loaded = _value_file(
            chart_dir,
            repo_root,
            name,
            ignore_missing=spec.ignore_missing_value_files,
            refs=refs or {},
        )
        if loaded:
            merged = deep_merge(merged, loaded)
    if spec.values.strip():
        try:
            inline = yaml.safe_load(spec.values)
        except yaml.YAMLError as exc:
            raise _manifests.RenderError(
                f"invalid YAML: {exc}", where="spec.source.helm.values"
            ) from exc
        if inline is not None and not isinstance(inline, dict):
            raise _manifests.RenderError("must be a map", where="spec.source.helm.values")
        merged = deep_merge(merged, inline or {})
    if spec.values_object:
        merged = deep_merge(merged, spec.values_object)
    for param in spec.parameters:
        expression = f"{param.name}={param.value}"
        try:
            parsed = (
                helm.parse_set_string_values(expression)
                if param.force_string
                else helm.parse_set_string(expression)
            )
        except helm.HelmError as exc:
            raise _manifests.RenderError(
                str(exc), where=f"spec.source.helm.parameters {param.name}"
            ) from exc
        merged = deep_merge(merged, parsed)
    return merged


_CHART_INPUTS = (
    "Chart.yaml",
    "Chart.lock",
    "requirements.yaml",
    "values.yaml",
    "values.schema.json",
    "templates",
    "charts",
    "crds",
)


def watched_paths(chart_dir: Path, chart_path: str, spec: models.HelmSource | None) -> list[str]:
    """Repository paths whose change can change this render.

    A chart reads its metadata, values, templates, subcharts and CRDs; other files only through
    ``.Files``, so a chart whose templates never mention ``.Files`` does not re-render when, say,
    a folder of manifests beside its templates changes (an app-of-apps chart at the root of a
    monorepo).
    """
    templates = chart_dir / "templates"
    uses_files = templates.is_dir() and any(
        ".Files" in p.read_text(encoding="utf-8", errors="replace")
        for p in templates.rglob("*")
        if p.is_file()
    )
    if uses_files:
        paths = [chart_path]
    else:
        paths = [_normpath(f"{chart_path}/{name}") for name in _CHART_INPUTS]
    for name in spec.value_files if spec else ():
        if ref_file(name) is None:
            paths.append(_normpath((Path(chart_path) / name).as_posix()))
    return list(dict.fromkeys(paths))


def ref_watched(spec: models.HelmSource | None) -> dict[str, list[str]]:
    """The paths of other sources' repositories (by ref) that this chart's values read."""
    out: dict[str, list[str]] = {}
    for name in spec.value_files if spec else ():
        found = ref_file(name)
        if found is not None:
            out.setdefault(found[0], []).append(_normpath(found[1]))
    return out


def _normpath(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or "."


def _ensure_dependencies(chart_dir: Path, chart: helm.Chart) -> helm.Chart:
    declared = chart.metadata.get("dependencies") or []
    loaded = {d.get("name") for d in chart.dependencies}
    missing = [d for d in declared if d.get("name") not in loaded]
    if not missing:
        return chart
    with _deps_lock:
        try:
            helm.dependency_update(chart_dir)
        except helm.HelmError as exc:
            names = ", ".join(str(d.get("name")) for d in missing)
            raise _manifests.RenderError(
                f"chart dependencies {names} could not be built: {exc}", where="Chart.yaml"
            ) from exc
    chart.close()
    return helm.Chart.load(chart_dir)


def _render_chart(
    chart: helm.Chart, values: dict[str, Any], *, release: str, namespace: str, caps: Capabilities
) -> dict[str, str]:
    opts: dict[str, Any] = {
        "name": release,
        "namespace": namespace,
        "is_install": True,
        "kube_version": caps.kube_version,
        "api_versions": list(caps.api_versions),
    }
    rendered = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values), json.dumps(opts)
    )
    manifests: dict[str, str] = json.loads(rendered)
    return manifests


def render(
    chart_dir: Path,
    spec: models.HelmSource | None,
    *,
    repo_root: Path,
    app_name: str,
    namespace: str,
    capabilities: Capabilities,
    refs: Mapping[str, Path] | None = None,
) -> list[_manifests.Manifest]:
    spec = spec or models.HelmSource()
    rel = chart_dir.relative_to(repo_root).as_posix()
    values = user_values(chart_dir, repo_root, spec, refs=refs)
    try:
        chart = helm.Chart.load(chart_dir)
    except helm.HelmError as exc:
        raise _manifests.RenderError(f"chart could not be loaded: {exc}", where=rel) from exc
    try:
        chart = _ensure_dependencies(chart_dir, chart)
        release = spec.release_name or app_name
        try:
            files = _render_chart(
                chart, values, release=release, namespace=namespace, caps=capabilities
            )
        except helm.HelmError as exc:
            raise _manifests.RenderError(f"helm template failed: {exc}", where=rel) from exc
        crds = chart.crds
    finally:
        chart.close()
    return _collect(files, crds, chart_root=chart_dir.parent, repo_root=repo_root)


def _collect(
    files: Mapping[str, str],
    crds: Sequence[Mapping[str, str]],
    *,
    chart_root: Path,
    repo_root: Path,
) -> list[_manifests.Manifest]:
    out: list[_manifests.Manifest] = []
    base = chart_root.relative_to(repo_root).as_posix()
    for crd in crds:
        out.extend(_manifests.parse(crd.get("data", ""), where=crd.get("filename", "crds")))
    for name in sorted(files):
        if not name.endswith((".yaml", ".yml", ".json")):
            continue
        where = name if base in ("", ".") else f"{base}/{name}"
        for obj in _manifests.parse(files[name], where=where):
            hook = (obj.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook", "")
            if "test" in str(hook).split(","):
                continue
            out.append(obj)
    return out
