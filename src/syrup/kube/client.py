"""An async Kubernetes client over a kubeconfig: discovery, get/list/watch, apply, delete.

The kubeconfig is read by lightkube's loader (contexts, tokens, client certificates, exec
plugins) and requests go through the ``httpx.AsyncClient`` it configures. Resources are plain
dicts addressed through discovery (:class:`ApiResource`), so custom resources need no
generated models: the GitOps controller applies whatever kinds a repository holds.

Server-side apply sends the object as JSON (valid YAML) with
``application/apply-patch+yaml``; ``dryRun=All`` gives what the server would store.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the httpx fork lightkube builds its clients on
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig

from syrup import errors, logs
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class ApiResource:
    """One resource type as discovery lists it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_kind(self) -> tuple[str, str]:
        return (self.group, self.kind)

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        return base


@dataclass(frozen=True)
class Discovery:
    """Every served resource type, indexed by apiVersion+kind, plus the server version."""

    resources: tuple[ApiResource, ...]
    preferred: Mapping[str, str]  # group -> preferred version
    server_version: str

    def find(self, api_version: str, kind: str) -> ApiResource | None:
        for res in self.resources:
            if res.api_version == api_version and res.kind == kind:
                return res
        return None

    def by_group_kind(self, group: str, kind: str) -> ApiResource | None:
        """The preferred version's type for a group+kind (for reading, watching)."""
        candidates = [r for r in self.resources if r.group == group and r.kind == kind]
        for res in candidates:
            if res.version == self.preferred.get(group):
                return res
        return candidates[0] if candidates else None

    def watchable(self) -> list[ApiResource]:
        """One version per group+kind that can be listed and watched."""
        out = []
        seen: set[tuple[str, str]] = set()
        for res in self.resources:
            if not {"list", "watch"} <= res.verbs:
                continue
            best = self.by_group_kind(res.group, res.kind)
            if best is None or best.group_kind in seen:
                continue
            seen.add(best.group_kind)
            out.append(best)
        return out

    def api_versions(self) -> list[str]:
        """Helm capabilities: every ``group/version`` and ``group/version/Kind``."""
        out = set()
        for res in self.resources:
            out.add(res.api_version)
            out.add(f"{res.api_version}/{res.kind}")
        return sorted(out)


def _error_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:500]}


class Client:
    """Async client bound to one kubeconfig context."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        server: str,
        namespace: str,
        watch_http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http
        #: Watches hold a connection each for minutes; they get their own pool so requests
        #: never queue behind them, and the request pool stays small (cheap to schedule).
        self.watch_http = watch_http or http
        self.server = server
        self.namespace = namespace
        #: Requests sent, by method ("PATCH dry-run" counted apart): for metrics and benchmarks.
        self.requests: Counter[str] = Counter()

    @classmethod
    def from_kubeconfig(cls, path: Path | None, *, context: str | None = None) -> Client:
        try:
            config = KubeConfig.from_file(path) if path else KubeConfig.from_env()
        except Exception as exc:
            where = str(path) if path else "kubeconfig"
            raise errors.ConfigError(f"{where}: cannot load kubeconfig: {exc}") from exc
        return cls._connect(config, context=context, where=str(path or "kubeconfig"))

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, context: str | None = None, where: str = "kubeconfig"
    ) -> Client:
        """A client from a kubeconfig held in memory (a destination cluster's Secret).

        Nothing is written to disk; ``where`` names the source in errors, which never quote
        the configuration itself (it holds credentials).
        """
        try:
            loaded = KubeConfig.from_dict(dict(config))
        except Exception as exc:
            # NB: the loader's message may quote the document; only its type is safe to show.
            raise errors.ConfigError(
                f"{where}: cannot load kubeconfig ({type(exc).__name__})"
            ) from None
        return cls._connect(loaded, context=context, where=where)

    @classmethod
    def _connect(cls, config: KubeConfig, *, context: str | None, where: str) -> Client:
        try:
            single = config.get(context_name=context)
        except Exception as exc:
            raise errors.ConfigError(f"{where}: cannot load kubeconfig: {exc}") from exc
        if single is None:
            raise errors.ConfigError(f"{where}: context {context!r} not found")
        params = client_adapter.ConnectionParams(
            timeout=httpx.Timeout(30, connect=10), trust_env=False
        )
        # lightkube's adapter resolves TLS and auth from the kubeconfig. Requests share a small
        # pool (the pool's scheduler scans every connection per request, so a large one costs
        # CPU at scale); watches, one long-lived stream per resource type, get their own.
        try:
            http_params = params.httpx_params(single)
        except Exception as exc:
            # A bad certificate or key: say which kind of error, never the material itself.
            raise errors.ConfigError(
                f"{where}: unusable TLS or auth settings ({type(exc).__name__})"
            ) from None
        http = httpx.AsyncClient(
            **http_params,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        watch_http = httpx.AsyncClient(
            **http_params,
            limits=httpx.Limits(max_connections=400, max_keepalive_connections=400),
        )
        return cls(
            http, server=single.cluster.server, namespace=single.namespace, watch_http=watch_http
        )

    async def close(self) -> None:
        await self.http.aclose()
        if self.watch_http is not self.http:
            await self.watch_http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        dry = params is not None and params.get("dryRun") == "All"
        self.requests[f"{method} dry-run" if dry else method] += 1
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = await self.http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise kerrors.Unreachable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            raise kerrors.from_status(
                response.status_code,
                _error_body(response),
                fallback=f"{method} {path}: HTTP {response.status_code}",
            )
        return response.json() if response.content else None

    # -- discovery ------------------------------------------------------------------------

    async def discover(self) -> Discovery:
        resources: list[ApiResource] = []
        preferred: dict[str, str] = {"": "v1"}
        core = await self.request("GET", "/api")
        group_versions = [("", v) for v in core.get("versions", [])]
        groups = await self.request("GET", "/apis")
        for group in groups.get("groups", []):
            name = group["name"]
            preferred[name] = (group.get("preferredVersion") or {}).get("version", "")
            group_versions.extend((name, v["version"]) for v in group.get("versions", []))
        for group, version in group_versions:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = await self.request("GET", path)
            except kerrors.NotFound:
                continue
            for item in listing.get("resources", []):
                if "/" in item["name"]:
                    continue
                resources.append(
                    ApiResource(
                        group=group,
                        version=version,
                        kind=item["kind"],
                        plural=item["name"],
                        namespaced=bool(item.get("namespaced")),
                        verbs=frozenset(item.get("verbs", [])),
                    )
                )
        version = await self.request("GET", "/version")
        return Discovery(
            resources=tuple(resources),
            preferred=preferred,
            server_version=str(version.get("gitVersion", "v1.30.0")),
        )

    # -- reads ----------------------------------------------------------------------------

    async def get(self, res: ApiResource, *, namespace: str | None, name: str) -> Obj:
        out: Obj = await self.request("GET", res.path(namespace, name))
        return out

    async def list(
        self, res: ApiResource, *, namespace: str | None = None
    ) -> tuple[list[Obj], str]:
        """Every object of a type and the list's resourceVersion (to start a watch from)."""
        items: list[Obj] = []
        params: dict[str, str] = {"limit": "500"}
        while True:
            page = await self.request("GET", res.path(namespace), params=params)
            for item in page.get("items", []):
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = meta["continue"]

    async def watch(
        self, res: ApiResource, *, resource_version: str, timeout: int = 300
    ) -> AsyncIterator[tuple[str, Obj]]:
        """``(type, object)`` events from ``resource_version``; ends when the server closes.

        A 410 inside the stream raises :class:`~syrup.kube.errors.Gone`: the caller relists.
        """
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        try:
            async with self.watch_http.stream(
                "GET",
                res.path(),
                params=params,
                timeout=httpx.Timeout(30, read=timeout + 30),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise kerrors.from_status(
                        response.status_code, _error_body(response), fallback="watch failed"
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind = event.get("type", "")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        raise kerrors.from_status(
                            int(obj.get("code") or 500), obj, fallback="watch error"
                        )
                    yield kind, obj
        except httpx.HTTPError as exc:
            raise kerrors.Unreachable(f"watch {res.path()}: {exc!r}") from exc

    # -- writes ---------------------------------------------------------------------------

    async def apply(
        self,
        res: ApiResource,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        dry_run: bool = False,
        force: bool = True,
        validate: bool = True,
    ) -> Obj:
        meta = obj.get("metadata") or {}
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        # Argo CD's Validate=false: unknown or duplicate fields are dropped; otherwise they are
        # an error, as with kubectl (a server's own default only warns).
        params["fieldValidation"] = "Strict" if validate else "Ignore"
        if dry_run:
            params["dryRun"] = "All"
        out: Obj = await self.request(
            "PATCH",
            res.path(meta.get("namespace"), meta["name"]),
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
        )
        return out

    async def create(
        self,
        res: ApiResource,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        dry_run: bool = False,
        validate: bool = True,
    ) -> Obj:
        meta = obj.get("metadata") or {}
        params = {"fieldManager": field_manager}
        params["fieldValidation"] = "Strict" if validate else "Ignore"
        if dry_run:
            params["dryRun"] = "All"
        out: Obj = await self.request(
            "POST", res.path(meta.get("namespace")), params=params, body=obj
        )
        return out

    async def merge_patch(
        self, res: ApiResource, *, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> Obj:
        out: Obj = await self.request(
            "PATCH",
            res.path(namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
        )
        return out

    async def delete(
        self,
        res: ApiResource,
        *,
        namespace: str | None,
        name: str,
        propagation: str = "Foreground",
    ) -> None:
        await self.request(
            "DELETE",
            res.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )
