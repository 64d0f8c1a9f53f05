"""A small but faithful Registry HTTP API v2 server for tests (a cloud registry cannot run
here): ``/v2/``, paginated ``tags/list``, ``manifests/<ref>`` with ``Docker-Content-Digest``,
and either the bearer-token handshake (a token endpoint checking basic credentials and the
requested scope) or plain basic auth, as ECR-style registries answer."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class FakeRegistry:
    repositories: dict[str, list[str]]
    username: str = "robot"
    password: str = "hunter2"
    mode: str = "bearer"
    page_size: int = 2
    tokens: dict[str, str] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    base: str = ""

    def digest(self, name: str, tag: str) -> str:
        return "sha256:" + hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token),
                Route("/v2/", self._root),
                Route("/v2/{rest:path}", self._api, methods=["GET", "HEAD"]),
            ]
        )

    def _basic_ok(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("authorization", "") == f"Basic {expected}"

    def _challenge(self, scope: str) -> Response:
        if self.mode == "basic":
            header = 'Basic realm="fake-registry"'
        else:
            header = f'Bearer realm="{self.base}/token",service="fake-registry"' + (
                f',scope="{scope}"' if scope else ""
            )
        return JSONResponse(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status_code=401,
            headers={"WWW-Authenticate": header},
        )

    def _authorised(self, request: Request, scope: str) -> bool:
        if self.mode == "basic":
            return self._basic_ok(request)
        header = request.headers.get("authorization", "")
        return header.startswith("Bearer ") and self.tokens.get(header[7:]) == scope

    async def _token(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.token_requests.append(params)
        if not self._basic_ok(request) or params.get("service") != "fake-registry":
            return JSONResponse({"details": "bad credentials"}, status_code=401)
        token = secrets.token_hex(8)
        self.tokens[token] = params.get("scope", "")
        return JSONResponse({"token": token, "expires_in": 300})

    async def _root(self, request: Request) -> Response:
        if self.mode == "basic" and not self._basic_ok(request):
            return self._challenge("")
        if self.mode == "bearer" and not request.headers.get("authorization"):
            return self._challenge("")
        return JSONResponse({})

    async def _api(self, request: Request) -> Response:
        rest = request.path_params["rest"]
        if rest.endswith("/tags/list"):
            name = rest.removesuffix("/tags/list")
            kind, reference = "tags", ""
        elif "/manifests/" in rest:
            name, _, reference = rest.rpartition("/manifests/")
            kind = "manifest"
        else:
            return JSONResponse({"errors": [{"code": "UNSUPPORTED"}]}, status_code=404)
        scope = f"repository:{name}:pull"
        if not self._authorised(request, scope):
            return self._challenge(scope)
        if name not in self.repositories:
            return JSONResponse({"errors": [{"code": "NAME_UNKNOWN"}]}, status_code=404)
        tags = sorted(self.repositories[name])
        if kind == "tags":
            return self._tags_page(request, name, tags)
        if reference not in tags:
            return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status_code=404)
        headers = {
            "Docker-Content-Digest": self.digest(name, reference),
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        }
        body = b"" if request.method == "HEAD" else b'{"schemaVersion": 2}'
        return Response(body, headers=headers)

    def _tags_page(self, request: Request, name: str, tags: list[str]) -> Response:
        size = min(int(request.query_params.get("n", self.page_size)), self.page_size)
        last = request.query_params.get("last")
        remaining = [tag for tag in tags if last is None or tag > last]
        page = remaining[:size]
        headers = {}
        if len(remaining) > size:
            headers["Link"] = f'</v2/{name}/tags/list?n={size}&last={page[-1]}>; rel="next"'
        return JSONResponse({"name": name, "tags": page}, headers=headers)
