"""Apply, diff, patch and validation through the real kubectl against the local cluster.

These are the acceptance checks of server-side apply, strategic merge patch, defaults and
validation: the waffle-world manifests (add-ons under ``misc`` and every application folder)
apply and then diff clean in both apply modes, a change shows up as exactly that change,
conflicts name the field and manager, and the everyday kubectl verbs work on a Deployment.

Istio's kinds are left out (their CRDs are not in the corpus), and so are the
``autoscaling/v2beta2`` HorizontalPodAutoscalers: Kubernetes 1.26 removed that version, so a
cluster of the version we serve (1.37) rejects them too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests import crds
from tests.conftest import CORPUS, KUBECTL, Cluster

WAFFLE = CORPUS / "waffle-world"
_LEFT_OUT_KINDS = {"VirtualService", "EnvoyFilter", "Gateway", "Telemetry"}
_LEFT_OUT_VERSIONS = {"autoscaling/v2beta2"}

pytestmark = pytest.mark.timeout(900)


def _kept(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and bool(doc.get("kind"))
        and doc["kind"] not in _LEFT_OUT_KINDS
        and doc.get("apiVersion") not in _LEFT_OUT_VERSIONS
    )


def corpus_manifests(out: Path) -> Path:
    """Write the applicable corpus documents to ``out``: CRD files first, namespaces first of all.

    Kustomize folders (a ``kustomization.yaml``) are rendered with ``kubectl kustomize``, as
    ``kubectl apply -k`` would.
    """
    out.mkdir(parents=True, exist_ok=True)
    sources: list[tuple[str, str]] = [
        (f.stem, f.read_text()) for f in sorted(WAFFLE.glob("misc/**/*.yaml"))
    ]
    for folder in sorted(WAFFLE.glob("apps/*/*/")):
        if (folder / "kustomization.yaml").exists():
            rendered = subprocess.run(
                [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=True
            ).stdout
            sources.append((folder.name, rendered))
        else:
            sources.extend((f.stem, f.read_text()) for f in sorted(folder.glob("*.yaml")))

    namespaces: set[str] = set()
    for n, (stem, text) in enumerate(sources):
        docs = [d for d in yaml.safe_load_all(text) if _kept(d)]
        if not docs:
            continue
        namespaces.update(
            d["metadata"]["namespace"] for d in docs if d["metadata"].get("namespace")
        )
        has_crd = any(d["kind"] == "CustomResourceDefinition" for d in docs)
        name = f"{'1' if has_crd else '2'}{n:03d}-{stem}.yaml"
        (out / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    ns_docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in sorted(namespaces)
    ]
    (out / "0000-namespaces.yaml").write_text(yaml.safe_dump_all(ns_docs))
    return out


def apply_twice(cluster: Cluster, *args: str) -> None:
    """Apply a folder; a second pass picks up custom resources whose CRD the first created.

    A real cluster behaves the same: kubectl resolves every kind of a file before it sends the
    file's CRDs.
    """
    cluster.kubectl("apply", *args, check=False, timeout=300)
    cluster.kubectl("apply", *args, timeout=300)


def diff(
    cluster: Cluster, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("diff", *args, input=input, check=False, timeout=300)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param([], id="client-side apply"),
        pytest.param(["--server-side"], id="server-side apply"),
    ],
)
def test_the_waffle_world_manifests_apply_then_diff_clean_and_a_change_shows_only_itself(
    cluster_factory: Any, tmp_path: Path, mode: list[str]
) -> None:
    cluster: Cluster = cluster_factory()
    folder = corpus_manifests(tmp_path / "manifests")
    apply_twice(cluster, *mode, "-f", str(folder))

    clean = diff(cluster, *mode, "-f", str(folder))
    assert clean.returncode == 0, clean.stdout[-4000:] + clean.stderr[-2000:]

    # Change one image in one file: the diff names that object and that line only.
    target = next(p for p in sorted(folder.glob("2*-snutt-core.yaml")))
    docs = list(yaml.safe_load_all(target.read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"] = old_image = str(container["image"])
    container["image"] = "registry.example/changed:1"
    target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    changed = diff(cluster, *mode, "-f", str(folder))
    assert changed.returncode == 1, changed.stderr
    removed = [
        line
        for line in changed.stdout.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    added = [
        line
        for line in changed.stdout.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert changed.stdout.count("diff -u") == 1
    assert any("registry.example/changed:1" in line for line in added)
    assert any(old_image in line for line in removed)
    # generation moves with the spec, as on a real cluster; a dry run keeps resourceVersion.
    allowed = ("image", "generation")
    noise = [line for line in removed + added if not any(a in line for a in allowed)]
    assert noise == [], changed.stdout


def deployment_yaml(name: str, *, env: dict[str, str], replicas: int | None = None) -> str:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                    },
                    {"name": "side", "image": "busybox:1.36"},
                ]
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return yaml.safe_dump(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}
    )


def get(cluster: Cluster, ns: str, what: str) -> Any:
    return cluster.kubectl_json("-n", ns, "get", what, "--show-managed-fields")


def env_of(obj: dict[str, Any], container: str) -> dict[str, str]:
    for c in obj["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            return {e["name"]: e.get("value", "") for e in c.get("env", [])}
    raise AssertionError(f"no container {container}")


def test_a_server_side_conflict_is_a_409_naming_field_and_manager_until_forced(
    cluster: Cluster, ns: str
) -> None:
    cluster.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "-f",
        "-",
        input=deployment_yaml("web", env={}, replicas=2),
    )
    cluster.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager",
        "ops",
        "-f",
        "-",
        input=deployment_yaml("web", env={}, replicas=2),
    )

    # A different value from another manager: 409 with the field and the owner named.
    proc = cluster.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager",
        "ops",
        "-f",
        "-",
        input=deployment_yaml("web", env={}, replicas=5),
        check=False,
    )
    assert proc.returncode != 0
    assert 'conflict with "kubectl"' in proc.stderr
    assert ".spec.replicas" in proc.stderr
    assert get(cluster, ns, "deploy/web")["spec"]["replicas"] == 2

    cluster.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--field-manager",
        "ops",
        "--force-conflicts",
        "-f",
        "-",
        input=deployment_yaml("web", env={}, replicas=5),
    )
    live = get(cluster, ns, "deploy/web")
    assert live["spec"]["replicas"] == 5
    owners = {
        e["manager"]
        for e in live["metadata"]["managedFields"]
        if "f:replicas" in e["fieldsV1"].get("f:spec", {})
    }
    assert owners == {"ops"}


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param([], id="client-side apply"),
        pytest.param(["--server-side"], id="server-side apply"),
    ],
)
def test_removing_an_env_var_from_the_manifest_removes_it_but_keeps_another_managers_field(
    cluster: Cluster, ns: str, mode: list[str]
) -> None:
    cluster.kubectl(
        "-n", ns, "apply", *mode, "-f", "-", input=deployment_yaml("web", env={"A": "1", "B": "2"})
    )
    cluster.kubectl("-n", ns, "set", "env", "deploy/web", "-c", "side", "FROM_OTHER=1")
    cluster.kubectl(
        "-n", ns, "apply", *mode, "-f", "-", input=deployment_yaml("web", env={"A": "1"})
    )
    live = get(cluster, ns, "deploy/web")
    assert env_of(live, "app") == {"A": "1"}
    assert env_of(live, "side") == {"FROM_OTHER": "1"}
    proc = diff(cluster, "-n", ns, *mode, "-f", "-", input=deployment_yaml("web", env={"A": "1"}))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_explain_edit_scale_set_image_and_rollout_restart_work_on_a_deployment(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    explained = cluster.kubectl("explain", "deployment.spec")
    assert "replicas" in explained.stdout and "selector" in explained.stdout
    assert "<LabelSelector>" in explained.stdout

    cluster.kubectl("-n", ns, "apply", "-f", "-", input=deployment_yaml("web", env={"A": "1"}))
    cluster.kubectl("-n", ns, "scale", "deploy/web", "--replicas=3")
    cluster.kubectl("-n", ns, "set", "image", "deploy/web", "app=nginx:1.27")
    cluster.kubectl("-n", ns, "rollout", "restart", "deploy/web")

    # kubectl edit with a scripted editor that changes one env value in place.
    editor = tmp_path / "editor.py"
    editor.write_text(
        textwrap.dedent(
            """
            import sys, pathlib
            p = pathlib.Path(sys.argv[-1])
            p.write_text(p.read_text().replace('value: "1"', 'value: "edited"'))
            """
        )
    )
    env = dict(cluster.env(), KUBE_EDITOR=f"{sys.executable} {editor}")
    edited = subprocess.run(
        [KUBECTL, "-n", ns, "edit", "deploy/web"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert edited.returncode == 0, edited.stderr

    live = get(cluster, ns, "deploy/web")
    assert live["spec"]["replicas"] == 3
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert (
        "kubectl.kubernetes.io/restartedAt" in live["spec"]["template"]["metadata"]["annotations"]
    )
    assert env_of(live, "app") == {"A": "edited"}
    managers = {e["manager"] for e in live["metadata"]["managedFields"]}
    assert {"kubectl-client-side-apply", "kubectl-edit"} <= managers
    shown = cluster.kubectl("-n", ns, "get", "deploy/web", "-o", "yaml", "--show-managed-fields")
    assert "fieldsType: FieldsV1" in shown.stdout


@pytest.mark.parametrize(
    "mode",
    [pytest.param([], id="client-side"), pytest.param(["--server-side"], id="server-side")],
)
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-f", str(CORPUS / "argocd-example-apps" / "guestbook")], id="guestbook"),
        pytest.param(
            ["-k", str(CORPUS / "argocd-example-apps" / "kustomize-guestbook")],
            id="kustomize-guestbook",
        ),
    ],
)
def test_the_argocd_guestbook_examples_apply_and_diff_clean(
    cluster: Cluster, ns: str, args: list[str], mode: list[str]
) -> None:
    cluster.kubectl("-n", ns, "apply", *mode, *args)
    proc = diff(cluster, "-n", ns, *mode, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- invalid input over HTTP ------------------------------------------------------------------


def _deployment(name: str = "bad") -> dict[str, Any]:
    return yaml.safe_load(deployment_yaml(name, env={}))


def _without_selector(d: dict[str, Any]) -> None:
    d["spec"].pop("selector")


def _replicas_string(d: dict[str, Any]) -> None:
    d["spec"]["replicas"] = "three"


def _unknown_field(d: dict[str, Any]) -> None:
    d["spec"]["foo"] = 1


def _uppercase_name(d: dict[str, Any]) -> None:
    d["metadata"]["name"] = "Bad"


@pytest.mark.parametrize(
    ("change", "code", "reason", "field"),
    [
        pytest.param(
            _without_selector, 422, "Invalid", "spec.selector", id="a Deployment without selector"
        ),
        pytest.param(_replicas_string, 422, "Invalid", "spec.replicas", id="replicas as a string"),
        pytest.param(
            _unknown_field, 400, "BadRequest", "spec.foo", id="an unknown field under Strict"
        ),
        pytest.param(
            _uppercase_name, 422, "Invalid", "metadata.name", id="a name with uppercase letters"
        ),
    ],
)
@pytest.mark.parametrize("how", ["create", "apply"])
def test_invalid_objects_are_refused_with_the_reason_and_field_and_nothing_is_stored(
    cluster: Cluster, ns: str, change: Any, code: int, reason: str, field: str, how: str
) -> None:
    body = _deployment()
    change(body)
    name = body["metadata"]["name"]
    with cluster.client() as c:
        if how == "create":
            r = c.post(
                f"/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Strict", json=body
            )
        else:
            r = c.patch(
                f"/apis/apps/v1/namespaces/{ns}/deployments/{name}?fieldManager=test&fieldValidation=Strict",
                content=yaml.safe_dump(body),
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        status = r.json()
        assert r.status_code == code, status
        assert status["reason"] == reason
        fields = [c["field"] for c in status.get("details", {}).get("causes", [])]
        assert field in fields or field in status["message"]
        assert c.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}").status_code == 404


def test_an_unknown_field_under_warn_is_stored_without_it_and_answered_with_a_warning_header(
    cluster: Cluster, ns: str
) -> None:
    body = _deployment("warned")
    body["spec"]["foo"] = 1
    with cluster.client() as c:
        r = c.post(f"/apis/apps/v1/namespaces/{ns}/deployments?fieldValidation=Warn", json=body)
        assert r.status_code == 201, r.text
        assert 'unknown field "spec.foo"' in r.headers.get("warning", "")
        assert "foo" not in r.json()["spec"]


def test_a_non_yaml_apply_body_is_a_400_and_nothing_is_stored(cluster: Cluster, ns: str) -> None:
    with cluster.client() as c:
        r = c.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/junk?fieldManager=test",
            content=b"{not: [yaml",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["reason"] == "BadRequest"
        assert c.get(f"/apis/apps/v1/namespaces/{ns}/deployments/junk").status_code == 404


def test_an_update_that_changes_an_immutable_field_is_422_and_changes_nothing(
    cluster: Cluster, ns: str
) -> None:
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=deployment_yaml("imm", env={}))
    with cluster.client() as c:
        patch = {
            "spec": {
                "selector": {"matchLabels": {"app": "other"}},
                "template": {"metadata": {"labels": {"app": "other"}}},
            }
        }
        r = c.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/imm",
            json=patch,
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert r.status_code == 422, r.text
        assert "spec.selector" in [c["field"] for c in r.json()["details"]["causes"]]
    assert get(cluster, ns, "deploy/imm")["spec"]["selector"] == {"matchLabels": {"app": "imm"}}


# -- custom resources ------------------------------------------------------------------------


def crd(group: str) -> dict[str, Any]:
    return crds.crd(
        group,
        "Widget",
        schema={
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "color": {
                            "type": "string",
                            "enum": ["red", "blue"],
                            "default": "red",
                        },
                        "parts": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["id"],
                            "items": {
                                "type": "object",
                                "required": ["id"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "n": {"type": "integer"},
                                },
                            },
                        },
                    },
                },
                "status": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
        status=True,
        short_names=("wd",),
    )


def _wait_served(c: httpx.Client, path: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if c.get(path).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} was not served")


def test_custom_resources_are_validated_pruned_defaulted_and_refuse_strategic_merge(
    cluster: Cluster, ns: str
) -> None:
    group = f"{ns}.example.com"
    with cluster.client() as c:
        r = c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd(group))
        assert r.status_code == 201, r.text
        base = f"/apis/{group}/v1/namespaces/{ns}/widgets"
        _wait_served(c, base)

        bad = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 0, "color": "green"},
        }
        r = c.post(base, json=bad)
        assert r.status_code == 422, r.text
        fields = sorted(x["field"] for x in r.json()["details"]["causes"])
        assert fields == ["spec.color", "spec.size"]
        assert c.get(f"{base}/w").status_code == 404

        good = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 2, "junk": 1},
        }
        r = c.post(f"{base}?fieldValidation=Ignore", json=good)
        assert r.status_code == 201, r.text
        assert r.json()["spec"] == {"size": 2, "color": "red"}

        r = c.patch(
            f"{base}/w",
            json={"spec": {"size": 3}},
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert r.status_code == 415

    # Server-side apply merges the list-map by its CRD key and kubectl diff is clean after it.
    manifest = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 2, "parts": [{"id": "a", "n": 1}]},
    }
    text = json.dumps(manifest)
    cluster.kubectl("-n", ns, "apply", "--server-side", "-f", "-", input=text)
    proc = diff(cluster, "-n", ns, "--server-side", "-f", "-", input=text)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = get(cluster, ns, f"widgets.{group}/w")
    assert live["spec"]["parts"] == [{"id": "a", "n": 1}]
    keys = [
        list(e["fieldsV1"]["f:spec"]["f:parts"])
        for e in live["metadata"]["managedFields"]
        if e["operation"] == "Apply"
    ]
    assert keys == [['k:{"id":"a"}']]
