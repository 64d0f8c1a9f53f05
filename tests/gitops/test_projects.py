"""AppProject rules: one row per rule, each violation naming the rule it broke."""

from __future__ import annotations

from typing import Any

import pytest

from syrup.gitops import projects

PROJECT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AppProject",
    "metadata": {"name": "team", "namespace": "argocd"},
    "spec": {
        "sourceRepos": [
            "https://github.com/acme/*",
            "!https://github.com/acme/secret*",
            "oci://ghcr.io/acme/charts",
            "registry.example/helm/*",
        ],
        "destinations": [
            {"server": "https://kubernetes.default.svc", "namespace": "team-*"},
            {"name": "staging", "namespace": "*"},
            {"server": "*", "namespace": "!kube-system"},
        ],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        "clusterResourceBlacklist": [{"group": "", "kind": "Namespace"}],
        "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}],
    },
}


@pytest.fixture
def project() -> projects.Project:
    return projects.parse(PROJECT)


@pytest.mark.parametrize(
    ("repo", "allowed"),
    [
        ("https://github.com/acme/apps", True),
        ("https://github.com/acme/apps.git", True),
        ("https://github.com/other/apps", False),
        ("https://github.com/acme/secrets", False),
        # A Helm OCI repository matches with or without its oci:// scheme, either way round.
        ("ghcr.io/acme/charts", True),
        ("oci://ghcr.io/acme/charts", True),
        ("oci://registry.example/helm/web", True),
        ("oci://ghcr.io/other/charts", False),
    ],
)
def test_source_repos_are_globs_with_negation(
    project: projects.Project, repo: str, allowed: bool
) -> None:
    violation = project.check_source(repo)
    assert (violation is None) is allowed
    if violation is not None:
        assert violation.rule == "spec.sourceRepos"
        assert repo in violation.message and "'team'" in violation.message


@pytest.mark.parametrize(
    ("server", "name", "namespace", "allowed"),
    [
        ("https://kubernetes.default.svc", "", "team-a", True),
        ("", "in-cluster", "team-b", True),
        ("https://kubernetes.default.svc", "", "other", False),
        ("", "staging", "anything", True),
        ("", "prod", "team-a", False),
        ("https://k8s.example.com", "", "apps", False),
        ("https://kubernetes.default.svc", "", "kube-system", False),
    ],
)
def test_destinations_match_server_or_name_and_namespace_globs(
    project: projects.Project, server: str, name: str, namespace: str, allowed: bool
) -> None:
    violation = project.check_destination(server=server, name=name, namespace=namespace)
    assert (violation is None) is allowed
    if violation is not None:
        assert violation.rule == "spec.destinations"
        assert namespace in violation.message


def test_a_negated_destination_denies_what_another_allows() -> None:
    p = projects.parse(
        {
            "metadata": {"name": "p"},
            "spec": {
                "destinations": [
                    {"server": "*", "namespace": "*"},
                    {"server": "*", "namespace": "!kube-system"},
                ]
            },
        }
    )
    assert p.check_destination(server="https://x", name="", namespace="apps") is None
    denied = p.check_destination(server="https://x", name="", namespace="kube-system")
    assert denied is not None and denied.rule == "spec.destinations"


@pytest.mark.parametrize(
    ("spec", "group", "kind", "namespaced", "rule"),
    [
        # Cluster-scoped kinds need a whitelist entry; an empty whitelist allows none.
        ({}, "rbac.authorization.k8s.io", "ClusterRole", False, "spec.clusterResourceWhitelist"),
        ({"clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}, "", "Namespace", False, None),
        (
            {"clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]},
            "",
            "Namespace",
            False,
            None,
        ),
        (
            {
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                "clusterResourceBlacklist": [
                    {"group": "rbac.authorization.k8s.io", "kind": "Cluster*"}
                ],
            },
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            False,
            "spec.clusterResourceBlacklist",
        ),
        # Namespaced kinds: an empty whitelist allows all.
        ({}, "apps", "Deployment", True, None),
        (
            {"namespaceResourceWhitelist": [{"group": "apps", "kind": "*"}]},
            "",
            "ConfigMap",
            True,
            "spec.namespaceResourceWhitelist",
        ),
        (
            {"namespaceResourceWhitelist": [{"group": "apps", "kind": "*"}]},
            "apps",
            "StatefulSet",
            True,
            None,
        ),
        (
            {"namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}]},
            "",
            "Secret",
            True,
            "spec.namespaceResourceBlacklist",
        ),
    ],
)
def test_resource_lists_allow_and_deny_kinds(
    spec: dict[str, Any], group: str, kind: str, namespaced: bool, rule: str | None
) -> None:
    p = projects.parse({"metadata": {"name": "p"}, "spec": spec})
    violation = p.check_resource(group=group, kind=kind, namespaced=namespaced)
    assert (violation.rule if violation else None) == rule
    if violation is not None:
        assert kind in violation.message


def test_an_app_gets_every_violation_and_a_condition_naming_the_rule(
    project: projects.Project,
) -> None:
    violations = project.check_app(
        repos=["https://github.com/other/x"],
        server="https://kubernetes.default.svc",
        name="",
        namespace="team-a",
        resources=[("", "Namespace", False), ("", "ResourceQuota", True), ("", "ConfigMap", True)],
    )
    assert [v.rule for v in violations] == [
        "spec.sourceRepos",
        "spec.clusterResourceBlacklist",
        "spec.namespaceResourceBlacklist",
    ]
    condition = violations[0].condition()
    assert condition["type"] == "InvalidSpecError"
    assert "spec.sourceRepos" in condition["message"]


def test_the_default_project_allows_everything() -> None:
    assert (
        projects.DEFAULT.check_app(
            repos=["https://any/where"],
            server="https://k",
            name="",
            namespace="x",
            resources=[("rbac.authorization.k8s.io", "ClusterRole", False), ("", "Secret", True)],
        )
        == []
    )


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"sourceRepos": "https://x"}, "spec.sourceRepos: expected a list"),
        ({"sourceRepos": [""]}, "spec.sourceRepos[0]"),
        (
            {"destinations": [{"namespace": "x"}]},
            "spec.destinations[0]: a destination needs a server",
        ),
        ({"destinations": [{"server": 3}]}, "spec.destinations[0].server"),
        ({"clusterResourceWhitelist": [{"group": ""}]}, "spec.clusterResourceWhitelist[0].kind"),
        (
            {"namespaceResourceBlacklist": ["Secret"]},
            "spec.namespaceResourceBlacklist[0]: expected a map",
        ),
    ],
)
def test_bad_projects_are_errors_naming_the_field(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(projects.InvalidProject) as info:
        projects.parse({"metadata": {"name": "p"}, "spec": spec})
    assert where in str(info.value)
