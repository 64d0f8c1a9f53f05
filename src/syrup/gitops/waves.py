"""The plan a sync walks through: phases, waves, hooks and their delete policies.

This follows Argo CD's documented sync order (REFERENCE.md, "Sync Phases and Waves"):

* Four phases run in order, PreSync, Sync, PostSync; SyncFail runs only when an earlier phase
  failed. A plain resource belongs to Sync; a hook names its phases in
  ``argocd.argoproj.io/hook`` (a comma list), or, when that annotation is absent, through Helm's
  ``helm.sh/hook`` (pre-install/pre-upgrade become PreSync, post-install/post-upgrade become
  PostSync; other Helm hooks such as test or pre-delete are not run by a sync). ``Skip`` means
  the object is never applied.
* Within a phase, waves run in ascending order: ``argocd.argoproj.io/sync-wave``, else
  ``helm.sh/hook-weight``, else 0. Within a wave, objects apply in kind order
  (:data:`syrup.gitops.order.KIND_ORDER`, Helm's install order), then by name.
* A Namespace or a CustomResourceDefinition that sits in a later wave than an object that needs
  it moves to that object's step, so nothing lands before its namespace or its type.
* Hook delete policies come from ``argocd.argoproj.io/hook-delete-policy`` or Helm's
  ``helm.sh/hook-delete-policy``; an Argo CD hook without a policy gets BeforeHookCreation, as
  Argo CD does. ``generateName`` hooks are created anew each sync.

The module is pure: it takes manifests and returns :class:`Plan` values; applying, waiting for
health and deleting hooks is :mod:`syrup.gitops.sync`'s job. A malformed wave number is an
error naming the object and the annotation rather than a silent wave 0, because a wrong order
is worse than a refused sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from syrup import errors
from syrup.gitops import order

HOOK = order.HOOK
HELM_HOOK = order.HELM_HOOK
WAVE = order.WAVE
HELM_WEIGHT = order.HELM_WEIGHT
DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
HELM_DELETE_POLICY = "helm.sh/hook-delete-policy"


class InvalidHook(errors.InvalidInput):
    """A hook, wave or delete-policy annotation that cannot be read."""


class SyncPhase(StrEnum):
    PRE_SYNC = "PreSync"
    SYNC = "Sync"
    POST_SYNC = "PostSync"
    SYNC_FAIL = "SyncFail"

    @property
    def rank(self) -> int:
        return _PHASE_RANK[self]


_PHASE_RANK = {
    SyncPhase.PRE_SYNC: 0,
    SyncPhase.SYNC: 1,
    SyncPhase.POST_SYNC: 2,
    SyncPhase.SYNC_FAIL: 3,
}


class DeletePolicy(StrEnum):
    HOOK_SUCCEEDED = "HookSucceeded"
    HOOK_FAILED = "HookFailed"
    BEFORE_HOOK_CREATION = "BeforeHookCreation"


class HookOutcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


_HELM_PHASES = {
    "pre-install": SyncPhase.PRE_SYNC,
    "pre-upgrade": SyncPhase.PRE_SYNC,
    "post-install": SyncPhase.POST_SYNC,
    "post-upgrade": SyncPhase.POST_SYNC,
}
_HELM_POLICIES = {
    "hook-succeeded": DeletePolicy.HOOK_SUCCEEDED,
    "hook-failed": DeletePolicy.HOOK_FAILED,
    "before-hook-creation": DeletePolicy.BEFORE_HOOK_CREATION,
}


@dataclass(frozen=True)
class HookSpec:
    """What the annotations say about one object."""

    phases: tuple[SyncPhase, ...]
    hook: bool
    skip: bool
    delete_policies: frozenset[DeletePolicy]
    generate_name: bool

    def deletes_on(self, outcome: HookOutcome) -> bool:
        """Whether the hook is deleted once it finished with ``outcome``."""
        if outcome is HookOutcome.SUCCEEDED:
            return DeletePolicy.HOOK_SUCCEEDED in self.delete_policies
        return DeletePolicy.HOOK_FAILED in self.delete_policies

    @property
    def recreate(self) -> bool:
        """Delete the previous run's object before creating this run's one."""
        return DeletePolicy.BEFORE_HOOK_CREATION in self.delete_policies


@dataclass(frozen=True)
class Task:
    """One object in one phase."""

    obj: Mapping[str, Any]
    phase: SyncPhase
    wave: int
    spec: HookSpec

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata") or {}
        return str(meta.get("name") or meta.get("generateName") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def display(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Step:
    """A (phase, wave) group: every task must be healthy (hooks: succeeded) before the next."""

    phase: SyncPhase
    wave: int
    tasks: tuple[Task, ...]

    @property
    def label(self) -> str:
        return f"{self.phase}/{self.wave}"


@dataclass(frozen=True)
class Plan:
    """The steps of a sync, and the SyncFail steps run only when one of them fails."""

    steps: tuple[Step, ...]
    on_fail: tuple[Step, ...]
    skipped: tuple[Mapping[str, Any], ...] = field(default=())

    def order(self) -> list[str]:
        """``Kind/name`` in the order the sync applies them (SyncFail excluded)."""
        return [t.display for s in self.steps for t in s.tasks]


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    ann = meta.get("annotations") or {}
    return ann if isinstance(ann, Mapping) else {}


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "?"
    return f"{obj.get('kind', '?')}/{name}"


def _items(raw: Any) -> list[str]:
    return [p.strip() for p in str(raw).split(",") if p.strip()]


def hook_spec(obj: Mapping[str, Any]) -> HookSpec:
    """Read an object's hook, Skip and delete-policy annotations."""
    ann = _annotations(obj)
    where = _where(obj)
    phases: list[SyncPhase] = []
    skip = False
    hook = False

    # An Argo CD hook annotation wins over Helm's, which is then ignored entirely.
    if HOOK in ann:
        for item in _items(ann[HOOK]):
            if item == "Skip":
                skip = True
                continue
            try:
                phases.append(SyncPhase(item))
            except ValueError:
                raise InvalidHook(
                    f"unknown hook type {item!r} (expected PreSync, Sync, PostSync, SyncFail "
                    "or Skip)",
                    where=f"{where}: annotation {HOOK}",
                ) from None
        hook = bool(phases)
        policies = _argo_policies(ann, where)
        if hook and not policies:
            policies = frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    elif HELM_HOOK in ann:
        helm = _items(ann[HELM_HOOK])
        phases = [_HELM_PHASES[h] for h in helm if h in _HELM_PHASES]
        # A Helm-only hook (test, pre-delete...) is not part of a sync at all.
        skip = not phases
        hook = bool(phases)
        policies = _helm_policies(ann, where)
        if not policies:
            policies = frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    else:
        policies = frozenset()

    meta = obj.get("metadata") or {}
    return HookSpec(
        phases=tuple(dict.fromkeys(phases)) or (SyncPhase.SYNC,),
        hook=hook,
        skip=skip,
        delete_policies=policies,
        generate_name=not meta.get("name") and bool(meta.get("generateName")),
    )


def _argo_policies(ann: Mapping[str, Any], where: str) -> frozenset[DeletePolicy]:
    out = set()
    for item in _items(ann.get(DELETE_POLICY, "")):
        try:
            out.add(DeletePolicy(item))
        except ValueError:
            raise InvalidHook(
                f"unknown delete policy {item!r} (expected HookSucceeded, HookFailed or "
                "BeforeHookCreation)",
                where=f"{where}: annotation {DELETE_POLICY}",
            ) from None
    return frozenset(out)


def _helm_policies(ann: Mapping[str, Any], where: str) -> frozenset[DeletePolicy]:
    out = set()
    for item in _items(ann.get(HELM_DELETE_POLICY, "")):
        if item not in _HELM_POLICIES:
            raise InvalidHook(
                f"unknown Helm delete policy {item!r}",
                where=f"{where}: annotation {HELM_DELETE_POLICY}",
            )
        out.add(_HELM_POLICIES[item])
    return frozenset(out)


def wave_of(obj: Mapping[str, Any]) -> int:
    """``sync-wave``, else Helm's ``hook-weight``, else 0."""
    ann = _annotations(obj)
    source = WAVE if WAVE in ann else HELM_WEIGHT if HELM_WEIGHT in ann else None
    if source is None:
        return 0
    raw = str(ann[source]).strip()
    try:
        return int(raw)
    except ValueError:
        raise InvalidHook(
            f"wave {raw!r} is not an integer", where=f"{_where(obj)}: annotation {source}"
        ) from None


def tasks(objs: Iterable[Mapping[str, Any]]) -> tuple[list[Task], list[Mapping[str, Any]]]:
    """One task per object and phase, and the objects marked Skip."""
    out: list[Task] = []
    skipped: list[Mapping[str, Any]] = []
    for obj in objs:
        spec = hook_spec(obj)
        # Skip wins over any phase listed beside it, as in Argo CD.
        if spec.skip:
            skipped.append(obj)
            continue
        w = wave_of(obj)
        out.extend(Task(obj=obj, phase=p, wave=w, spec=spec) for p in spec.phases)
    return out, skipped


def _sort_key(task: Task) -> tuple[int, int, int, str, str]:
    return (task.phase.rank, task.wave, order.kind_rank(task.kind), task.kind, task.name)


def _hoist_prerequisites(items: list[Task]) -> list[Task]:
    """Move a Namespace or CRD to the earliest step of an object that needs it."""
    earliest_ns: dict[str, tuple[int, int]] = {}
    earliest_kind: dict[tuple[str, str], tuple[int, int]] = {}
    for t in items:
        pos = (t.phase.rank, t.wave)
        if t.namespace and pos < earliest_ns.get(t.namespace, (99, 1 << 62)):
            earliest_ns[t.namespace] = pos
        group = str(t.obj.get("apiVersion", "")).rpartition("/")[0]
        if pos < earliest_kind.get((group, t.kind), (99, 1 << 62)):
            earliest_kind[(group, t.kind)] = pos

    out = []
    for t in items:
        need: tuple[int, int] | None = None
        if t.kind == "Namespace" and not t.spec.hook:
            need = earliest_ns.get(t.name)
        elif t.kind == "CustomResourceDefinition" and not t.spec.hook:
            spec = t.obj.get("spec") or {}
            names = spec.get("names") or {}
            need = earliest_kind.get((str(spec.get("group", "")), str(names.get("kind", ""))))
        if need is not None and need < (t.phase.rank, t.wave):
            phase = next(p for p, r in _PHASE_RANK.items() if r == need[0])
            out.append(Task(obj=t.obj, phase=phase, wave=need[1], spec=t.spec))
        else:
            out.append(t)
    return out


def _group(items: Sequence[Task]) -> tuple[Step, ...]:
    steps: dict[tuple[int, int], list[Task]] = {}
    for t in sorted(items, key=_sort_key):
        steps.setdefault((t.phase.rank, t.wave), []).append(t)
    return tuple(
        Step(phase=group[0].phase, wave=group[0].wave, tasks=tuple(group))
        for _, group in sorted(steps.items())
    )


def plan(objs: Iterable[Mapping[str, Any]]) -> Plan:
    """The steps of a sync over ``objs`` (rendered manifests, hooks included)."""
    items, skipped = tasks(objs)
    fail = [t for t in items if t.phase is SyncPhase.SYNC_FAIL]
    main = _hoist_prerequisites([t for t in items if t.phase is not SyncPhase.SYNC_FAIL])
    return Plan(steps=_group(main), on_fail=_group(fail), skipped=tuple(skipped))


def step_done(*, hooks: Mapping[str, HookOutcome | None], healthy: Mapping[str, bool]) -> bool:
    """A step is done when every hook has succeeded and every resource is healthy."""
    return all(v is HookOutcome.SUCCEEDED for v in hooks.values()) and all(healthy.values())


def step_failed(*, hooks: Mapping[str, HookOutcome | None]) -> bool:
    """One failed hook fails the step (and with it the sync, which then runs SyncFail)."""
    return any(v is HookOutcome.FAILED for v in hooks.values())
