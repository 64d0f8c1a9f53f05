"""A small client of the Registry HTTP API v2 (the OCI distribution spec): list tags and
resolve a tag to its digest.

Authentication follows the registry token protocol Docker Hub, GHCR and most registries use:
a request answered ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
is retried with a token fetched from ``realm`` (with basic credentials when configured);
``WWW-Authenticate: Basic`` (ECR-style, or a plain distribution registry) is answered with the
basic credentials directly. Tag lists follow ``Link: <...>; rel="next"`` pagination.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from syrup.errors import NotFound, Unavailable

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(Unavailable):
    """The registry did not answer as the API says it should."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class RegistryClient:
    """One registry host; reuse it for several repositories (tokens are cached per scope)."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials
        self._client = httpx.Client(timeout=timeout, follow_redirects=True)
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def list_tags(self, repository: str) -> list[str]:
        """All tags of ``repository`` (a path such as ``library/nginx``)."""
        tags: list[str] = []
        url: str | None = f"{self.base}/v2/{repository}/tags/list?n=1000"
        while url is not None:
            response = self._get("GET", url, scope=f"repository:{repository}:pull")
            if response.status_code == 404:
                raise NotFound(f"repository {repository} not found on {self.base}")
            self._check(response, what=f"tags of {repository}")
            tags.extend(response.json().get("tags") or [])
            found = _NEXT.search(response.headers.get("link", ""))
            url = urljoin(self.base, found.group(1)) if found else None
        return tags

    def digest(self, repository: str, reference: str) -> str:
        """The digest a tag points to (``Docker-Content-Digest`` of a manifest HEAD)."""
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        response = self._get(
            "HEAD", url, scope=f"repository:{repository}:pull", headers={"Accept": MANIFEST_TYPES}
        )
        if response.status_code == 404:
            raise NotFound(f"{repository}:{reference} not found on {self.base}")
        self._check(response, what=f"manifest {repository}:{reference}")
        digest = str(response.headers.get("docker-content-digest", ""))
        if not digest:
            raise RegistryError(f"{self.base} sent no Docker-Content-Digest for {reference}")
        return digest

    def _get(
        self, method: str, url: str, *, scope: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = dict(headers or {})
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        response = self._send(method, url, headers=headers)
        if response.status_code != 401:
            return response

        # The challenge says how to authenticate; answer it once.
        challenge = response.headers.get("www-authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "bearer":
            self._tokens[scope] = self._token(challenge, scope=scope)
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            return self._send(method, url, headers=headers)
        if scheme == "basic" and self.credentials is not None:
            auth = (self.credentials.username, self.credentials.password)
            return self._send(method, url, headers=headers, auth=auth)
        return response

    def _token(self, challenge: str, *, scope: str) -> str:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", None)
        if realm is None:
            raise RegistryError(f"{self.base}: bearer challenge without a realm")
        params.setdefault("scope", scope)
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            response = self._client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as error:
            raise RegistryError(f"token service {realm} did not answer: {error}") from error
        self._check(response, what="token")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token service {realm} returned no token")
        return str(token)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._client.request(method, url, headers=headers, auth=auth)
        except httpx.HTTPError as error:
            raise RegistryError(f"{self.base} did not answer: {error}") from error

    def _check(self, response: httpx.Response, *, what: str) -> None:
        if response.status_code >= 400:
            raise RegistryError(
                f"{self.base}: {what}: HTTP {response.status_code} {response.text[:200]}"
            )
