"""Diff normalization and masking, Argo CD's sync order, and Application parsing errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from syrup.gitops import diff, models, order
from tests.gitops.conftest import EXAMPLES


def secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, **fields}


def test_server_set_fields_and_status_do_not_count_as_a_difference() -> None:
    desired = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": "1"},
    }
    live = {
        **desired,
        "metadata": {
            "name": "c",
            "uid": "u",
            "resourceVersion": "7",
            "generation": 3,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "managedFields": [{"manager": "syrup"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "status": {"anything": True},
    }
    assert diff.equal(desired, live)
    assert not diff.equal({**desired, "data": {"a": "2"}}, live)


def test_secret_string_data_is_folded_into_data() -> None:
    encoded = base64.b64encode(b"hunter2").decode()
    assert diff.equal(secret(stringData={"pw": "hunter2"}), secret(data={"pw": encoded}))


def test_a_secret_diff_never_shows_values_but_shows_which_key_changed() -> None:
    live = secret(data={"pw": base64.b64encode(b"old-secret").decode(), "same": "eA=="})
    desired = secret(stringData={"pw": "new-secret"}, data={"same": "eA=="})
    text = diff.unified(live, desired, name="secret/s")
    assert "old-secret" not in text and "new-secret" not in text
    assert base64.b64encode(b"new-secret").decode() not in text
    assert "-  pw: ++++++++ (before)" in text
    assert "+  pw: ++++++++ (after)" in text
    assert "same" not in [
        line[1:].split(":")[0].strip()
        for line in text.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_a_diff_shows_exactly_the_changed_field() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"replicas": 5, "x": 1},
    }
    desired = {**live, "spec": {"replicas": 1, "x": 1}}
    changed = [
        line
        for line in diff.unified(live, desired, name="d").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-  replicas: 5", "+  replicas: 1"]


def test_the_sync_waves_example_is_ordered_by_phase_wave_kind_and_name() -> None:
    objs = list(yaml.safe_load_all((EXAMPLES / "sync-waves" / "manifests.yaml").read_text()))
    ordered = [
        (o["kind"], o["metadata"].get("name") or o["metadata"].get("generateName"))
        for o in order.ordered([o for o in objs if o])
    ]
    assert ordered == [
        ("Job", "upgrade-sql-schema"),
        ("Service", "backend"),
        ("ReplicaSet", "backend"),
        ("Job", "maint-page-up"),
        ("Service", "frontend"),
        ("ReplicaSet", "frontend"),
        ("Job", "maint-page-down"),
    ]


def test_namespaces_and_crds_come_before_what_needs_them() -> None:
    def o(kind: str, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}

    objs = [
        o("Widget", "w"),
        o("Deployment", "d"),
        o("CustomResourceDefinition", "c"),
        o("Namespace", "n"),
        o("ConfigMap", "m"),
    ]
    assert [x["kind"] for x in order.ordered(objs)] == [
        "Namespace",
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "Widget",
    ]


@pytest.mark.parametrize(
    ("annotations", "phase", "wave"),
    [
        ({}, order.Phase.SYNC, 0),
        ({"argocd.argoproj.io/hook": "PreSync"}, order.Phase.PRE_SYNC, 0),
        ({"helm.sh/hook": "post-install", "helm.sh/hook-weight": "-2"}, order.Phase.POST_SYNC, -2),
        ({"argocd.argoproj.io/hook": "Sync", "helm.sh/hook": "pre-install"}, order.Phase.SYNC, 0),
        ({"argocd.argoproj.io/sync-wave": "5"}, order.Phase.SYNC, 5),
    ],
)
def test_hook_phase_and_wave_come_from_argo_cd_or_helm_annotations(
    annotations: dict[str, str], phase: order.Phase, wave: int
) -> None:
    obj = {"kind": "Job", "metadata": {"name": "j", "annotations": annotations}}
    assert order.phase(obj) is phase
    assert order.wave(obj) == wave


APP = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Application",
    "metadata": {"name": "a", "namespace": "argocd"},
    "spec": {
        "project": "default",
        "source": {"repoURL": "https://example.com/r.git", "path": "x"},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "n"},
        "syncPolicy": {"automated": {"prune": True}, "syncOptions": ["CreateNamespace=true"]},
    },
}


def test_an_application_parses_into_typed_fields() -> None:
    app = models.parse_application(APP)
    assert app.source.target_revision == "HEAD"
    assert app.destination.in_cluster
    assert app.sync_policy.automated and app.sync_policy.prune and not app.sync_policy.self_heal
    assert app.sync_policy.has("CreateNamespace=true")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("spec", "source", "repoURL"), "", "spec.source.repoURL"),
        (("spec", "source", "helm"), {"valueFiles": "one.yaml"}, "spec.source.helm.valueFiles"),
        (
            ("spec", "source", "helm"),
            {"parameters": [{"value": "1"}]},
            "spec.source.helm.parameters[0].name",
        ),
        (("spec", "syncPolicy", "automated"), {"prune": "yes"}, "spec.syncPolicy.automated.prune"),
        (
            ("spec", "source", "kustomize"),
            {"images": [{"a": 1}]},
            "spec.source.kustomize.images[0]",
        ),
        (("spec", "destination"), ["x"], "spec.destination"),
    ],
)
def test_a_wrong_field_is_an_error_naming_it(path: tuple[str, ...], value: Any, field: str) -> None:
    import copy

    app = copy.deepcopy(APP)
    target = app
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(models.InvalidSpec) as info:
        models.parse_application(app)
    assert str(info.value).startswith(field)
