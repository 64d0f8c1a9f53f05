"""Small, pure helpers over Kubernetes objects shared by every controller.

Owner references, conditions, labels, generated names and the pod-template hash, written once
so each controller reads in domain words. Objects are plain JSON dicts as storage returns them;
every helper tolerates missing fields, because objects reach us before and after defaulting.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from syrup.cluster import selectors

Obj = dict[str, Any]

#: The alphabet Kubernetes uses for generated names and encoded hashes (no vowels, no 0/1/3).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

MANAGER = "kube-controller-manager"


def meta(obj: Mapping[str, Any]) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def spec(obj: Mapping[str, Any]) -> Obj:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status(obj: Mapping[str, Any]) -> Obj:
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def name(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def namespace(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace") or "")


def uid(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("uid") or "")


def labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def generation(obj: Mapping[str, Any]) -> int:
    return int(meta(obj).get("generation") or 1)


def deep_copy(obj: Obj) -> Obj:
    """A deep copy of JSON data (a serialise round trip is far faster than ``copy``)."""
    out: Obj = orjson.loads(orjson.dumps(obj))
    return out


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


# -- owner references ----------------------------------------------------------------------


def owner_ref(owner: Mapping[str, Any], *, controller: bool = True) -> Obj:
    """An ``ownerReference`` to ``owner`` as controllers set it (blockOwnerDeletion too)."""
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": name(owner),
        "uid": uid(owner),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def controller_ref(obj: Mapping[str, Any]) -> Obj | None:
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == owner_uid


def owner_key(obj: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    """(namespace, name) of the controller of ``obj`` when it is a ``kind``."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return namespace(obj), str(ref.get("name") or "")


# -- selectors -----------------------------------------------------------------------------


def selector_text(selector: Mapping[str, Any] | None) -> str:
    return selectors.selector_to_string(selector or {})


@functools.lru_cache(maxsize=4096)
def _matcher(text: str) -> selectors.Matcher | None:
    return selectors.label_matcher(text)


def selects(selector: Mapping[str, Any] | None, obj: Mapping[str, Any]) -> bool:
    """Whether a LabelSelector object matches ``obj``; an empty selector matches nothing."""
    text = selector_text(selector)
    if not text:
        return False
    match = _matcher(text)
    return match is None or match(obj)


# -- conditions ----------------------------------------------------------------------------


def condition(obj_status: Mapping[str, Any], ctype: str) -> Obj | None:
    for cond in obj_status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def set_condition(
    conditions: list[Obj],
    ctype: str,
    cstatus: str,
    *,
    reason: str,
    message: str,
    now: str,
    update_time: bool = False,
    probe_time: bool = False,
) -> list[Obj]:
    """Set one condition, keeping ``lastTransitionTime`` while its status does not change.

    ``update_time`` maintains ``lastUpdateTime`` (Deployments); ``probe_time`` adds a null
    ``lastProbeTime`` (Pods and Jobs), as the real controllers write them.
    """
    out = [c for c in conditions if c.get("type") != ctype]
    old = next((c for c in conditions if c.get("type") == ctype), None)
    cond: Obj = {"type": ctype, "status": cstatus}
    if probe_time:
        cond["lastProbeTime"] = None
    if update_time:
        same = old is not None and old.get("reason") == reason and old.get("message") == message
        cond["lastUpdateTime"] = old.get("lastUpdateTime", now) if same and old else now
    if old is not None and old.get("status") == cstatus:
        cond["lastTransitionTime"] = old.get("lastTransitionTime", now)
    else:
        cond["lastTransitionTime"] = now
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    index = next((i for i, c in enumerate(conditions) if c.get("type") == ctype), len(out))
    out.insert(index, cond)
    return out


# -- hashing -------------------------------------------------------------------------------


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Map each character onto the safe alphabet, as Kubernetes encodes hashes in names."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a pod template: FNV-32a of its canonical JSON."""
    raw = orjson.dumps(pruned(template), option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def without_label(template: Mapping[str, Any], key: str) -> Obj:
    """A copy of a pod template without one label (how templates compare ignoring the hash)."""
    out = deep_copy(dict(template))
    tmeta = out.get("metadata")
    if isinstance(tmeta, dict):
        tlabels = dict(tmeta.get("labels") or {})
        tlabels.pop(key, None)
        if tlabels:
            tmeta["labels"] = tlabels
        else:
            tmeta.pop("labels", None)
        if not tmeta:
            out.pop("metadata", None)
    return out


def pruned(value: Any) -> Any:
    """``value`` without empty objects, lists and nulls, at any depth.

    Go clients serialise empty structs (``resources: {}``) that others omit; the API server
    compares templates as typed structs where both are the same. Comparing pruned JSON gives
    that same semantic equality.
    """
    if isinstance(value, dict):
        out = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def sum_of(items: Iterable[Mapping[str, Any]], section: str, key: str) -> int:
    total = 0
    for item in items:
        part = item.get(section)
        if isinstance(part, dict):
            total += int(part.get(key) or 0)
    return total
