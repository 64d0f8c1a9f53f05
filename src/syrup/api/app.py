"""The FastAPI application: routes, authentication, RBAC checks and error bodies.

Every route but login, health, version, the webhook and the UI's static files needs a token
(``Authorization: Bearer``, or the ``syrup.token`` cookie the UI's login sets; the cookie is
``HttpOnly`` and ``SameSite=Strict``). Each route names the permission it needs in Argo CD's
terms (resource, action, object) and :mod:`syrup.api.rbac` decides; a denial is a 403 whose
body names the missing permission. Errors are JSON ``{"error": ..., "field": ...}``, with the
field set whenever the input was wrong.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from syrup import __version__, errors, logs
from syrup.api import auth, events, metrics, rbac, service, webhooks
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

COOKIE = "syrup.token"
UI_DIR = Path(__file__).resolve().parent.parent / "ui"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class ORJSONResponse(JSONResponse):
    """JSON through orjson: a thousand Applications serialize several times faster."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass
class Context:
    """Everything the routes need, built once per server."""

    service: service.Service
    accounts: auth.Accounts
    policy: rbac.Policy
    metrics: metrics.Metrics
    broker: events.Broker
    webhook_secret: str


class Forbidden(errors.GiveUp):
    def __init__(self, denied: rbac.Denied) -> None:
        super().__init__(str(denied))
        self.denied = denied


class Unauthenticated(errors.GiveUp):
    """No token, or one that is not valid."""


# -- request bodies ------------------------------------------------------------------------


class SessionBody(BaseModel):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class SyncBody(BaseModel):
    revision: str = ""
    prune: bool = False
    dryRun: bool = False  # noqa: N815 - Argo CD's field name
    syncOptions: list[str] = Field(default_factory=list)  # noqa: N815 - Argo CD's field name
    resources: list[dict[str, str]] = Field(default_factory=list)


class RollbackBody(BaseModel):
    id: int
    prune: bool = False
    dryRun: bool = False  # noqa: N815 - Argo CD's field name


class AccountBody(BaseModel):
    name: str
    password: str | None = None


class TokenBody(BaseModel):
    expiresIn: float | None = Field(default=None, gt=0)  # noqa: N815 - Argo CD's field name
    description: str = ""


class PasswordBody(BaseModel):
    currentPassword: str  # noqa: N815 - Argo CD's field name
    newPassword: str  # noqa: N815 - Argo CD's field name


class PolicyBody(BaseModel):
    policy: str


# -- the application -----------------------------------------------------------------------


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    return ORJSONResponse(body | extra, status_code=status)


def _status_of(exc: errors.SyrupError) -> int:
    table: list[tuple[type[BaseException], int]] = [
        (Unauthenticated, 401),
        (auth.AuthError, 401),
        (Forbidden, 403),
        (webhooks.BadSignature, 403),
        (kerrors.AlreadyExists, 409),
        (kerrors.Conflict, 409),
        (kerrors.Forbidden, 403),
        (errors.NotFound, 404),
        (errors.InvalidInput, 400),
        (kerrors.BadRequest, 400),
        (errors.RetryLater, 503),
        (errors.ConfigError, 500),
    ]
    for cls, status in table:
        if isinstance(exc, cls):
            return status
    return 500


def _principal(request: Request) -> auth.Principal:
    ctx: Context = request.app.state.ctx
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get(COOKIE, "")
    if not token:
        raise Unauthenticated("a token is required (Authorization: Bearer <token>)")
    return ctx.accounts.resolve(token)


Who = Annotated[auth.Principal, Depends(_principal)]


def create_app(
    ctx: Context, *, ui_dir: Path | None = UI_DIR, routers: Sequence[APIRouter] = ()
) -> FastAPI:
    api = FastAPI(
        title="Syrup API",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        default_response_class=ORJSONResponse,
    )

    @api.exception_handler(errors.SyrupError)
    async def _syrup_error(_: Request, exc: errors.SyrupError) -> JSONResponse:
        status = _status_of(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, Forbidden):
            d = exc.denied
            extra["permission"] = f"{d.resource}, {d.action}, {d.obj}"
        where = exc.where if isinstance(exc, errors.InvalidInput) else None
        if status >= 500:
            _log.error("request failed", error=str(exc))
        return _error(status, str(exc), where, **extra)

    @api.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or str((first.get("loc") or ("body",))[0])
        return _error(422, f"{field}: {first.get('msg')}", field)

    api.state.ctx = ctx
    api.add_middleware(_Timing, metrics=ctx.metrics)

    def allow(who: auth.Principal, resource: str, action: str, obj: str) -> None:
        denied = ctx.policy.check(who.subject, resource, action, obj)
        if denied is not None:
            raise Forbidden(denied)

    svc = ctx.service
    list_cache: dict[tuple[int, int, str, service.AppFilter], bytes] = {}

    def app_obj(ns: str | None, name: str) -> str:
        return f"{svc.project_of(ns, name)}/{name}"

    # -- public -----------------------------------------------------------------------------

    @api.get("/healthz", tags=["public"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/api/version", tags=["public"])
    @api.get("/api/v1/version", tags=["public"])
    async def version() -> dict[str, str]:
        return {"Version": __version__, "KubeVersion": svc.cache.discovery.server_version}

    @api.post("/api/v1/session", tags=["session"])
    async def login(body: SessionBody, response: Response) -> dict[str, str]:
        if not ctx.accounts.check_password(body.username, body.password):
            raise auth.AuthError("invalid username or password")
        _, token = ctx.accounts.issue(
            body.username, kind="session", expires_in=auth.SESSION_SECONDS
        )
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", max_age=int(auth.SESSION_SECONDS)
        )
        _log.info("login", user=body.username)
        return {"token": token}

    @api.delete("/api/v1/session", tags=["session"])
    async def logout(who: Who, response: Response) -> dict[str, str]:
        ctx.accounts.revoke(who.token_id)
        response.delete_cookie(COOKIE)
        return {}

    @api.get("/api/v1/session/userinfo", tags=["session"])
    async def userinfo(who: Who) -> dict[str, Any]:
        can_write = ctx.policy.check(who.subject, "applications", "sync", "*/*") is None
        return {"loggedIn": True, "username": who.subject, "canSync": can_write}

    # -- applications -----------------------------------------------------------------------

    @api.get("/api/v1/applications", tags=["applications"])
    async def list_applications(
        who: Who,
        project: Annotated[list[str] | None, Query()] = None,
        namespace: str = "",
        health: str = "",
        sync: str = "",
        selector: str = "",
        search: str = "",
        repo: str = "",
    ) -> Response:
        f = service.AppFilter(
            projects=tuple(project or ()),
            dest_namespace=namespace,
            health=health,
            sync=sync,
            selector=selector,
            search=search,
            repo=repo,
        )
        # A list of 1,000 apps is ~1 MB of JSON: reuse the bytes until an app or the policy
        # changes (the key holds both versions, the caller and the filters).
        key = (svc.apps_version, ctx.policy.version, who.subject, f)
        body = list_cache.get(key)
        if body is None:
            items = [
                a
                for a in svc.list_apps(f)
                if ctx.policy.check(
                    who.subject,
                    "applications",
                    "get",
                    f"{(a.get('spec') or {}).get('project') or 'default'}/{a['metadata']['name']}",
                )
                is None
            ]
            body = orjson.dumps({"items": items, "metadata": {"count": len(items)}})
            if len(list_cache) > 32:
                list_cache.clear()
            list_cache[key] = body
        return Response(body, media_type="application/json")

    @api.post("/api/v1/applications", tags=["applications"], status_code=201)
    async def create_application(
        who: Who,
        body: Annotated[dict[str, Any], Body()],
        upsert: bool = False,
        appNamespace: str | None = None,  # noqa: N803 - Argo CD's query name
    ) -> dict[str, Any]:
        obj = svc.validate_app(body, namespace=appNamespace)
        project = str(obj["spec"].get("project") or "default")
        allow(who, "applications", "create", f"{project}/{obj['metadata']['name']}")
        return await svc.create_app(obj, namespace=appNamespace, upsert=upsert)

    @api.get("/api/v1/applications/{name}", tags=["applications"])
    async def get_application(
        who: Who,
        name: str,
        refresh: str | None = None,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        if refresh:
            if refresh not in ("normal", "hard"):
                raise errors.InvalidInput("must be normal or hard", where="refresh")
            return await svc.refresh(appNamespace, name, hard=refresh == "hard")
        return svc.get_app(appNamespace, name)

    @api.put("/api/v1/applications/{name}", tags=["applications"])
    async def update_application(
        who: Who,
        name: str,
        body: Annotated[dict[str, Any], Body()],
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "update", app_obj(appNamespace, name))
        new_project = str(((body.get("spec") or {}).get("project")) or "default")
        allow(who, "applications", "update", f"{new_project}/{name}")
        return await svc.update_app(appNamespace, name, body)

    @api.delete("/api/v1/applications/{name}", tags=["applications"])
    async def delete_application(
        who: Who,
        name: str,
        cascade: bool = True,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "delete", app_obj(appNamespace, name))
        await svc.delete_app(appNamespace, name, cascade=cascade)
        return {}

    @api.get("/api/v1/applications/{name}/resource-tree", tags=["applications"])
    async def resource_tree(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return svc.tree(appNamespace, name)

    @api.get("/api/v1/applications/{name}/managed-resources", tags=["applications"])
    async def managed_resources(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return {"items": await svc.managed_resources(appNamespace, name)}

    @api.get("/api/v1/applications/{name}/resource", tags=["applications"])
    async def resource(
        who: Who,
        name: str,
        kind: str,
        resourceName: str,  # noqa: N803
        group: str = "",
        namespace: str = "",
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return svc.resource(
            appNamespace, name, group=group, kind=kind, rns=namespace, rname=resourceName
        )

    @api.get("/api/v1/applications/{name}/manifests", tags=["applications"])
    async def manifests(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return {"manifests": svc.manifests(appNamespace, name)}

    @api.get("/api/v1/applications/{name}/events", tags=["applications"])
    async def app_events(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return {"items": await svc.events(appNamespace, name)}

    @api.get("/api/v1/applications/{name}/history", tags=["applications"])
    async def history(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        return {"items": svc.history(appNamespace, name)}

    @api.post("/api/v1/applications/{name}/sync", tags=["applications"])
    async def sync_application(
        who: Who,
        name: str,
        body: SyncBody | None = None,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "sync", app_obj(appNamespace, name))
        b = body or SyncBody()
        req = service.SyncRequest(
            revision=b.revision,
            prune=b.prune,
            dry_run=b.dryRun,
            options=tuple(b.syncOptions),
            resources=tuple(b.resources),
            username=who.subject,
        )
        return await svc.sync(appNamespace, name, req)

    @api.post("/api/v1/applications/{name}/rollback", tags=["applications"])
    async def rollback(
        who: Who,
        name: str,
        body: RollbackBody,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "sync", app_obj(appNamespace, name))
        return await svc.rollback(
            appNamespace,
            name,
            history_id=body.id,
            prune=body.prune,
            dry_run=body.dryRun,
            username=who.subject,
        )

    @api.post("/api/v1/applications/{name}/refresh", tags=["applications"])
    async def refresh_application(
        who: Who,
        name: str,
        type: str = "normal",
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "get", app_obj(appNamespace, name))
        if type not in ("normal", "hard"):
            raise errors.InvalidInput("must be normal or hard", where="type")
        return await svc.refresh(appNamespace, name, hard=type == "hard")

    @api.delete("/api/v1/applications/{name}/operation", tags=["applications"])
    async def terminate(
        who: Who,
        name: str,
        appNamespace: str | None = None,  # noqa: N803
    ) -> dict[str, Any]:
        allow(who, "applications", "sync", app_obj(appNamespace, name))
        await svc.terminate(appNamespace, name)
        return {}

    @api.get("/api/v1/stream/applications", tags=["applications"])
    async def stream(who: Who, name: str = "") -> StreamingResponse:
        allow(who, "applications", "get", f"*/{name or '*'}")
        sub = events.Subscriber(namespaces=frozenset(svc.ctl.settings.namespaces), name=name)
        return StreamingResponse(
            ctx.broker.stream(sub),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- projects ---------------------------------------------------------------------------

    @api.get("/api/v1/projects", tags=["projects"])
    async def list_projects(who: Who) -> dict[str, Any]:
        allow(who, "projects", "get", "*")
        return {"items": svc.projects()}

    @api.post("/api/v1/projects", tags=["projects"], status_code=201)
    async def create_project(
        who: Who, body: Annotated[dict[str, Any], Body()], upsert: bool = False
    ) -> dict[str, Any]:
        name = str(((body.get("metadata") or {}).get("name")) or "")
        allow(who, "projects", "create", name)
        return await svc.create_project(body, upsert=upsert)

    @api.get("/api/v1/projects/{name}", tags=["projects"])
    async def get_project(who: Who, name: str) -> dict[str, Any]:
        allow(who, "projects", "get", name)
        return svc.get_project(name)

    @api.put("/api/v1/projects/{name}", tags=["projects"])
    async def update_project(
        who: Who, name: str, body: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        allow(who, "projects", "update", name)
        return await svc.update_project(name, body)

    @api.delete("/api/v1/projects/{name}", tags=["projects"])
    async def delete_project(who: Who, name: str) -> dict[str, Any]:
        allow(who, "projects", "delete", name)
        await svc.delete_project(name)
        return {}

    # -- repositories -----------------------------------------------------------------------

    @api.get("/api/v1/repositories", tags=["repositories"])
    async def list_repositories(who: Who) -> dict[str, Any]:
        allow(who, "repositories", "get", "*")
        return {"items": svc.repositories()}

    @api.post("/api/v1/repositories", tags=["repositories"], status_code=201)
    async def add_repository(
        who: Who, body: Annotated[dict[str, Any], Body()], upsert: bool = False
    ) -> dict[str, Any]:
        allow(who, "repositories", "create", str(body.get("repo") or ""))
        return await svc.add_repository(body, upsert=upsert)

    @api.post("/api/v1/repositories/validate", tags=["repositories"])
    async def validate_repository(
        who: Who, body: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        allow(who, "repositories", "get", str(body.get("repo") or ""))
        await service.test_repository(service._repo_body(body))
        return {"connectionState": {"status": "Successful"}}

    @api.delete("/api/v1/repositories", tags=["repositories"])
    async def delete_repository(who: Who, repo: str) -> dict[str, Any]:
        allow(who, "repositories", "delete", repo)
        await svc.delete_repository(repo)
        return {}

    # -- clusters ---------------------------------------------------------------------------

    @api.get("/api/v1/clusters", tags=["clusters"])
    async def list_clusters(who: Who) -> dict[str, Any]:
        allow(who, "clusters", "get", "*")
        return {"items": svc.clusters()}

    @api.post("/api/v1/clusters", tags=["clusters"], status_code=201)
    async def add_cluster(who: Who, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        allow(who, "clusters", "create", str(body.get("server") or ""))
        return await svc.add_cluster(body)

    @api.delete("/api/v1/clusters", tags=["clusters"])
    async def delete_cluster(who: Who, server: str) -> dict[str, Any]:
        allow(who, "clusters", "delete", server)
        await svc.delete_cluster(server)
        return {}

    # -- accounts and settings --------------------------------------------------------------

    @api.get("/api/v1/account", tags=["accounts"])
    async def list_accounts(who: Who) -> dict[str, Any]:
        allow(who, "accounts", "get", "*")
        return {"items": ctx.accounts.list_accounts()}

    @api.post("/api/v1/account", tags=["accounts"], status_code=201)
    async def create_account(who: Who, body: AccountBody) -> dict[str, Any]:
        allow(who, "accounts", "create", body.name)
        ctx.accounts.create_account(body.name, password=body.password)
        return {"name": body.name}

    @api.delete("/api/v1/account/{name}", tags=["accounts"])
    async def delete_account(who: Who, name: str) -> dict[str, Any]:
        allow(who, "accounts", "delete", name)
        ctx.accounts.delete_account(name)
        return {}

    @api.post("/api/v1/account/{name}/token", tags=["accounts"])
    async def generate_token(who: Who, name: str, body: TokenBody | None = None) -> dict[str, Any]:
        if name != who.subject:
            allow(who, "accounts", "update", name)
        b = body or TokenBody()
        token_id, token = ctx.accounts.issue(
            name, kind="api", expires_in=b.expiresIn, description=b.description
        )
        return {"id": token_id, "token": token}

    @api.delete("/api/v1/account/{name}/token/{token_id}", tags=["accounts"])
    async def revoke_token(who: Who, name: str, token_id: str) -> dict[str, Any]:
        if name != who.subject:
            allow(who, "accounts", "update", name)
        ctx.accounts.revoke(token_id)
        return {}

    @api.put("/api/v1/account/password", tags=["accounts"])
    async def change_password(who: Who, body: PasswordBody) -> dict[str, Any]:
        ctx.accounts.set_password(who.subject, current=body.currentPassword, new=body.newPassword)
        return {}

    @api.get("/api/v1/settings/rbac", tags=["settings"])
    async def get_policy(who: Who) -> dict[str, Any]:
        allow(who, "settings", "get", "rbac")
        return {"policy": ctx.policy.text, "builtin": rbac.BUILTIN}

    @api.put("/api/v1/settings/rbac", tags=["settings"])
    async def put_policy(who: Who, body: PolicyBody) -> dict[str, Any]:
        allow(who, "settings", "update", "rbac")
        ctx.policy.replace(body.policy)
        return {"policy": ctx.policy.text}

    # -- webhooks and metrics ---------------------------------------------------------------

    @api.post("/api/webhook", tags=["webhooks"])
    async def webhook(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > webhooks.MAX_BODY:
            raise errors.InvalidInput("payload larger than 25 MiB", where="body")
        found = webhooks.provider_of(request.headers)
        if found is None:
            raise errors.InvalidInput(
                "unknown sender: expected an X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event "
                "header",
                where="headers",
            )
        provider, event = found
        webhooks.verify(provider, request.headers, body, secret=ctx.webhook_secret)
        if event.lower() not in ("push", "push hook"):
            return {"event": event, "refreshed": []}
        push = webhooks.parse_push(provider, body)
        refreshed = []
        for ns, name in webhooks.matching_apps(push, svc.applications()):
            svc.ctl.refresh(ns, name)
            refreshed.append(f"{ns}/{name}")
        _log.info("webhook push", provider=str(provider), ref=push.ref, apps=len(refreshed))
        return {"event": event, "refreshed": refreshed}

    @api.get("/metrics", tags=["metrics"])
    async def prometheus(who: Who) -> Response:
        allow(who, "settings", "get", "metrics")
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Routers of other components (the image updater's intake) come before the UI's catch-all.
    for router in routers:
        api.include_router(router)

    # -- the web UI -------------------------------------------------------------------------

    if ui_dir is not None and (ui_dir / "index.html").exists():
        api.mount("/", StaticFiles(directory=ui_dir, html=True), name="ui")
    return api


class _Timing:
    """ASGI middleware timing each HTTP request by its route template (not its raw path)."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, metrics: metrics.Metrics
    ) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_wrapped(message: MutableMapping[str, Any]) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            route = scope.get("route")
            path = str(getattr(route, "path", "") or "other")
            if not path.endswith("/stream/applications"):
                self.metrics.api_seconds.labels(scope.get("method", ""), path, str(code)).observe(
                    time.perf_counter() - started
                )
