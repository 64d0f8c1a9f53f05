"""The local cluster's HTTP front: Kubernetes REST paths over HTTPS with bearer tokens.

One catch-all ASGI route parses the Kubernetes path grammar itself (``/api/v1/namespaces/{ns}/
{resource}/{name}/{subresource}`` and the ``/apis/{group}/{version}`` forms, plus the legacy
``/watch/`` prefix), because the set of resources changes at run time as CRDs come and go.
Responses are built from the stored JSON bytes where possible, so lists and watches splice
bytes instead of re-encoding objects.

Behaviour follows the Kubernetes API conventions: every error is a ``Status`` object, watches are
newline-delimited JSON on a chunked 200 response (an expired version becomes an ``ERROR`` event
carrying a 410), ``/healthz``, ``/livez``, ``/readyz`` and ``/version`` answer without a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn
import yaml
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from syrup import __version__, logs
from syrup import errors as syrup_errors
from syrup.cluster import admission, credentials, discovery, errors, storage, tables
from syrup.cluster.resources import ResourceType

log = logs.get(__name__)

Obj = dict[str, Any]

KUBE_VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0-syrup",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
_JSON = "application/json"
_PROTOBUF = "application/vnd.kubernetes.protobuf"
_OPENAPI_V2_PROTOBUF = "application/octet-stream"
#: An OpenAPI v2 ``Document`` message holding only ``swagger: "2.0"`` (field 1).
_EMPTY_OPENAPI_V2_PROTOBUF = b"\x0a\x032.0"


@dataclass(frozen=True)
class ServeSettings:
    """How ``syrup cluster serve`` (and ``syrup up``) runs the local cluster."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 6443
    history_size: int = 100_000
    history_age: float = 900.0
    #: Simulated workloads (issue: nodes and controllers); settings passed through as-is.
    workloads: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Target:
    """A parsed resource path."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON, headers=headers)


def _raw_response(raw: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(raw, status_code=status, media_type=_JSON, headers=headers)


def _error_response(exc: errors.ApiError) -> Response:
    return _json_response(exc.status(), exc.code)


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    # Starlette headers are a mapping; several warnings fold into one comma-joined header.
    return {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)}


def _wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=Table" in accept


class ClusterApp:
    """The ASGI application; one instance per running server."""

    def __init__(self, store: storage.Store, *, token: str, server_address: str) -> None:
        self.store = store
        self.token = token
        self.server_address = server_address
        self.discovery = discovery.Discovery(store.registry)
        self.ready = True

    # -- ASGI entry ----------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except errors.ApiError as exc:
            response = _error_response(exc)
        except Exception as exc:  # a bug must still answer as a Status, and be logged
            log.exception("request failed", method=request.method, path=request.scope["path"])
            response = _error_response(errors.InternalError(f"internal error: {exc}"))
        await response(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token):
            return
        raise errors.Unauthorized("Unauthorized")

    async def _dispatch(self, request: Request) -> Response:
        path: str = request.scope["path"]
        if path in _PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            if path.startswith("/version"):
                return _json_response(KUBE_VERSION)
            return Response("ok", media_type="text/plain")
        self._authenticate(request)
        parts = [p for p in path.split("/") if p]
        if not parts:
            return _json_response({"paths": self.discovery.paths()})
        if parts[0] == "api" and len(parts) <= 2:
            if len(parts) == 1:
                return _json_response(self.discovery.core_versions(self.server_address))
            if parts[1] != "v1":
                raise errors.NotFound("the server could not find the requested resource")
            return _json_response(self.discovery.resource_list("", "v1"))
        if parts[0] == "apis" and len(parts) <= 3:
            if len(parts) == 1:
                return _json_response(self.discovery.group_list())
            if len(parts) == 2:
                return _json_response(self.discovery.group(parts[1]))
            return _json_response(self.discovery.resource_list(parts[1], parts[2]))
        if parts[0] == "openapi":
            return await self._openapi(request, parts)
        if parts[0] in ("api", "apis"):
            target = self._parse_target(parts)
            return await self._resource(request, target)
        raise errors.NotFound("the server could not find the requested resource")

    # -- path parsing --------------------------------------------------------------------

    def _parse_target(self, parts: list[str]) -> _Target:
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) < 4:
                raise errors.NotFound("the server could not find the requested resource")
            group, version, rest = parts[1], parts[2], parts[3:]
        watch = False
        if rest and rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise errors.NotFound("the server could not find the requested resource")
        rt = self.store.registry.get(group, version, rest[0])
        if rt is None:
            gv = f"{group}/{version}" if group else version
            raise errors.NotFound(
                f"the server could not find the requested resource ({rest[0]}.{gv})"
                if group
                else "the server could not find the requested resource"
            )
        if namespace is not None and not rt.namespaced:
            raise errors.NotFound("the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub == "finalize" and rt.plural == "namespaces":
            sub = "status"
        if sub is not None and sub not in rt.subresources:
            raise errors.NotFound("the server could not find the requested resource")
        if len(rest) > 3:
            raise errors.NotFound("the server could not find the requested resource")
        return _Target(rt, namespace, name, sub, watch)

    # -- resources -----------------------------------------------------------------------

    async def _resource(self, request: Request, t: _Target) -> Response:
        q = request.query_params
        method = request.method
        if t.watch or (method == "GET" and q.get("watch") in ("true", "1") and t.name is None):
            return self._watch(request, t)
        if t.watch and t.name is not None:
            return self._watch(request, t)
        dry_run = q.get("dryRun") == "All"
        manager = q.get("fieldManager", "")
        validation = q.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.BadRequest(
                f"fieldValidation: invalid value {validation!r}: must be Ignore, Warn or Strict"
            )

        if t.name is None:
            if method == "GET":
                return self._list(request, t)
            if method == "POST":
                body = await self._json_body(request)
                raw, warnings = self.store._create_sync(
                    t.rt,
                    body,
                    manager=manager or _user_agent_manager(request),
                    dry_run=dry_run,
                    field_validation=validation,
                    namespace=t.namespace,
                )
                return self._object_response(request, t, raw, 201, warnings)
            if method == "DELETE":
                opts = await self._delete_options(request)
                raws = self.store.delete_collection(
                    t.rt,
                    t.namespace,
                    label_selector=q.get("labelSelector"),
                    field_selector=q.get("fieldSelector"),
                    propagation_policy=opts.get("propagationPolicy"),
                    dry_run=dry_run,
                )
                return self._list_body(t, raws, self.store.resource_version(), None)
            raise errors.MethodNotAllowed(f"the server does not allow this method ({method})")

        if method == "GET":
            raw = self.store.get_raw(t.rt, t.namespace, t.name)
            return self._object_response(request, t, raw, 200, [])
        if method == "PUT":
            body = await self._json_body(request)
            if t.subresource == "scale":
                body = {"metadata": body.get("metadata") or {}, "spec": body.get("spec") or {}}
                body["metadata"]["name"] = t.name
            raw, warnings = self.store._update_sync(
                t.rt,
                body,
                manager=manager or _user_agent_manager(request),
                subresource=t.subresource,
                dry_run=dry_run,
                field_validation=validation,
                namespace=t.namespace,
                name=t.name,
            )
            return self._object_response(request, t, raw, 200, warnings)
        if method == "PATCH":
            return await self._patch(request, t, dry_run, manager, validation)
        if method == "DELETE":
            opts = await self._delete_options(request)
            grace = q.get("gracePeriodSeconds") or opts.get("gracePeriodSeconds")
            raw = self.store.delete_sync(
                t.rt,
                t.namespace,
                t.name,
                propagation_policy=q.get("propagationPolicy") or opts.get("propagationPolicy"),
                grace_period_seconds=int(grace) if grace not in (None, "") else None,
                preconditions=opts.get("preconditions"),
                dry_run=dry_run,
            )
            return self._object_response(request, t, raw, 200, [])
        raise errors.MethodNotAllowed(f"the server does not allow this method ({method})")

    async def _patch(
        self, request: Request, t: _Target, dry_run: bool, manager: str, validation: str
    ) -> Response:
        assert t.name is not None
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        q = request.query_params
        body_bytes = await request.body()
        if content_type in (admission.APPLY_PATCH, admission.APPLY_PATCH_CBOR):
            if content_type == admission.APPLY_PATCH_CBOR:
                raise errors.UnsupportedMediaType("CBOR apply bodies are not supported")
            patch = _parse_yaml(body_bytes)
        elif content_type in (
            admission.MERGE_PATCH,
            admission.JSON_PATCH,
            admission.STRATEGIC_PATCH,
        ):
            if content_type == admission.STRATEGIC_PATCH and t.rt.crd:
                raise errors.UnsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml"
                )
            patch = _parse_json(body_bytes)
        else:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format ({content_type or 'none'})"
            )
        if t.subresource == "scale" and content_type != admission.JSON_PATCH:
            live = self.store.get_raw(t.rt, t.namespace, t.name)
            scale = _scale_of(orjson.loads(live), t.rt)
            patched = admission.merge_patch(scale, patch)
            patch = {"spec": {"replicas": (patched.get("spec") or {}).get("replicas")}}
            content_type = admission.MERGE_PATCH
        force = q.get("force") in ("true", "1")
        if force and content_type != admission.APPLY_PATCH:
            raise errors.BadRequest("force is only allowed for apply patches")
        raw, warnings = self.store.patch_sync(
            t.rt,
            t.namespace,
            t.name,
            patch,
            patch_type=content_type,
            manager=manager
            or ("" if content_type == admission.APPLY_PATCH else _user_agent_manager(request)),
            subresource=t.subresource,
            force=force,
            dry_run=dry_run,
            field_validation=validation,
        )
        return self._object_response(request, t, raw, 200, warnings)

    def _object_response(
        self, request: Request, t: _Target, raw: bytes, status: int, warnings: list[str]
    ) -> Response:
        headers = _warning_headers(warnings)
        if t.subresource == "scale":
            return _json_response(_scale_of(orjson.loads(raw), t.rt), status, headers)
        if _wants_table(request):
            obj = self._versioned(t.rt, orjson.loads(raw))
            return _json_response(
                self._table(request, t, [obj], self.store.resource_version(), None),
                status,
                headers,
            )
        if t.rt.crd:
            return _json_response(self._versioned(t.rt, orjson.loads(raw)), status, headers)
        return _raw_response(raw, status, headers)

    def _versioned(self, rt: ResourceType, obj: Obj) -> Obj:
        obj["apiVersion"] = rt.api_version
        return obj

    def _list(self, request: Request, t: _Target) -> Response:
        q = request.query_params
        limit = q.get("limit")
        raws, rv, token = self.store.list_raw(
            t.rt,
            t.namespace,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
            limit=int(limit) if limit and limit.isdigit() else None,
            continue_token=q.get("continue") or None,
        )
        if _wants_table(request):
            objs = [self._versioned(t.rt, orjson.loads(r)) for r in raws]
            return _json_response(self._table(request, t, objs, rv, token))
        return self._list_body(t, raws, rv, token)

    def _list_body(self, t: _Target, raws: list[bytes], rv: str, token: str | None) -> Response:
        meta: Obj = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
        if t.rt.crd:
            raws = [orjson.dumps(self._versioned(t.rt, orjson.loads(r))) for r in raws]
        head = orjson.dumps(
            {"kind": t.rt.list_kind_name, "apiVersion": t.rt.api_version, "metadata": meta}
        )
        body = head[:-1] + b',"items":[' + b",".join(raws) + b"]}"
        return _raw_response(body)

    def _table(
        self, request: Request, t: _Target, objs: list[Obj], rv: str, token: str | None
    ) -> Obj:
        columns = tables.columns_for(t.rt.group_resource, self.store.crd_for(t.rt), t.rt.version)
        return tables.table(
            objs,
            columns=columns,
            resource_version=rv,
            include_object=request.query_params.get("includeObject", "Metadata"),
            continue_token=token,
        )

    # -- watch ---------------------------------------------------------------------------

    def _watch(self, request: Request, t: _Target) -> Response:
        q = request.query_params
        field_selector = q.get("fieldSelector")
        if t.name is not None:
            name_sel = f"metadata.name={t.name}"
            field_selector = f"{field_selector},{name_sel}" if field_selector else name_sel
        timeout_param = q.get("timeoutSeconds")
        timeout = (
            float(timeout_param)
            if timeout_param and timeout_param.isdigit()
            else 1800.0 * (1 + random.random())
        )
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial_events = q.get("sendInitialEvents") in ("true", "1")
        rv = q.get("resourceVersion")
        as_table = _wants_table(request)
        try:
            watch = self.store.watch_raw(
                t.rt,
                t.namespace,
                resource_version=None if initial_events else rv,
                label_selector=q.get("labelSelector"),
                field_selector=field_selector,
            )
        except errors.Gone as exc:
            body = orjson.dumps({"type": "ERROR", "object": exc.status()}) + b"\n"
            return Response(body, media_type=_JSON)
        return StreamingResponse(
            self._stream(
                watch,
                t,
                request,
                timeout=timeout,
                bookmarks=bookmarks,
                initial_events=initial_events,
                as_table=as_table,
            ),
            media_type=_JSON,
        )

    async def _stream(
        self,
        watch: storage.Watch,
        t: _Target,
        request: Request,
        *,
        timeout: float,
        bookmarks: bool,
        initial_events: bool,
        as_table: bool,
    ) -> AsyncIterator[bytes]:
        deadline = time.monotonic() + timeout
        initial_pending = initial_events
        bookmark_every = 1.0 if bookmarks else 5.0
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if initial_pending and not watch._backlog:
                    initial_pending = False
                    yield self._bookmark(t, initial_end=True)
                    continue
                try:
                    item = await watch.next_within(min(left, bookmark_every))
                except StopAsyncIteration:
                    return
                if item is None:
                    if bookmarks:
                        yield self._bookmark(t)
                    if await request.is_disconnected():
                        return
                    continue
                etype, raw, _ = item
                yield self._event_line(t, request, etype, raw, as_table)
        finally:
            watch.close()

    def _event_line(
        self, t: _Target, request: Request, etype: str, raw: bytes, as_table: bool
    ) -> bytes:
        if as_table:
            obj = self._versioned(t.rt, orjson.loads(raw))
            table = self._table(request, t, [obj], obj["metadata"].get("resourceVersion", ""), None)
            return orjson.dumps({"type": etype, "object": table}) + b"\n"
        if t.rt.crd:
            raw = orjson.dumps(self._versioned(t.rt, orjson.loads(raw)))
        return b'{"type":"' + etype.encode() + b'","object":' + raw + b"}\n"

    def _bookmark(self, t: _Target, *, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": self.store.resource_version()}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": t.rt.kind, "apiVersion": t.rt.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    # -- bodies --------------------------------------------------------------------------

    async def _json_body(self, request: Request) -> Obj:
        raw = await request.body()
        content_type = request.headers.get("content-type", _JSON).split(";")[0].strip()
        if content_type in ("application/yaml", "application/apply-patch+yaml"):
            body = _parse_yaml(raw)
        elif content_type in (_JSON, "", "*/*"):
            body = _parse_json(raw)
        elif content_type == _PROTOBUF:
            try:
                protobuf: Any = importlib.import_module("syrup.cluster.protobuf")
            except ImportError as exc:
                raise errors.UnsupportedMediaType(
                    f"the body of the request was in an unknown format ({content_type})"
                ) from exc
            body = protobuf.decode(raw)
        else:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format ({content_type})"
            )
        if not isinstance(body, dict):
            raise errors.BadRequest("the request body must be a JSON object")
        return body

    async def _delete_options(self, request: Request) -> Obj:
        raw = await request.body()
        if not raw.strip():
            return {}
        body = _parse_json(raw)
        if not isinstance(body, dict):
            raise errors.BadRequest("DeleteOptions must be a JSON object")
        return body

    async def _openapi(self, request: Request, parts: list[str]) -> Response:
        try:
            openapi: Any = importlib.import_module("syrup.cluster.apply.openapi")
        except ImportError as exc:
            raise errors.NotFound("the OpenAPI documents are not served yet") from exc
        if parts[1:] == ["v2"] and "protobuf" in request.headers.get("accept", ""):
            # kubectl asks for v2 as protobuf only to validate kinds that v3 does not describe
            # (custom resources whose CRD is missing). A document without definitions makes it
            # skip client-side validation, so the server's own answer ("no matches for kind")
            # reaches the user, as with a real cluster.
            return Response(_EMPTY_OPENAPI_V2_PROTOBUF, media_type=_OPENAPI_V2_PROTOBUF)
        doc: Any
        # Building a document walks thousands of schemas: keep the event loop serving meanwhile.
        if parts[1:] == ["v2"]:
            doc = await asyncio.to_thread(openapi.v2_document)
        elif parts[1:] == ["v3"]:
            doc = await asyncio.to_thread(openapi.v3_index)
        elif len(parts) >= 3 and parts[1] == "v3":
            doc = await asyncio.to_thread(openapi.v3_group_version, "/".join(parts[2:]))
        else:
            doc = None
        if doc is None:
            raise errors.NotFound("the server could not find the requested resource")
        return _json_response(doc)


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"the request body is not valid JSON: {exc}") from exc


def _parse_yaml(raw: bytes) -> Any:
    if raw.lstrip()[:1] == b"{":
        # kubectl and client libraries send apply bodies as JSON (a YAML subset): parse fast.
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        body = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding YAML: {exc}") from exc
    if not isinstance(body, dict):
        raise errors.BadRequest("error decoding YAML: the apply body must be a YAML or JSON object")
    return body


def _user_agent_manager(request: Request) -> str:
    """Kubernetes names an unnamed manager after the client's user agent, up to the slash."""
    agent = request.headers.get("user-agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def _scale_of(obj: Obj, rt: ResourceType) -> Obj:
    from syrup.cluster import selectors

    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    sel = spec.get("selector") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": status.get("replicas", 0),
            "selector": selectors.selector_to_string(sel) if isinstance(sel, dict) else "",
        },
    }


# -- running -------------------------------------------------------------------------------


class LocalCluster:
    """A running local cluster inside the current event loop (``syrup up`` embeds this)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.creds = credentials.ensure(settings.data_dir, host=settings.host)
        self.store = storage.Store(
            storage.StoreSettings(
                path=settings.data_dir / "cluster.sqlite",
                history_size=settings.history_size,
                history_age=settings.history_age,
            ),
            admission=_make_admission(),
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._controllers: Any = None
        self.port = settings.port
        self.kubeconfig = settings.data_dir / "kubeconfig"

    @property
    def url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        app = ClusterApp(
            self.store, token=self.creds.token, server_address=f"{self.settings.host}:0"
        )
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            ssl_certfile=str(self.creds.server_cert),
            ssl_keyfile=str(self.creds.server_key),
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=60,
            http="httptools",
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                with contextlib.suppress(BaseException):
                    self._task.result()
                self.store.close()
                raise syrup_errors.Unavailable(
                    f"the local cluster could not listen on {self.settings.host}:"
                    f"{self.settings.port} (is the port in use? see the log above)"
                )
            await asyncio.sleep(0.02)
        sockets = [s for srv in self._server.servers for s in (srv.sockets or [])]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        app.server_address = f"{self.settings.host}:{self.port}"
        self.store.resume_background_work()
        self._controllers = await _start_workloads(self.store, self.settings)
        credentials.write_kubeconfig(self.kubeconfig, server=self.url, creds=self.creds)
        log.info(
            "local cluster ready",
            url=self.url,
            kubeconfig=str(self.kubeconfig),
            objects=self.store.count(),
        )

    async def stop(self) -> None:
        if self._controllers is not None:
            with contextlib.suppress(Exception):
                await self._controllers.stop()
        if self._server is not None:
            self._server.should_exit = True
        self.store.close_watches()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.close()
        log.info("local cluster stopped")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its owner (who stops the whole tree)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _make_admission() -> admission.Admission:
    """The apply engine's admission when it is installed, else the base seam."""
    factory: Callable[[], admission.Admission] | None = getattr(admission, "create", None)
    return factory() if factory is not None else admission.Admission()


async def _start_workloads(store: storage.Store, settings: ServeSettings) -> Any:
    try:
        from syrup.cluster import workloads
    except ImportError:
        return None
    start: Callable[..., Awaitable[Any]] | None = getattr(workloads, "start", None)
    if start is None:
        return None
    wsettings = settings.workloads
    if wsettings is None:
        make = getattr(workloads, "Settings", None)
        wsettings = make() if make is not None else None
    return await start(store, wsettings)


async def serve_until_signal(settings: ServeSettings) -> None:
    """Run the cluster until SIGINT or SIGTERM, then stop cleanly."""
    cluster = LocalCluster(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await cluster.start()
    await stop.wait()
    log.info("shutting down")
    await cluster.stop()


def run(settings: ServeSettings) -> None:
    """Blocking entry point for ``syrup cluster serve``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve_until_signal(settings))
    except syrup_errors.SyrupError as exc:
        log.error("local cluster failed", error=str(exc))
        raise SystemExit(1) from exc


__all__ = ["KUBE_VERSION", "ClusterApp", "LocalCluster", "ServeSettings", "__version__", "run"]
