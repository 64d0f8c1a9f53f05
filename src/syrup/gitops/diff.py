"""Comparing what Git wants with what the cluster holds.

Argo CD's rule (REFERENCE.md, "diff-strategies"): the desired object is sent as a server-side
dry-run apply with Syrup's field manager, and the server's answer (what the object would be
after the apply) is compared with the live object. Server defaults and fields owned by other
managers therefore never count as drift. Both sides are normalized first: ``status``,
server-set metadata and ``managedFields`` are dropped, and a Secret's ``stringData`` is folded
into base64 ``data`` the way the API server stores it.

Diffs are rendered as unified YAML per resource; Secret values are masked so a diff never
shows a secret.
"""

from __future__ import annotations

import base64
import copy
import difflib
from collections.abc import Mapping
from typing import Any

import yaml

_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionGracePeriodSeconds",
)
_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_MASK = "++++++++"


def normalize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the fields a server sets on its own."""
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = dict(out.get("metadata") or {})
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    annotations = dict(meta.get("annotations") or {})
    for key in _SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    if not meta.get("labels"):
        meta.pop("labels", None)
    out["metadata"] = meta
    if out.get("kind") == "Secret" and out.get("apiVersion") == "v1":
        _fold_string_data(out)
    return out


def _fold_string_data(secret: dict[str, Any]) -> None:
    string_data = secret.pop("stringData", None) or {}
    if not string_data:
        return
    data = dict(secret.get("data") or {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["data"] = data


def equal(predicted: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
    """Whether applying would change nothing (both sides normalized)."""
    return normalize(predicted) == normalize(live)


def _masked_pair(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Secret values replaced by a marker that still shows which keys changed."""
    old = dict((before or {}).get("data") or {})
    new = dict((after or {}).get("data") or {})
    for side, mine, other in ((before, old, new), (after, new, old)):
        if side is None or "data" not in side:
            continue
        masked = {}
        for key, value in mine.items():
            suffix = (
                "" if other.get(key) == value else (" (before)" if side is before else " (after)")
            )
            masked[key] = _MASK + suffix
        side["data"] = masked
    return before, after


def _dump(obj: Mapping[str, Any] | None) -> list[str]:
    if obj is None:
        return []
    text = yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False)
    return text.splitlines(keepends=True)


def unified(
    live: Mapping[str, Any] | None, predicted: Mapping[str, Any] | None, *, name: str
) -> str:
    """A unified YAML diff from live to the state Git asks for ('' when equal)."""
    before = normalize(live) if live is not None else None
    after = normalize(predicted) if predicted is not None else None
    kind = (predicted or live or {}).get("kind")
    if kind == "Secret":
        before, after = _masked_pair(before, after)
    lines = difflib.unified_diff(
        _dump(before), _dump(after), fromfile=f"live/{name}", tofile=f"desired/{name}"
    )
    return "".join(lines)
