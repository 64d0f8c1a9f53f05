"""Git push webhooks in GitHub, GitLab and Gitea formats, signed and unsigned."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import Up, application, make_repo, manifests, unique, wait_for


def _payload(provider: str, url: str, ref: str) -> dict[str, Any]:
    if provider == "gitlab":
        return {
            "object_kind": "push",
            "ref": ref,
            "project": {"git_http_url": url, "default_branch": "main"},
        }
    return {"ref": ref, "repository": {"clone_url": url, "html_url": url, "default_branch": "main"}}


def _headers(provider: str, body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "github":
        return {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}
    if provider == "gitea":
        return {"X-Gitea-Event": "push", "X-Gitea-Signature": digest}
    return {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}


def _secret(up: Up) -> str:
    return (up.data_dir / "api" / "webhook-secret").read_text().strip()


@pytest.fixture(scope="module")
def pushed_app(up: Up, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    repo = make_repo(tmp_path_factory.mktemp("hookrepo"))
    name, dest = unique("hook"), unique("ns")
    with up.client() as c:
        assert (
            c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest)).status_code
            == 201
        )
        wait_for(
            "first revision",
            lambda: (
                (c.get(f"/api/v1/applications/{name}").json().get("status") or {})
                .get("sync", {})
                .get("revision")
            ),
            timeout=120,
        )
    return {"name": name, "repo": repo, "dest": dest}


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_signed_push_refreshes_the_matching_app_at_once(
    up: Up, pushed_app: dict[str, Any], provider: str
) -> None:
    repo = pushed_app["repo"]
    greeting = unique(provider)
    repo.write("app/manifests.yaml", manifests(replicas=1, greeting=greeting))
    sha = repo.push(f"{provider} change")
    body = json.dumps(_payload(provider, repo.url, "refs/heads/main")).encode()
    r = httpx.post(
        f"{up.url}/api/webhook", content=body, headers=_headers(provider, body, _secret(up))
    )
    assert r.status_code == 200, r.text
    assert r.json()["refreshed"] == [f"argocd/{pushed_app['name']}"]
    with up.client() as c:
        # The app refreshes every 600 s in these tests: only the webhook can explain this.
        wait_for(
            "the pushed revision",
            lambda: (
                (c.get(f"/api/v1/applications/{pushed_app['name']}").json().get("status") or {})
                .get("sync", {})
                .get("revision")
                == sha
            ),
            timeout=60,
        )


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_push_with_a_wrong_signature_is_403_and_refreshes_nothing(
    up: Up, pushed_app: dict[str, Any], provider: str
) -> None:
    body = json.dumps(_payload(provider, pushed_app["repo"].url, "refs/heads/main")).encode()
    r = httpx.post(
        f"{up.url}/api/webhook", content=body, headers=_headers(provider, body, "wrong-secret")
    )
    assert r.status_code == 403
    assert "refreshed" not in r.json()


def test_a_signature_over_a_different_body_is_rejected(up: Up, pushed_app: dict[str, Any]) -> None:
    body = json.dumps(_payload("github", pushed_app["repo"].url, "refs/heads/main")).encode()
    headers = _headers("github", b"{}", _secret(up))
    assert httpx.post(f"{up.url}/api/webhook", content=body, headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("ref", "url_suffix", "expected"),
    [
        ("refs/heads/other", "", []),
        ("refs/heads/main", "-elsewhere", []),
        ("refs/tags/v1", "", []),
    ],
)
def test_a_push_to_another_branch_or_repo_refreshes_nothing(
    up: Up, pushed_app: dict[str, Any], ref: str, url_suffix: str, expected: list[str]
) -> None:
    body = json.dumps(_payload("github", pushed_app["repo"].url + url_suffix, ref)).encode()
    r = httpx.post(
        f"{up.url}/api/webhook", content=body, headers=_headers("github", body, _secret(up))
    )
    assert r.status_code == 200
    assert r.json()["refreshed"] == expected


@pytest.mark.parametrize(
    ("headers", "body", "status", "field"),
    [
        ({}, b"{}", 400, "headers"),
        ({"X-GitHub-Event": "push"}, b"not json", 400, "body"),
        ({"X-GitHub-Event": "push"}, b'{"repository": {"clone_url": "x"}}', 400, "ref"),
        ({"X-GitHub-Event": "push"}, b'{"ref": "refs/heads/main"}', 400, "repository"),
    ],
)
def test_malformed_webhooks_are_4xx_naming_the_problem(
    up: Up, headers: dict[str, str], body: bytes, status: int, field: str
) -> None:
    if "X-GitHub-Event" in headers:
        digest = hmac.new(_secret(up).encode(), body, hashlib.sha256).hexdigest()
        headers = headers | {"X-Hub-Signature-256": f"sha256={digest}"}
    r = httpx.post(f"{up.url}/api/webhook", content=body, headers=headers)
    assert r.status_code == status
    assert r.json()["field"] == field


def test_a_ping_event_is_accepted_and_ignored(up: Up, tmp_path: Path) -> None:
    body = b'{"zen": "hi"}'
    digest = hmac.new(_secret(up).encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={digest}"}
    r = httpx.post(f"{up.url}/api/webhook", content=body, headers=headers)
    assert r.status_code == 200 and r.json() == {"event": "ping", "refreshed": []}
