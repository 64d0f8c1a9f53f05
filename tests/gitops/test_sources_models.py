"""Parsing chart sources, ``spec.sources`` with refs, and manifest-generate-paths."""

from __future__ import annotations

from typing import Any

import pytest

from syrup.gitops import models


def app(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "a", "namespace": "argocd", "annotations": annotations or {}},
        "spec": {"destination": {"server": models.IN_CLUSTER_SERVER, "namespace": "d"}, **spec},
    }


GIT = {"repoURL": "https://git.example.com/values.git", "targetRevision": "main", "ref": "values"}


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("https://charts.example.com/", "https://charts.example.com"),
        ("oci://registry.example.com/charts", "oci://registry.example.com/charts"),
        ("registry-1.docker.io/bitnamicharts", "oci://registry-1.docker.io/bitnamicharts"),
    ],
)
def test_a_chart_source_reads_its_repository_and_a_registry_host_without_scheme_is_oci(
    repo: str, expected: str
) -> None:
    parsed = models.parse_application(
        app({"source": {"repoURL": repo, "chart": "redis", "targetRevision": "17.3.*"}})
    )
    assert (parsed.source.repo_url, parsed.source.chart) == (expected, "redis")
    assert parsed.source.target_revision == "17.3.*" and not parsed.multi_source


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ({"chart": "redis"}, "spec.source.targetRevision"),
        ({"chart": "redis", "targetRevision": "latest"}, "spec.source.targetRevision"),
        ({"chart": "charts/redis", "targetRevision": "1.0.0"}, "spec.source.chart"),
        ({"chart": "redis", "targetRevision": "1", "kustomize": {}}, "spec.source.chart"),
        ({"chart": ["redis"], "targetRevision": "1"}, "spec.source.chart"),
    ],
)
def test_a_wrong_chart_source_is_refused_naming_the_field(
    source: dict[str, Any], where: str
) -> None:
    with pytest.raises(models.InvalidSpec) as info:
        models.parse_application(app({"source": {"repoURL": "https://c.example.com", **source}}))
    assert info.value.where == where


def test_sources_win_over_source_and_every_repository_is_listed() -> None:
    chart = {
        "repoURL": "https://charts.example.com",
        "chart": "demo",
        "targetRevision": ">=1.0 <2",
        "helm": {"valueFiles": ["$values/envs/prod.yaml"]},
    }
    parsed = models.parse_application(
        app({"source": {"repoURL": "https://ignored.example.com"}, "sources": [chart, GIT]})
    )
    assert parsed.multi_source and parsed.source.chart == "demo"
    assert [s.renders for s in parsed.sources] == [True, False]
    assert parsed.repo_urls == ("https://charts.example.com", "https://git.example.com/values.git")


@pytest.mark.parametrize(
    ("sources", "where"),
    [
        (
            [{"repoURL": "https://git.example/r", "helm": {"valueFiles": ["$nope/v.yaml"]}}],
            "spec.sources[0].helm.valueFiles[0]",
        ),
        ([GIT], "spec.sources"),
        ([GIT, GIT, {"repoURL": "https://git.example/r", "path": "p"}], "spec.sources[0].ref"),
        ([{**GIT, "ref": "has/slash"}], "spec.sources[0].ref"),
        ("one", "spec.sources"),
    ],
)
def test_wrong_sources_are_refused_naming_the_entry(sources: Any, where: str) -> None:
    with pytest.raises(models.InvalidSpec) as info:
        models.parse_application(app({"sources": sources}))
    assert info.value.where == where


def test_a_ref_source_with_a_path_renders_too() -> None:
    parsed = models.parse_application(app({"sources": [{**GIT, "path": "manifests"}]}))
    assert parsed.sources[0].renders


def test_manifest_generate_paths_are_split_on_semicolons() -> None:
    parsed = models.parse_application(
        app(
            {"source": {"repoURL": "https://git.example/r", "path": "apps/a"}},
            {models.GENERATE_PATHS_ANNOTATION: ".; /shared/config ;"},
        )
    )
    assert parsed.generate_paths == (".", "/shared/config")
    source = {"repoURL": "https://git.example/r", "path": "apps/a"}
    unset = models.parse_application(app({"source": source}))
    assert unset.generate_paths is None


def test_a_push_to_any_source_of_a_multi_source_app_concerns_it() -> None:
    from syrup.api import webhooks

    values = "https://github.com/acme/values.git"
    multi = app(
        {
            "sources": [
                {"repoURL": "https://charts.example.com", "chart": "demo", "targetRevision": "1"},
                {"repoURL": values, "targetRevision": "main", "ref": "values"},
            ]
        }
    )
    single = app({"source": {"repoURL": "https://github.com/acme/other.git"}})
    single["metadata"]["name"] = "b"
    push = webhooks.Push(
        webhooks.Provider.GITHUB,
        frozenset({webhooks.normalize(values)}),
        "refs/heads/main",
        "main",
    )
    assert webhooks.matching_apps(push, [multi, single]) == [("argocd", "a")]
    elsewhere = webhooks.Push(push.provider, push.urls, "refs/heads/dev", "main")
    assert webhooks.matching_apps(elsewhere, [multi, single]) == []


@pytest.mark.parametrize("url", ["not-a-url", "github.com/acme/apps", "../apps"])
def test_a_git_source_that_is_not_a_url_is_refused_rather_than_read_as_a_local_path(
    url: str,
) -> None:
    with pytest.raises(models.InvalidSpec) as err:
        models.parse_application(app({"source": {"repoURL": url, "path": "."}}))
    assert err.value.where == "spec.source.repoURL"
    assert "is not a repository URL" in str(err.value)


@pytest.mark.parametrize(
    "url", ["https://h/r.git", "file:///srv/r.git", "git@github.com:a/b.git", "/srv/r.git"]
)
def test_urls_git_reads_as_remotes_are_accepted(url: str) -> None:
    parsed = models.parse_application(app({"source": {"repoURL": url, "path": "."}}))
    assert parsed.source.repo_url == url
