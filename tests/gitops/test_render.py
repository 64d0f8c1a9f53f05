"""Rendering real sources: detection, Helm, Kustomize, directories, errors and the cache."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from syrup.gitops import models, render
from tests.gitops.conftest import EXAMPLES, WAFFLE

CAPS = render.Capabilities(kube_version="v1.30.0", api_versions=("v1", "apps/v1"))


def do_render(
    root: Path,
    path: str,
    *,
    helm: models.HelmSource | None = None,
    kustomize: models.KustomizeSource | None = None,
    directory: models.DirectorySource | None = None,
    caps: render.Capabilities = CAPS,
    app: str = "my-app",
) -> render.Result:
    source = models.Source(
        repo_url="repo", path=path, helm=helm, kustomize=kustomize, directory=directory
    )
    req = render.Request(
        repo_url="repo",
        sha="0" * 40,
        source=source,
        app_name=app,
        namespace="dest",
        capabilities=caps,
    )
    return render.render_now(req, root)


def names(result: render.Result) -> list[tuple[str, str]]:
    return sorted((m["kind"], m["metadata"].get("name") or "") for m in result.manifests)


@pytest.mark.parametrize(
    ("path", "source_type", "objects"),
    [
        ("guestbook", "Directory", [("Deployment", "guestbook-ui"), ("Service", "guestbook-ui")]),
        (
            "helm-guestbook",
            "Helm",
            [("Deployment", "my-app-helm-guestbook"), ("Service", "my-app-helm-guestbook")],
        ),
        (
            "kustomize-guestbook",
            "Kustomize",
            [("Deployment", "kustomize-guestbook-ui"), ("Service", "kustomize-guestbook-ui")],
        ),
        (
            "pre-post-sync",
            "Kustomize",
            [
                ("Deployment", "pre-post-sync-kustomize-guestbook-ui"),
                ("Job", "pre-post-sync-after"),
                ("Job", "pre-post-sync-before"),
                ("Service", "pre-post-sync-kustomize-guestbook-ui"),
            ],
        ),
        ("sync-waves", "Directory", None),
        ("apps", "Helm", None),
    ],
)
def test_each_example_app_renders_with_the_tool_argo_cd_would_pick(
    path: str, source_type: str, objects: list[tuple[str, str]] | None
) -> None:
    result = do_render(EXAMPLES, path)
    assert result.source_type == source_type
    if objects is not None:
        assert names(result) == objects
    assert result.manifests


def test_helm_uses_the_app_name_as_release_and_value_files_from_the_chart() -> None:
    result = do_render(
        EXAMPLES, "helm-guestbook", helm=models.HelmSource(value_files=("values-production.yaml",))
    )
    service = next(m for m in result.manifests if m["kind"] == "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["labels"]["release"] == "my-app"


def test_helm_values_follow_argo_cds_precedence() -> None:
    helm = models.HelmSource(
        release_name="rel",
        value_files=("values-production.yaml",),
        values="replicaCount: 2\nservice:\n  type: NodePort\n",
        values_object={"replicaCount": 3},
        parameters=(models.HelmParameter(name="image.tag", value="v9"),),
    )
    result = do_render(EXAMPLES, "helm-guestbook", helm=helm)
    deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
    service = next(m for m in result.manifests if m["kind"] == "Service")
    assert deployment["metadata"]["name"] == "rel-helm-guestbook"
    assert deployment["spec"]["replicas"] == 3  # valuesObject beats values
    assert service["spec"]["type"] == "NodePort"  # inline values beat value files
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v9")


def _chart(tmp_path: Path, template: str) -> Path:
    chart = tmp_path / "repo" / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("x: 1\n")
    (chart / "templates" / "cm.yaml").write_text(template)
    return chart.parent


def test_helm_capabilities_come_from_the_target_cluster(tmp_path: Path) -> None:
    root = _chart(
        tmp_path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caps\ndata:\n"
        '  kube: "{{ .Capabilities.KubeVersion.Version }}"\n'
        '  istio: "{{ .Capabilities.APIVersions.Has "networking.istio.io/v1alpha3/VirtualService"'
        ' }}"\n',
    )
    caps = render.Capabilities(
        kube_version="v1.29.3", api_versions=("networking.istio.io/v1alpha3/VirtualService",)
    )
    data = do_render(root, "chart", caps=caps).manifests[0]["data"]
    assert data == {"kube": "v1.29.3", "istio": "true"}
    data = do_render(root, "chart").manifests[0]["data"]
    assert data == {"kube": "v1.30.0", "istio": "false"}


def test_a_helm_template_error_names_the_template_and_line(tmp_path: Path) -> None:
    root = _chart(
        tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.x | nope }}\n"
    )
    with pytest.raises(render.RenderError) as info:
        do_render(root, "chart")
    assert "templates/cm.yaml" in str(info.value)
    assert ":4" in str(info.value)


def test_kustomize_overrides_from_the_application_are_applied() -> None:
    spec = models.KustomizeSource(
        images=("gcr.io/google-samples/gb-frontend=example.com/guestbook:v7",),
        name_prefix="pre-",
        name_suffix="-suf",
        common_labels={"team": "web"},
        namespace="elsewhere",
    )
    result = do_render(EXAMPLES, "kustomize-guestbook", kustomize=spec)
    deployment = next(m for m in result.manifests if m["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "pre-kustomize-guestbook-ui-suf"
    assert deployment["metadata"]["namespace"] == "elsewhere"
    assert deployment["metadata"]["labels"]["team"] == "web"
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "example.com/guestbook:v7"


@pytest.mark.parametrize(
    ("expression", "entry"),
    [
        ("nginx:1.2", {"name": "nginx", "newTag": "1.2"}),
        (
            "nginx=reg:5000/nginx:1.2",
            {"name": "nginx", "newName": "reg:5000/nginx", "newTag": "1.2"},
        ),
        ("nginx@sha256:abc", {"name": "nginx", "digest": "sha256:abc"}),
        ("nginx=other", {"name": "nginx", "newName": "other"}),
    ],
)
def test_kustomize_image_overrides_take_the_kustomize_edit_forms(
    expression: str, entry: dict[str, str]
) -> None:
    assert render.kustomize.image_override(expression) == entry


def test_a_broken_kustomization_names_the_app_path(tmp_path: Path) -> None:
    app = tmp_path / "repo" / "k"
    app.mkdir(parents=True)
    (app / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    with pytest.raises(render.RenderError, match=r"^k: kustomize build failed.*missing\.yaml"):
        do_render(tmp_path / "repo", "k")


def _dir_repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_directories_read_multi_documents_json_and_lists(tmp_path: Path) -> None:
    root = _dir_repo(
        tmp_path,
        {
            "app/multi.yaml": CM.format(name="a") + "---\n" + CM.format(name="b") + "---\n",
            "app/one.json": '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}',
            "app/list.yml": "apiVersion: v1\nkind: List\nitems:\n- "
            + CM.format(name="d").replace("\n", "\n  "),
            "app/README.md": "not a manifest",
            "app/.hidden.yaml": CM.format(name="hidden"),
        },
    )
    assert [n for _, n in names(do_render(root, "app"))] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        (None, ["top"]),
        (models.DirectorySource(recurse=True), ["deep", "top", "x"]),
        (models.DirectorySource(recurse=True, include="*.yaml"), ["deep", "top"]),
        (models.DirectorySource(recurse=True, exclude="{sub/*,*.json}"), ["top"]),
    ],
)
def test_directory_recurse_include_and_exclude(
    tmp_path: Path, directory: models.DirectorySource | None, expected: list[str]
) -> None:
    root = _dir_repo(
        tmp_path,
        {
            "app/top.yaml": CM.format(name="top"),
            "app/sub/deep.yaml": CM.format(name="deep"),
            "app/sub/x.json": '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}',
        },
    )
    assert [n for _, n in names(do_render(root, "app", directory=directory))] == expected


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n", "app/bad.yaml:5"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "app/bad.yaml (document 1)"),
        ("- just\n- a list\n", "app/bad.yaml (document 1)"),
    ],
)
def test_bad_manifests_are_errors_naming_the_file_and_line(
    tmp_path: Path, text: str, where: str
) -> None:
    root = _dir_repo(tmp_path, {"app/bad.yaml": text, "app/good.yaml": CM.format(name="ok")})
    with pytest.raises(render.RenderError) as info:
        do_render(root, "app")
    assert str(info.value).startswith(where)


def test_a_missing_app_path_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(render.RenderError, match="nowhere"):
        do_render(tmp_path, "nowhere")


def test_the_waffle_world_app_of_apps_renders_one_application_per_template() -> None:
    result = do_render(WAFFLE, "apps", app="apps")
    templates = list((WAFFLE / "apps" / "templates").glob("*.yaml"))
    assert result.source_type == "Helm"
    assert len(result.manifests) == len(templates)
    assert {m["kind"] for m in result.manifests} == {"Application"}
    repo_urls = {m["spec"]["source"]["repoURL"] for m in result.manifests}
    assert repo_urls == {"https://github.com/wafflestudio/waffle-world.git"}


def test_the_cache_renders_unchanged_inputs_once_and_carries_untouched_apps_forward(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    shutil.copytree(EXAMPLES, root)
    cache = render.RenderCache()
    changed: dict[str, frozenset[str]] = {}

    async def checkout() -> Path:
        return root

    async def changes(old: str) -> frozenset[str]:
        return changed[old]

    def req(app: str, path: str, sha: str) -> render.Request:
        source = models.Source(repo_url="r", path=path)
        return render.Request(
            repo_url="r", sha=sha, source=source, app_name=app, namespace="n", capabilities=CAPS
        )

    async def scenario() -> dict[str, Any]:
        await cache.render(req("gb", "guestbook", "a"), checkout=checkout, changes=changes)
        await cache.render(req("sw", "sync-waves", "a"), checkout=checkout, changes=changes)
        await cache.render(req("gb", "guestbook", "a"), checkout=checkout, changes=changes)
        changed["a"] = frozenset({"guestbook/guestbook-ui-svc.yaml"})
        r = await cache.render(req("sw", "sync-waves", "b"), checkout=checkout, changes=changes)
        await cache.render(req("gb", "guestbook", "b"), checkout=checkout, changes=changes)
        return {"sha": r.sha}

    out = asyncio.run(scenario())
    assert out["sha"] == "b"
    assert cache.renders_by_app == {"gb": 2, "sw": 1}


def test_an_app_of_apps_chart_does_not_depend_on_the_app_folders_beside_its_templates() -> None:
    result = do_render(WAFFLE, "apps", app="apps")
    changed = frozenset({"apps/snutt-prod/snutt-ev/snutt-ev.yaml"})
    assert not render.touches(changed, result.watched)
    assert render.touches(frozenset({"apps/templates/snutt-ev.yaml"}), result.watched)
    assert render.touches(frozenset({"apps/values.yaml"}), result.watched)
