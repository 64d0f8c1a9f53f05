"""Pull checks against a registry that demands the Docker token protocol (as Docker Hub and
GHCR do): a small Starlette stand-in for a cloud registry, speaking the real HTTP protocol
(401 + ``WWW-Authenticate: Bearer realm=...``, a token endpoint, manifests behind it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syrup.cluster.workloads import pulls
from tests.conftest import free_port

TOKEN = "anonymous-pull-token"
IMAGES = {("library/nginx", "1.27")}


def cloud_registry(port: int) -> Starlette:
    realm = f"http://127.0.0.1:{port}/token"

    async def token(request: Request) -> Response:
        scope = request.query_params.get("scope", "")
        if request.query_params.get("service") != "registry.test" or not scope.endswith(":pull"):
            return JSONResponse({"errors": [{"code": "DENIED"}]}, status_code=403)
        return JSONResponse({"token": TOKEN, "expires_in": 300})

    async def manifest(request: Request) -> Response:
        name, ref = request.path_params["name"], request.path_params["ref"]
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge = (
                f'Bearer realm="{realm}",service="registry.test",scope="repository:{name}:pull"'
            )
            return JSONResponse(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                status_code=401,
                headers={"WWW-Authenticate": challenge},
            )
        if (name, ref) not in IMAGES:
            return JSONResponse(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                status_code=404,
            )
        return Response(b"{}", media_type="application/vnd.oci.image.manifest.v1+json")

    return Starlette(
        routes=[
            Route("/token", token),
            Route("/v2/{name:path}/manifests/{ref}", manifest, methods=["GET", "HEAD"]),
        ]
    )


@pytest.fixture
def registry_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(cloud_registry(port), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    with contextlib.suppress(RuntimeError):
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("image", "ok", "detail"),
    [
        ("docker.io/library/nginx:1.27", True, ""),
        ("nginx:1.27", True, ""),
        ("nginx:0.0-missing", False, "MANIFEST_UNKNOWN: manifest unknown"),
    ],
)
def test_public_registries_are_asked_with_an_anonymous_token(
    registry_url: str, image: str, ok: bool, detail: str
) -> None:
    async def check() -> str | None:
        puller = pulls.Puller({"docker.io": registry_url})
        try:
            return await puller.pull(image)
        finally:
            await puller.close()

    error = asyncio.run(check())
    if ok:
        assert error is None
    else:
        assert error is not None and detail in error and "code = NotFound" in error
