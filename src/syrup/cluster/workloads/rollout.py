"""Deployment rollout arithmetic, pure: how many replicas each ReplicaSet should have next.

Follows the Deployment controller's documented rules: ``maxSurge`` rounds up and
``maxUnavailable`` rounds down when given as percentages, and both zero means one unavailable
is allowed; a rolling update first scales the new ReplicaSet up within ``replicas + maxSurge``,
then scales old ones down (unhealthy replicas first, oldest sets first) while keeping
``replicas - maxUnavailable`` available. The status rules (``Available`` and ``Progressing``
conditions, complete / progressing / timed-out) mirror the documented deployment status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from syrup import errors
from syrup.cluster.workloads import objects

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"


def scaled_value(value: int | str | None, total: int, *, round_up: bool, where: str) -> int:
    """An IntOrString against ``total``: ints as they are, ``"25%"`` rounded up or down."""
    if value is None:
        value = "25%"
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError as exc:
            raise errors.InvalidInput(
                f"invalid value {value!r}: must be an integer or percent", where=where
            ) from exc
        raw = percent * total / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    if text.isdigit():
        return int(text)
    raise errors.InvalidInput(
        f"invalid value {value!r}: must be an integer or percent", where=where
    )


@dataclass(frozen=True)
class Fenceposts:
    surge: int
    unavailable: int


def fenceposts(deployment: Obj) -> Fenceposts:
    """maxSurge and maxUnavailable resolved against ``spec.replicas``."""
    dspec = objects.spec(deployment)
    replicas = replicas_of(deployment)
    strategy = dspec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return Fenceposts(surge=0, unavailable=0)
    rolling = strategy.get("rollingUpdate") or {}
    where = (
        f"deployment {objects.namespace(deployment)}/{objects.name(deployment)} "
        "spec.strategy.rollingUpdate"
    )
    surge = scaled_value(
        rolling.get("maxSurge"), replicas, round_up=True, where=f"{where}.maxSurge"
    )
    unavailable = scaled_value(
        rolling.get("maxUnavailable"), replicas, round_up=False, where=f"{where}.maxUnavailable"
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return Fenceposts(surge=surge, unavailable=min(unavailable, replicas))


def replicas_of(obj: Obj) -> int:
    value = objects.spec(obj).get("replicas")
    return 1 if value is None else int(value)


def new_rs_target(deployment: Obj, all_rs: list[Obj], new_rs: Obj) -> int:
    """The new ReplicaSet's next replica count in a rolling update."""
    want = replicas_of(deployment)
    current = replicas_of(new_rs)
    if current >= want:
        return want
    posts = fenceposts(deployment)
    total = sum(replicas_of(rs) for rs in all_rs)
    room = want + posts.surge - total
    if room <= 0:
        return current
    return current + min(room, want - current)


def old_rs_targets(
    deployment: Obj, all_rs: list[Obj], new_rs: Obj, old_rs: list[Obj]
) -> dict[str, int]:
    """Old ReplicaSets' next replica counts (by name) in a rolling update."""
    want = replicas_of(deployment)
    posts = fenceposts(deployment)
    targets = {objects.name(rs): replicas_of(rs) for rs in old_rs}
    if sum(targets.values()) == 0:
        return targets
    min_available = want - posts.unavailable
    all_pods = sum(replicas_of(rs) for rs in all_rs)
    new_unavailable = replicas_of(new_rs) - int(
        objects.status(new_rs).get("availableReplicas") or 0
    )
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return targets
    oldest_first = sorted(
        old_rs, key=lambda rs: (str(objects.meta(rs).get("creationTimestamp")), objects.name(rs))
    )

    # Unhealthy replicas go first: removing them costs no availability.
    for rs in oldest_first:
        if budget <= 0:
            break
        name = objects.name(rs)
        unhealthy = targets[name] - int(objects.status(rs).get("availableReplicas") or 0)
        cut = min(max(unhealthy, 0), budget, targets[name])
        targets[name] -= cut
        budget -= cut

    # Then healthy ones, as far as availability allows.
    available = sum(int(objects.status(rs).get("availableReplicas") or 0) for rs in all_rs)
    available -= sum(replicas_of(rs) - targets[objects.name(rs)] for rs in old_rs)
    room = available - min_available
    for rs in oldest_first:
        if room <= 0:
            break
        name = objects.name(rs)
        cut = min(targets[name], room)
        targets[name] -= cut
        room -= cut
    return targets


def revision_of(rs: Obj) -> int:
    try:
        return int(objects.annotations_of(rs).get(REVISION) or 0)
    except ValueError:
        return 0


_TEMPLATE_KEYS: dict[tuple[str, str], bytes] = {}


def template_key(obj: Obj) -> bytes:
    """A comparable form of ``obj``'s pod template: hash label dropped, empties pruned.

    Memoised per object version, because a Deployment compares its template with every one
    of its ReplicaSets on every look.
    """
    memo = (objects.uid(obj), str(objects.meta(obj).get("resourceVersion") or ""))
    known = _TEMPLATE_KEYS.get(memo)
    if known is not None and memo[1]:
        return known
    template = objects.without_label(objects.spec(obj).get("template") or {}, HASH_LABEL)
    key = orjson.dumps(objects.pruned(template), option=orjson.OPT_SORT_KEYS)
    if len(_TEMPLATE_KEYS) >= 10_000:
        _TEMPLATE_KEYS.clear()
    _TEMPLATE_KEYS[memo] = key
    return key


def same_template(rs: Obj, deployment: Obj) -> bool:
    return template_key(rs) == template_key(deployment)


def complete(deployment: Obj, st: Obj) -> bool:
    want = replicas_of(deployment)
    return (
        int(st.get("updatedReplicas") or 0) == want
        and int(st.get("replicas") or 0) == want
        and int(st.get("availableReplicas") or 0) == want
        and int(st.get("observedGeneration") or 0) >= objects.generation(deployment)
    )


def progressed(old: Obj, new: Obj) -> bool:
    """Whether the new status shows progress over the old (more updated/ready/available)."""

    def get(st: Obj, key: str) -> int:
        return int(st.get(key) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (
        get(new, "updatedReplicas") > get(old, "updatedReplicas")
        or get(new, "readyReplicas") > get(old, "readyReplicas")
        or get(new, "availableReplicas") > get(old, "availableReplicas")
        or new_old < old_old
    )


def _annotated(rs: Obj, key: str) -> int | None:
    try:
        return int(objects.annotations_of(rs)[key])
    except (KeyError, ValueError):
        return None


def is_scaling_event(deployment: Obj, sets: list[Obj]) -> bool:
    """Whether ``spec.replicas`` changed since the active sets were last sized."""
    want = replicas_of(deployment)
    for rs in sets:
        if replicas_of(rs) > 0:
            desired = _annotated(rs, DESIRED)
            if desired is not None and desired != want:
                return True
    return False


def scale_targets(deployment: Obj, new_rs: Obj | None, old_rs: list[Obj]) -> dict[str, int]:
    """Replica counts (by name) after a scaling event, as the Deployment controller's ``scale``.

    One active set (or none: the newest) takes the whole count; a saturated new set sends the
    old ones to zero; otherwise a rolling update spreads the change over the active sets in
    proportion to their size (largest first; leftovers to the first), within maxSurge.
    """
    want = replicas_of(deployment)
    everything = ([new_rs] if new_rs is not None else []) + old_rs
    active = [rs for rs in everything if replicas_of(rs) > 0]
    targets = {objects.name(rs): replicas_of(rs) for rs in everything}
    if len(active) <= 1:
        chosen = active[0] if active else (new_rs or _newest(old_rs))
        if chosen is not None:
            targets[objects.name(chosen)] = want
        return targets
    if new_rs is not None and _saturated(deployment, new_rs):
        for rs in old_rs:
            targets[objects.name(rs)] = 0
        return targets
    if (objects.spec(deployment).get("strategy") or {}).get("type") == "Recreate":
        return targets
    allowed = want + fenceposts(deployment).surge if want > 0 else 0
    to_add = allowed - sum(replicas_of(rs) for rs in active)
    if to_add == 0:
        return targets
    newer_first = to_add > 0
    ordered = sorted(
        active,
        key=lambda rs: (
            -replicas_of(rs),
            _created(rs) if not newer_first else _negated(_created(rs)),
        ),
    )
    added = 0
    for rs in ordered:
        share = _proportion(rs, deployment, to_add, added)
        targets[objects.name(rs)] = replicas_of(rs) + share
        added += share
    first = objects.name(ordered[0])
    targets[first] = max(targets[first] + to_add - added, 0)
    return targets


def _created(rs: Obj) -> str:
    return str(objects.meta(rs).get("creationTimestamp") or "")


def _negated(stamp: str) -> str:
    return "".join(chr(255 - ord(ch)) for ch in stamp)


def _newest(sets: list[Obj]) -> Obj | None:
    return max(sets, key=_created, default=None)


def _saturated(deployment: Obj, rs: Obj) -> bool:
    want = replicas_of(deployment)
    return (
        replicas_of(rs) == want
        and _annotated(rs, DESIRED) == want
        and int(objects.status(rs).get("availableReplicas") or 0) == want
    )


def _proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add in (0, added):
        return 0
    want = replicas_of(deployment)
    if want == 0:
        fraction = -replicas_of(rs)
    else:
        allowed = want + fenceposts(deployment).surge
        annotated = _annotated(rs, MAX_REPLICAS) or int(
            objects.status(deployment).get("replicas") or 0
        )
        if annotated <= 0:
            fraction = 0
        else:
            fraction = math.floor(replicas_of(rs) * allowed / annotated + 0.5) - replicas_of(rs)
    left = to_add - added
    return min(fraction, left) if to_add > 0 else max(fraction, left)
