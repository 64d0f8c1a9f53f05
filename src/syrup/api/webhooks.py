"""Git push webhooks (``POST /api/webhook``) in GitHub, GitLab and Gitea formats.

Follows Argo CD's webhook behaviour: the provider is told apart by its event header, the
payload is verified with the shared secret the way each provider signs it, and a push
refreshes at once every Application whose repo URL and target revision match the push.

* GitHub: ``X-GitHub-Event: push``, ``X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>``;
* Gitea (and Forgejo): ``X-Gitea-Event: push``, ``X-Gitea-Signature: <HMAC-SHA256 hex>``;
* GitLab: ``X-Gitlab-Event: Push Hook``, ``X-Gitlab-Token: <secret>`` (GitLab sends the secret
  itself rather than an HMAC; it is compared in constant time).

A target revision matches a push to ``refs/heads/B`` or ``refs/tags/T`` when it is ``B``/``T``
or the full ref; ``HEAD`` and empty match a push to the repository's default branch.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from syrup import errors
from syrup.gitops import git

MAX_BODY = 25 << 20


class Provider(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class BadSignature(errors.GiveUp):
    """The payload's signature or token does not match the configured secret."""


@dataclass(frozen=True)
class Push:
    """What a push event says: where it went, which ref, and the default branch."""

    provider: Provider
    urls: frozenset[str]  # normalized
    ref: str
    default_branch: str


_URL_RE = re.compile(r"^(?:[\w+.-]+://)?(?:[^@/]+@)?([^/:]+)(?::\d+)?[:/](.+)$")


def normalize(url: str) -> str:
    """Compare repository URLs as Argo CD does: scheme, user, port, case and ``.git`` aside."""
    text = url.strip().rstrip("/").removesuffix(".git")
    match = _URL_RE.match(text)
    if match is None or text.startswith("file:") or text.startswith("/"):
        return git.normalize_url(text)
    return f"{match.group(1).lower()}/{match.group(2).lower()}"


def provider_of(headers: Mapping[str, str]) -> tuple[Provider, str] | None:
    """The provider and event name, from the event header (None when none is present)."""
    for header, provider in (
        ("x-gitea-event", Provider.GITEA),
        ("x-github-event", Provider.GITHUB),
        ("x-gitlab-event", Provider.GITLAB),
    ):
        if header in headers:
            return provider, headers[header]
    return None


def verify(provider: Provider, headers: Mapping[str, str], body: bytes, *, secret: str) -> None:
    """Raise :class:`BadSignature` unless the request carries the right signature or token."""
    if provider is Provider.GITLAB:
        token = headers.get("x-gitlab-token", "")
        if not token or not hmac.compare_digest(token.encode(), secret.encode()):
            raise BadSignature("X-Gitlab-Token does not match the webhook secret")
        return
    header = "x-hub-signature-256" if provider is Provider.GITHUB else "x-gitea-signature"
    given = headers.get(header, "")
    if provider is Provider.GITHUB:
        if not given.startswith("sha256="):
            raise BadSignature(f"{header}: missing or not 'sha256=<hex>'")
        given = given.removeprefix("sha256=")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not given or not hmac.compare_digest(given.lower(), expected):
        raise BadSignature(f"{header}: signature does not match the payload")


def parse_push(provider: Provider, body: bytes) -> Push:
    """Read a push payload; :class:`errors.InvalidInput` names the missing field."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise errors.InvalidInput(f"not JSON: {exc}", where="body") from exc
    if not isinstance(payload, dict):
        raise errors.InvalidInput("expected a JSON object", where="body")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        raise errors.InvalidInput("missing", where="ref")
    repo_key = "project" if provider is Provider.GITLAB else "repository"
    repo = payload.get(repo_key)
    if not isinstance(repo, dict):
        raise errors.InvalidInput("missing", where=repo_key)
    fields = (
        ("web_url", "git_http_url", "git_ssh_url", "http_url", "ssh_url", "homepage")
        if provider is Provider.GITLAB
        else ("html_url", "clone_url", "ssh_url", "git_url", "url")
    )
    urls = frozenset(
        normalize(str(repo[f])) for f in fields if isinstance(repo.get(f), str) and repo[f]
    )
    if not urls:
        raise errors.InvalidInput("no repository URL", where=repo_key)
    return Push(provider, urls, ref, str(repo.get("default_branch") or ""))


def revision_matches(target_revision: str, push: Push) -> bool:
    short = push.ref.split("/", 2)[-1] if push.ref.startswith("refs/") else push.ref
    if target_revision in ("", "HEAD"):
        return push.ref == f"refs/heads/{push.default_branch}" if push.default_branch else True
    return target_revision in (short, push.ref)


def matching_apps(push: Push, apps: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(namespace, name) of each Application this push concerns."""
    out = []
    for app in apps:
        spec = app.get("spec") or {}
        many = spec.get("sources")
        listed = many if isinstance(many, list) and many else [spec.get("source") or {}]
        # Any of the app's sources (a multi-source app's values repository too).
        if not any(
            isinstance(source, Mapping)
            and isinstance(source.get("repoURL"), str)
            and normalize(source["repoURL"]) in push.urls
            and revision_matches(str(source.get("targetRevision") or ""), push)
            for source in listed
        ):
            continue
        meta = app.get("metadata") or {}
        out.append((str(meta.get("namespace")), str(meta.get("name"))))
    return out
