"""The sync plan: phases, waves, kind order, hooks and delete policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from syrup.gitops import waves

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "argocd-example-apps"


def obj(kind: str, name: str, api: str = "v1", **ann: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ann:
        meta["annotations"] = {k.replace("__", "/").replace("_", "-"): v for k, v in ann.items()}
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def annotated(kind: str, name: str, annotations: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations, **meta},
    }


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_sync_waves_example_runs_presync_then_waves_in_order() -> None:
    plan = waves.plan(load(CORPUS / "sync-waves" / "manifests.yaml"))
    assert [s.label for s in plan.steps] == ["PreSync/0", "Sync/0", "Sync/1", "Sync/2", "Sync/3"]
    assert plan.order() == [
        "Job/upgrade-sql-schema",
        "Service/backend",
        "ReplicaSet/backend",
        "Job/maint-page-up",
        "Service/frontend",
        "ReplicaSet/frontend",
        "Job/maint-page-down",
    ]
    first = plan.steps[0].tasks[0]
    assert first.spec.generate_name and first.spec.recreate


def test_the_helm_hooks_example_maps_helm_hooks_to_phases_and_weights_to_waves() -> None:
    plan = waves.plan(load(CORPUS / "helm-hooks" / "manifests.yaml"))
    assert [s.label for s in plan.steps] == [
        "PreSync/-2",
        "PreSync/-1",
        "Sync/0",
        "Sync/2",
        "PostSync/0",
    ]
    assert plan.order() == [
        "Job/upgrade-sql-schema",
        "Job/maint-page-up",
        "ReplicaSet/frontend",
        "Service/frontend",
        "Job/maint-page-down",
    ]


def test_the_pre_post_sync_hooks_are_deleted_when_they_succeed() -> None:
    docs = load(CORPUS / "pre-post-sync" / "pre-sync-job.yaml") + load(
        CORPUS / "pre-post-sync" / "post-sync-job.yaml"
    )
    plan = waves.plan([*docs, obj("Service", "web")])
    assert plan.order() == ["Job/before", "Service/web", "Job/after"]
    spec = plan.steps[0].tasks[0].spec
    assert spec.deletes_on(waves.HookOutcome.SUCCEEDED)
    assert not spec.deletes_on(waves.HookOutcome.FAILED)
    assert not spec.recreate


@pytest.mark.parametrize(
    ("annotations", "phases", "hook", "skip", "policies"),
    [
        ({}, ("Sync",), False, False, set()),
        ({"argocd.argoproj.io/hook": "PreSync"}, ("PreSync",), True, False, {"BeforeHookCreation"}),
        (
            {"argocd.argoproj.io/hook": "PreSync,PostSync"},
            ("PreSync", "PostSync"),
            True,
            False,
            {"BeforeHookCreation"},
        ),
        (
            {"argocd.argoproj.io/hook": "SyncFail"},
            ("SyncFail",),
            True,
            False,
            {"BeforeHookCreation"},
        ),
        ({"argocd.argoproj.io/hook": "Skip"}, ("Sync",), False, True, set()),
        (
            {
                "argocd.argoproj.io/hook": "PostSync",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed",
            },
            ("PostSync",),
            True,
            False,
            {"HookSucceeded", "HookFailed"},
        ),
        ({"helm.sh/hook": "pre-install"}, ("PreSync",), True, False, {"BeforeHookCreation"}),
        ({"helm.sh/hook": "pre-upgrade"}, ("PreSync",), True, False, {"BeforeHookCreation"}),
        (
            {"helm.sh/hook": "post-install", "helm.sh/hook-delete-policy": "hook-succeeded"},
            ("PostSync",),
            True,
            False,
            {"HookSucceeded"},
        ),
        ({"helm.sh/hook": "post-upgrade"}, ("PostSync",), True, False, {"BeforeHookCreation"}),
        ({"helm.sh/hook": "test"}, ("Sync",), False, True, {"BeforeHookCreation"}),
        # An Argo CD hook annotation makes Helm's ignored, policies included.
        (
            {
                "argocd.argoproj.io/hook": "Sync",
                "helm.sh/hook": "pre-install",
                "helm.sh/hook-delete-policy": "hook-failed",
            },
            ("Sync",),
            True,
            False,
            {"BeforeHookCreation"},
        ),
    ],
)
def test_hook_annotations_are_read_as_argo_cd_reads_them(
    annotations: dict[str, str],
    phases: tuple[str, ...],
    hook: bool,
    skip: bool,
    policies: set[str],
) -> None:
    spec = waves.hook_spec(annotated("Job", "j", annotations))
    assert tuple(str(p) for p in spec.phases) == phases
    assert (spec.hook, spec.skip) == (hook, skip)
    assert {str(p) for p in spec.delete_policies} == policies


@pytest.mark.parametrize(
    ("annotations", "wave"),
    [
        ({}, 0),
        ({"argocd.argoproj.io/sync-wave": "5"}, 5),
        ({"argocd.argoproj.io/sync-wave": " -3 "}, -3),
        ({"helm.sh/hook-weight": "7"}, 7),
        ({"argocd.argoproj.io/sync-wave": "1", "helm.sh/hook-weight": "7"}, 1),
    ],
)
def test_the_wave_comes_from_sync_wave_else_the_helm_hook_weight(
    annotations: dict[str, str], wave: int
) -> None:
    assert waves.wave_of(annotated("ConfigMap", "c", annotations)) == wave


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        (
            {"argocd.argoproj.io/sync-wave": "soon"},
            "ConfigMap/c: annotation argocd.argoproj.io/sync-wave",
        ),
        ({"helm.sh/hook-weight": "1.5"}, "annotation helm.sh/hook-weight"),
        ({"argocd.argoproj.io/hook": "PreSynk"}, "unknown hook type 'PreSynk'"),
        (
            {
                "argocd.argoproj.io/hook": "PreSync",
                "argocd.argoproj.io/hook-delete-policy": "Never",
            },
            "annotation argocd.argoproj.io/hook-delete-policy",
        ),
        (
            {"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "x"},
            "helm.sh/hook-delete-policy",
        ),
    ],
)
def test_bad_hook_annotations_are_errors_naming_the_object_and_annotation(
    annotations: dict[str, str], fragment: str
) -> None:
    with pytest.raises(waves.InvalidHook, match=fragment.replace(".", r"\.")):
        waves.plan([annotated("ConfigMap", "c", annotations)])


def test_within_a_wave_objects_apply_in_kind_order_then_by_name() -> None:
    plan = waves.plan(
        [
            obj("Deployment", "b", "apps/v1"),
            obj("Deployment", "a", "apps/v1"),
            obj("Widget", "w", "example.com/v1"),
            obj("Service", "s"),
            obj("ConfigMap", "c"),
            obj("ServiceAccount", "sa"),
        ]
    )
    assert plan.order() == [
        "ServiceAccount/sa",
        "ConfigMap/c",
        "Service/s",
        "Deployment/a",
        "Deployment/b",
        "Widget/w",
    ]


def test_a_namespace_in_a_later_wave_moves_before_its_first_dependent() -> None:
    ns = annotated("Namespace", "team", {"argocd.argoproj.io/sync-wave": "5"})
    cm = annotated("ConfigMap", "c", {"argocd.argoproj.io/sync-wave": "-1"}, namespace="team")
    other = annotated("ConfigMap", "d", {"argocd.argoproj.io/sync-wave": "-2"}, namespace="x")
    plan = waves.plan([cm, ns, other])
    assert plan.order() == ["ConfigMap/d", "Namespace/team", "ConfigMap/c"]
    assert plan.steps[1].wave == -1


def test_a_crd_moves_before_the_first_custom_resource_of_its_kind() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "annotations": {waves.WAVE: "3"}},
        "spec": {"group": "example.com", "names": {"kind": "Widget"}},
    }
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "annotations": {waves.HOOK: "PreSync"}},
    }
    plan = waves.plan([widget, crd])
    assert plan.order() == ["CustomResourceDefinition/widgets.example.com", "Widget/w"]
    assert plan.steps[0].phase is waves.SyncPhase.PRE_SYNC


def test_syncfail_hooks_are_kept_apart_and_skipped_objects_are_listed() -> None:
    plan = waves.plan(
        [
            annotated("Job", "cleanup", {"argocd.argoproj.io/hook": "SyncFail"}),
            annotated("ConfigMap", "never", {"argocd.argoproj.io/hook": "Skip"}),
            obj("ConfigMap", "c"),
        ]
    )
    assert plan.order() == ["ConfigMap/c"]
    assert [t.display for s in plan.on_fail for t in s.tasks] == ["Job/cleanup"]
    assert [o["metadata"]["name"] for o in plan.skipped] == ["never"]


@pytest.mark.parametrize(
    ("hooks", "healthy", "done", "failed"),
    [
        ({"a": waves.HookOutcome.SUCCEEDED}, {"d": True}, True, False),
        ({"a": None}, {"d": True}, False, False),
        ({"a": waves.HookOutcome.SUCCEEDED}, {"d": False}, False, False),
        ({"a": waves.HookOutcome.FAILED}, {}, False, True),
        ({}, {}, True, False),
    ],
)
def test_a_step_is_done_when_hooks_succeeded_and_resources_are_healthy(
    hooks: dict[str, waves.HookOutcome | None], healthy: dict[str, bool], done: bool, failed: bool
) -> None:
    assert waves.step_done(hooks=hooks, healthy=healthy) is done
    assert waves.step_failed(hooks=hooks) is failed
