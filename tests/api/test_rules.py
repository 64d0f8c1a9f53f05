"""The rules behind webhooks and RBAC, as tables (no server needed)."""

from __future__ import annotations

import pytest

from syrup import errors
from syrup.api import rbac, webhooks


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://github.com/Org/Repo.git", "git@github.com:org/repo.git"),
        ("https://github.com/org/repo", "ssh://git@github.com:22/org/repo.git"),
        (
            "https://gitlab.example.com/group/sub/app.git",
            "https://gitlab.example.com/group/sub/app/",
        ),
    ],
)
def test_repository_urls_match_across_schemes_users_ports_case_and_dot_git(a: str, b: str) -> None:
    assert webhooks.normalize(a) == webhooks.normalize(b)


@pytest.mark.parametrize(
    ("target", "ref", "default", "matches"),
    [
        ("main", "refs/heads/main", "main", True),
        ("refs/heads/main", "refs/heads/main", "main", True),
        ("main", "refs/heads/dev", "main", False),
        ("HEAD", "refs/heads/main", "main", True),
        ("", "refs/heads/dev", "main", False),
        ("v1.2", "refs/tags/v1.2", "main", True),
        ("v1.2", "refs/tags/v1.3", "main", False),
    ],
)
def test_target_revisions_match_pushes_as_argo_cd_does(
    target: str, ref: str, default: str, matches: bool
) -> None:
    push = webhooks.Push(webhooks.Provider.GITHUB, frozenset(), ref, default)
    assert webhooks.revision_matches(target, push) is matches


@pytest.mark.parametrize(
    ("policy", "subject", "request_", "allowed"),
    [
        ("", "admin", ("applications", "delete", "default/a"), True),
        ("", "alice", ("applications", "get", "default/a"), True),
        ("", "alice", ("applications", "sync", "default/a"), False),
        (
            "p, role:d, applications, sync, default/*, allow\ng, alice, role:d",
            "alice",
            ("applications", "sync", "default/a"),
            True,
        ),
        (
            "p, role:d, applications, sync, default/*, allow\ng, alice, role:d",
            "alice",
            ("applications", "sync", "team/a"),
            False,
        ),
        (
            "p, role:readonly, applications, get, default/secret, deny",
            "alice",
            ("applications", "get", "default/secret"),
            False,
        ),
        ("policy.default, role:none", "bob", ("applications", "get", "default/a"), False),
        ("p, alice, *, *, *, allow", "alice", ("clusters", "delete", "https://x"), True),
    ],
)
def test_policy_lines_decide_like_argo_cd_csv(
    policy: str, subject: str, request_: tuple[str, str, str], allowed: bool
) -> None:
    p = rbac.Policy()
    p.replace(policy)
    assert (p.check(subject, *request_) is None) is allowed


def test_a_denial_names_the_missing_permission() -> None:
    denied = rbac.Policy().check("bob", "projects", "delete", "team")
    assert str(denied) == "permission denied: projects, delete, team (subject bob)"


def test_replacing_a_policy_with_a_bad_line_keeps_the_old_one() -> None:
    p = rbac.Policy()
    p.replace("g, alice, role:admin")
    with pytest.raises(errors.InvalidInput) as exc:
        p.replace("g, alice")
    assert exc.value.where == "policy.csv:1"
    assert p.check("alice", "applications", "delete", "default/a") is None
