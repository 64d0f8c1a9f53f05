"""Reading Kubernetes manifests from YAML/JSON text, the way Argo CD's directory source does.

Multi-document YAML, JSON documents and ``List`` kinds (``v1/List``, ``DeploymentList``...)
are flattened into single objects; empty documents are skipped. A parse error becomes a
:class:`RenderError` naming the file and line so a person can fix the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from syrup import errors

Manifest = dict[str, Any]


class RenderError(errors.InvalidInput):
    """The source could not be turned into manifests; the message names the file."""


def _loader() -> type[yaml.SafeLoader]:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse(text: str, *, where: str) -> list[Manifest]:
    """Objects in one YAML or JSON file; ``where`` names the file in errors."""
    try:
        docs = list(yaml.load_all(text, Loader=_loader()))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise RenderError(f"invalid YAML: {problem}", where=f"{where}{line}") from exc
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid YAML: {exc}", where=where) from exc
    out: list[Manifest] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        out.extend(_flatten(doc, where=f"{where} (document {index + 1})"))
    return out


def _flatten(doc: Any, *, where: str) -> Iterator[Manifest]:
    if not isinstance(doc, dict):
        raise RenderError(f"expected a Kubernetes object, got {type(doc).__name__}", where=where)
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            yield from _flatten(item, where=f"{where} items[{i}]")
        return
    check(doc, where=where)
    yield doc


def check(obj: Manifest, *, where: str) -> None:
    """Every object needs apiVersion, kind and a name (or generateName for hooks)."""
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise RenderError(f"object has no {key}", where=where)
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not (meta.get("name") or meta.get("generateName")):
        raise RenderError(f"{obj['kind']} has no metadata.name", where=where)
