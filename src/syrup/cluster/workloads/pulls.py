"""Image pulls as a node sees them: every image pulls, unless a registry is configured for it.

With ``--registry HOST=URL`` the simulated node asks that registry whether the manifest exists,
using the Registry HTTP API v2 (``HEAD /v2/<name>/manifests/<reference>``, with the manifest
media types a container runtime accepts). A missing manifest or repository becomes the error
text containerd gives the kubelet, with the registry's own error message appended, so a pod
shows ``ErrImagePull`` and then ``ImagePullBackOff`` as it would on a real node. Images from
registries that are not configured always pull: the cluster cannot reach the internet.
Registries that answer 401 with a ``Bearer`` challenge (Docker Hub, GHCR) get the anonymous
token the Docker token-authentication protocol describes; private registries needing
credentials report "pull access denied", as a node without pull secrets would.

Answers are cached briefly per image so that a rollout of many replicas asks once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import httpx

from syrup import logs

log = logs.get(__name__)

_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CACHE_SECONDS = 2.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: registry host, repository path and tag or digest."""

    host: str
    repository: str
    reference: str
    #: The reference as containerd normalises it (``docker.io/library/nginx:latest``).
    full: str


def parse_image(image: str) -> ImageRef:
    """Split an image reference the way the Docker reference grammar does."""
    rest, _, digest = image.partition("@")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
    else:
        host, path = DOCKER_HUB, rest
    tag = ""
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    reference = digest or tag or "latest"
    sep = "@" if digest else ":"
    return ImageRef(
        host=host, repository=path, reference=reference, full=f"{host}/{path}{sep}{reference}"
    )


class Puller:
    """Checks images against the configured registries; see the module docstring."""

    def __init__(self, registries: dict[str, str]) -> None:
        self._registries = {host: url.rstrip("/") for host, url in registries.items()}
        self._client: httpx.AsyncClient | None = None
        self._cache: dict[str, tuple[float, str | None]] = {}

    def checks(self, image: str) -> bool:
        """Whether pulling ``image`` asks a registry (else it always succeeds)."""
        return parse_image(image).host in self._registries

    async def pull(self, image: str) -> str | None:
        """``None`` when the image can be pulled, else the error a kubelet would report."""
        ref = parse_image(image)
        base = self._registries.get(ref.host)
        if base is None:
            return None
        cached = self._cache.get(image)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        error = await self._ask(base, ref)
        self._cache[image] = (time.monotonic(), error)
        return error

    async def _ask(self, base: str, ref: ImageRef) -> str | None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        url = f"{base}/v2/{ref.repository}/manifests/{ref.reference}"
        prefix = (
            f'failed to pull and unpack image "{ref.full}": '
            f'failed to resolve reference "{ref.full}"'
        )
        try:
            headers = {"Accept": _ACCEPT}
            head = await self._client.head(url, headers=headers)
            if head.status_code == 401:
                # Public registries (Docker Hub, GHCR) hand out anonymous pull tokens.
                token = await self._anonymous_token(head.headers.get("WWW-Authenticate", ""))
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                    head = await self._client.head(url, headers=headers)
            if head.status_code == 200:
                return None
            detail = await self._registry_message(url, headers)
        except httpx.HTTPError as exc:
            log.warning("registry did not answer", registry=ref.host, url=base, error=str(exc))
            return (
                f"rpc error: code = Unknown desc = {prefix}: failed to do request: "
                f"Head {url!r}: {exc}"
            )
        if head.status_code == 404:
            return f"rpc error: code = NotFound desc = {prefix}: {ref.full}: not found: {detail}"
        if head.status_code in (401, 403):
            return (
                f"rpc error: code = Unknown desc = {prefix}: pull access denied, repository does "
                f"not exist or may require authorization: {detail}"
            )
        return (
            f"rpc error: code = Unknown desc = {prefix}: unexpected status "
            f"{head.status_code}: {detail}"
        )

    async def _anonymous_token(self, challenge: str) -> str | None:
        """A pull token from the Docker token protocol's ``Bearer realm=...`` challenge."""
        assert self._client is not None
        if not challenge.lower().startswith("bearer "):
            return None
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("http://", "https://")):
            return None
        response = await self._client.get(realm, params=params)
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        return str(token) if token else None

    async def _registry_message(self, url: str, headers: dict[str, str]) -> str:
        """The registry's error text (``MANIFEST_UNKNOWN: manifest unknown``) from a GET."""
        assert self._client is not None
        try:
            response = await self._client.get(url, headers=headers)
            body = response.json()
            parts = [
                f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                for e in body.get("errors") or []
                if isinstance(e, dict)
            ]
            return "; ".join(parts) or f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError, AttributeError):
            return "no details from the registry"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
