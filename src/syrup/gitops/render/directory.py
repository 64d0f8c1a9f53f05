"""The directory source: every ``.yaml``, ``.yml`` and ``.json`` file under the app's path.

As in Argo CD, only the top folder is read unless ``directory.recurse`` is true; ``include``
and ``exclude`` are glob patterns (``{a,b}`` alternatives allowed) matched against each file's
path relative to the app's path. Hidden files and folders are skipped.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from syrup.gitops import models
from syrup.gitops.render import _manifests

_EXTENSIONS = (".yaml", ".yml", ".json")


def _expand(pattern: str) -> list[str]:
    """``{a,b}`` alternatives as separate fnmatch patterns."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern] if pattern else []
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in _expand(head + alt + tail)]


def _matches(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def files(root: Path, spec: models.DirectorySource | None) -> list[Path]:
    """The manifest files the source reads, in a stable order."""
    spec = spec or models.DirectorySource()
    include = _expand(spec.include)
    exclude = _expand(spec.exclude)
    walker = root.rglob("*") if spec.recurse else root.glob("*")
    chosen = []
    for path in sorted(walker):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if not path.is_file() or path.suffix not in _EXTENSIONS:
            continue
        if include and not _matches(rel, include):
            continue
        if exclude and _matches(rel, exclude):
            continue
        chosen.append(path)
    return chosen


def render(
    root: Path, spec: models.DirectorySource | None, *, repo_root: Path
) -> list[_manifests.Manifest]:
    out: list[_manifests.Manifest] = []
    for path in files(root, spec):
        where = path.relative_to(repo_root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise _manifests.RenderError("file is not UTF-8 text", where=where) from exc
        out.extend(_manifests.parse(text, where=where))
    return out
