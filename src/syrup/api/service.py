"""What the REST API does, over the GitOps controller's cache and the Kubernetes API.

Reads come from the controller's watch-based cache (cheap, and exactly what the controller
sees); writes go to the cluster as Argo CD's API server makes them, so the controller reacts
to them like to any ``kubectl`` change:

* create/update/delete write the ``Application`` (delete with cascade keeps the
  ``resources-finalizer.argocd.argoproj.io`` finalizer, without cascade removes it first);
* sync and rollback write ``operation.sync``; refresh writes the
  ``argocd.argoproj.io/refresh`` annotation *and* nudges the in-process controller at once;
  terminate marks the running operation ``Terminating`` and clears ``operation``;
* repositories and clusters are Secrets in the apps' namespace labelled
  ``argocd.argoproj.io/secret-type: repository|cluster``, as Argo CD stores them.

Bad input raises :class:`errors.InvalidInput` naming the field before anything is written.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syrup import errors, logs
from syrup.gitops import clusters, credentials, diff, models, projects, sync
from syrup.gitops import controller as gcontroller
from syrup.kube import cache as kcache
from syrup.kube import client as kclient
from syrup.kube import errors as kerrors

_log = logs.get(__name__)

Obj = dict[str, Any]
SECRET_TYPE = "argocd.argoproj.io/secret-type"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_OWNED_KINDS = (
    ("apps", "ReplicaSet"),
    ("", "Pod"),
    ("batch", "Job"),
    ("apps", "ControllerRevision"),
)


@dataclass(frozen=True)
class AppFilter:
    """``GET /api/v1/applications`` query filters (all optional, combined with AND)."""

    projects: tuple[str, ...] = ()
    dest_namespace: str = ""
    health: str = ""
    sync: str = ""
    selector: str = ""
    search: str = ""
    repo: str = ""


@dataclass(frozen=True)
class SyncRequest:
    revision: str = ""
    prune: bool = False
    dry_run: bool = False
    options: tuple[str, ...] = ()
    resources: tuple[Mapping[str, str], ...] = ()
    #: Who asked (recorded as ``initiatedBy.username`` in the operation and history).
    username: str = "syrup-api"


def _repo_urls(spec: Mapping[str, Any]) -> list[str]:
    """The repoURL of each source: ``spec.sources`` when given, else ``spec.source``."""
    many = spec.get("sources")
    listed = many if isinstance(many, list) and many else [spec.get("source")]
    return [str(s.get("repoURL") or "") for s in listed if isinstance(s, Mapping)]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _labels_match(labels: Mapping[str, Any], selector: str) -> bool:
    """Equality selectors as kubectl writes them: ``a=b,c!=d,e``."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.strip().rstrip("=")) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def matches(app: Mapping[str, Any], f: AppFilter) -> bool:
    spec = app.get("spec") or {}
    status = app.get("status") or {}
    meta = _meta(app)
    if f.projects and (spec.get("project") or "default") not in f.projects:
        return False
    if f.dest_namespace and (spec.get("destination") or {}).get("namespace") != f.dest_namespace:
        return False
    if f.health and (status.get("health") or {}).get("status", "Unknown") != f.health:
        return False
    if f.sync and (status.get("sync") or {}).get("status", "Unknown") != f.sync:
        return False
    if f.repo and f.repo not in _repo_urls(spec):
        return False
    if f.selector and not _labels_match(meta.get("labels") or {}, f.selector):
        return False
    return not (f.search and f.search.lower() not in str(meta.get("name", "")).lower())


def _mask_secret(obj: Obj | None) -> Obj | None:
    """A Secret with every value replaced, so no API answer carries secret data."""
    if obj is None or obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), Mapping):
            out[field] = {k: "++++++++" for k in out[field]}
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


class Service:
    """The API's operations, bound to one running controller."""

    def __init__(self, ctl: gcontroller.Controller, *, namespace: str = "argocd") -> None:
        self.ctl = ctl
        self.namespace = namespace
        #: Bumped on every Application change: answers computed at one version can be reused.
        self.apps_version = 0

    def on_change(
        self, key: kcache.Key, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        if key.kind == "Application" and key.group == models.GROUP:
            self.apps_version += 1

    @property
    def cache(self) -> kcache.LiveCache:
        return self.ctl.cache

    @property
    def client(self) -> kclient.Client:
        return self.ctl.client

    def _res(self, api_version: str, kind: str) -> kclient.ApiResource:
        res = self.cache.discovery.find(api_version, kind)
        if res is None:
            raise errors.Unavailable(f"the cluster does not serve {kind} ({api_version})")
        return res

    def _app_ns(self, namespace: str | None) -> str:
        ns = namespace or self.namespace
        if ns not in self.ctl.settings.namespaces:
            raise errors.InvalidInput(
                f"applications are served in {', '.join(self.ctl.settings.namespaces)} only",
                where="appNamespace",
            )
        return ns

    # -- applications: reads ----------------------------------------------------------------

    def applications(self) -> list[Obj]:
        return [
            o
            for o in self.cache.of_kind(models.GROUP, "Application")
            if _meta(o).get("namespace") in self.ctl.settings.namespaces
        ]

    def list_apps(self, f: AppFilter) -> list[Obj]:
        items = [a for a in self.applications() if matches(a, f)]
        items.sort(key=lambda a: (str(_meta(a).get("namespace")), str(_meta(a).get("name"))))
        return items

    def get_app(self, namespace: str | None, name: str) -> Obj:
        ns = self._app_ns(namespace)
        obj = self.cache.get(kcache.Key(models.GROUP, "Application", ns, name))
        if obj is None:
            raise errors.NotFound(f"application {ns}/{name} not found")
        return obj

    def project_of(self, namespace: str | None, name: str) -> str:
        """The project an app belongs to (for RBAC objects); 'default' when it does not exist."""
        ns = namespace or self.namespace
        obj = self.cache.get(kcache.Key(models.GROUP, "Application", ns, name))
        return str(((obj or {}).get("spec") or {}).get("project") or "default")

    def history(self, namespace: str | None, name: str) -> list[Obj]:
        return list((self.get_app(namespace, name).get("status") or {}).get("history") or [])

    def manifests(self, namespace: str | None, name: str) -> list[Obj]:
        app = self.get_app(namespace, name)
        state = self.ctl.states.get(f"{_meta(app)['namespace']}/{name}")
        if state is None or state.result is None:
            raise errors.Unavailable(f"application {name} has not been rendered yet")
        return [m for m in (_mask_secret(dict(m)) for m in state.result.manifests) if m]

    def _destination(self, app: Mapping[str, Any]) -> clusters.Connection:
        """The cluster an app's resources live on (its destination, as last reconciled)."""
        state = self.ctl.states.get(f"{_meta(app)['namespace']}/{_meta(app)['name']}")
        return (state.conn if state is not None else None) or self.ctl.clusters.local

    def tree(self, namespace: str | None, name: str) -> Obj:
        """Application → its resources → what they own (ReplicaSets, Pods, Jobs), by owner uid."""
        app = self.get_app(namespace, name)
        live_cache = self._destination(app).cache
        rows = (app.get("status") or {}).get("resources") or []
        children: dict[str, list[Obj]] = {}
        for group, kind in _OWNED_KINDS:
            for obj in live_cache.of_kind(group, kind):
                for ref in _meta(obj).get("ownerReferences") or []:
                    children.setdefault(str(ref.get("uid")), []).append(obj)
        nodes: list[Obj] = []

        def add(obj: Mapping[str, Any], parent: Obj | None, row: Mapping[str, Any] | None) -> None:
            meta = _meta(obj)
            api_version = str(obj.get("apiVersion", ""))
            node: Obj = {
                "group": api_version.rpartition("/")[0],
                "version": api_version.rpartition("/")[2],
                "kind": obj.get("kind"),
                "namespace": meta.get("namespace", ""),
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "parentRefs": [_ref(parent)] if parent else [],
                "health": (row or {}).get("health") or _health_of(obj),
                "createdAt": meta.get("creationTimestamp"),
            }
            if row is not None:
                node["status"] = row.get("status")
            if obj.get("kind") == "Pod":
                node["info"] = [{"name": "phase", "value": (obj.get("status") or {}).get("phase")}]
            nodes.append(node)
            if len(nodes) < 5000:
                for child in children.get(str(meta.get("uid")), []):
                    add(child, node, None)

        for row in rows:
            key = kcache.Key(
                str(row.get("group") or ""),
                str(row.get("kind")),
                str(row.get("namespace") or ""),
                str(row.get("name")),
            )
            live = live_cache.get(key)
            if live is None:
                nodes.append(
                    {
                        "group": key.group,
                        "version": row.get("version", ""),
                        "kind": key.kind,
                        "namespace": key.namespace,
                        "name": key.name,
                        "parentRefs": [],
                        "status": row.get("status"),
                        "health": row.get("health") or {"status": "Missing"},
                    }
                )
            else:
                add(live, None, row)
        return {"nodes": nodes}

    def resource(
        self, namespace: str | None, name: str, *, group: str, kind: str, rns: str, rname: str
    ) -> Obj:
        """One resource of an app: its live object (Secrets masked)."""
        app = self.get_app(namespace, name)
        live = self._destination(app).cache.get(kcache.Key(group, kind, rns, rname))
        if live is None:
            raise errors.NotFound(f"{kind} {rns}/{rname} not found")
        return {"manifest": _mask_secret(live)}

    async def managed_resources(self, namespace: str | None, name: str) -> list[Obj]:
        """Each resource Git asks for: live, desired (as the server would store it) and diff;
        then each live resource waiting to be pruned, with no desired state."""
        app = self.get_app(namespace, name)
        state = self.ctl.states.get(f"{_meta(app)['namespace']}/{name}")
        if state is None:
            return []
        rows = {
            (r.get("group") or "", r.get("kind"), r.get("namespace") or "", r.get("name")): r
            for r in (app.get("status") or {}).get("resources") or []
        }

        conn = self._destination(app)

        async def one(target: sync.Target) -> Obj:
            live = conn.cache.get(target.key)
            predicted: Obj | None = None
            message = ""
            if target.res is not None:
                try:
                    predicted = await conn.comparer.predicted(target)
                except kerrors.ApiError as exc:
                    message = exc.message
            key = target.key
            row = rows.get((key.group, key.kind, key.namespace, key.name)) or {}
            desired = predicted if predicted is not None else target.obj
            text = diff.unified(live, desired, name=target.display) if live != desired else ""
            return {
                "group": key.group,
                "kind": key.kind,
                "namespace": key.namespace,
                "name": key.name,
                "status": row.get("status", "OutOfSync" if live is None else "Unknown"),
                "health": row.get("health"),
                "hook": target.hook,
                "liveState": _mask_secret(diff.normalize(live) if live else None),
                "targetState": _mask_secret(diff.normalize(desired)),
                "diff": text,
                "message": message,
            }

        targets = [t for t in state.targets if not t.hook]
        items = list(await asyncio.gather(*(one(t) for t in targets)))
        # Live objects of the app that Git no longer has: a sync with prune deletes them.
        for (group, kind, ns, res_name), row in rows.items():
            if not row.get("requiresPruning"):
                continue
            live = conn.cache.get(kcache.Key(group, str(kind), ns, str(res_name)))
            if live is None:
                continue
            display = f"{str(kind).lower()}{'.' + group if group else ''}/{res_name}"
            items.append(
                {
                    "group": group,
                    "kind": kind,
                    "namespace": ns,
                    "name": res_name,
                    "status": row.get("status", "OutOfSync"),
                    "health": row.get("health"),
                    "hook": False,
                    "requiresPruning": True,
                    "liveState": _mask_secret(diff.normalize(live)),
                    "targetState": None,
                    "diff": diff.unified(live, None, name=display),
                    "message": "",
                }
            )
        return items

    async def events(self, namespace: str | None, name: str) -> list[Obj]:
        """Events of the app and of every object in its tree (newest last).

        The app's own events live on the controller's cluster; its resources' events live on
        its destination, which may be another cluster.
        """
        app = self.get_app(namespace, name)
        nodes = self.tree(namespace, name)["nodes"]
        uids = {str(n.get("uid")) for n in nodes if n.get("uid")}
        uids.add(str(_meta(app).get("uid")))
        dest = self._destination(app)
        wanted: list[tuple[kclient.Client, kcache.LiveCache, set[str]]] = [
            (self.client, self.cache, {str(_meta(app).get("namespace"))})
        ]
        node_namespaces = {str(n["namespace"]) for n in nodes if n.get("namespace")}
        if dest.client is self.client:
            wanted[0][2].update(node_namespaces)
        else:
            wanted.append((dest.client, dest.cache, node_namespaces))
        out: list[Obj] = []
        for client, live_cache, namespaces in wanted:
            res = live_cache.discovery.find("v1", "Event")
            if res is None:
                continue
            for ns in sorted(namespaces):
                try:
                    items, _ = await client.list(res, namespace=ns)
                except kerrors.ApiError as exc:
                    _log.warning("listing events failed", namespace=ns, error=exc.message)
                    continue
                out += [e for e in items if str((e.get("involvedObject") or {}).get("uid")) in uids]
        out.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return out

    # -- applications: writes ---------------------------------------------------------------

    def validate_app(self, body: Any, *, namespace: str | None, name: str | None = None) -> Obj:
        """A complete Application object from a request body, or :class:`InvalidInput`."""
        if not isinstance(body, Mapping):
            raise errors.InvalidInput("expected a JSON object", where="body")
        obj: Obj = {k: v for k, v in body.items() if k not in ("status", "operation")}
        obj["apiVersion"] = models.API_VERSION
        obj["kind"] = "Application"
        meta = dict(obj.get("metadata") or {}) if isinstance(obj.get("metadata"), Mapping) else None
        if meta is None:
            raise errors.InvalidInput("expected an object with a name", where="metadata")
        if name is not None:
            if meta.get("name") not in (None, name):
                raise errors.InvalidInput(f"does not match the URL ({name})", where="metadata.name")
            meta["name"] = name
        app_name = meta.get("name")
        if not isinstance(app_name, str) or not _DNS1123.match(app_name):
            raise errors.InvalidInput(
                "must be a DNS-1123 label (lower-case letters, digits and '-')",
                where="metadata.name",
            )
        meta["namespace"] = self._app_ns(namespace or meta.get("namespace"))
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            meta.pop(field, None)
        obj["metadata"] = meta
        try:
            app = models.parse_application(obj)
        except errors.InvalidInput:
            raise
        if not app.source.repo_url:
            raise errors.InvalidInput("is required", where="spec.source.repoURL")
        if not (app.destination.server or app.destination.name):
            raise errors.InvalidInput("server or name is required", where="spec.destination")
        project = self.cache.get(kcache.Key(models.GROUP, "AppProject", app.namespace, app.project))
        if project is None:
            raise errors.InvalidInput(
                f"AppProject {app.project!r} does not exist", where="spec.project"
            )
        violations = projects.parse(project).check_app(
            repos=app.repo_urls,
            server=app.destination.server,
            name=app.destination.name,
            namespace=app.destination.namespace,
        )
        if violations:
            raise errors.InvalidInput(
                "; ".join(v.condition()["message"] for v in violations), where="spec"
            )
        return obj

    async def create_app(self, body: Any, *, namespace: str | None, upsert: bool) -> Obj:
        obj = self.validate_app(body, namespace=namespace)
        meta = obj["metadata"]
        existing = self.cache.get(
            kcache.Key(models.GROUP, "Application", meta["namespace"], meta["name"])
        )
        if existing is not None and not upsert:
            if existing.get("spec") == obj.get("spec"):
                return existing
            raise errors.InvalidInput(
                f"application {meta['name']} exists with a different spec (use upsert)",
                where="metadata.name",
            )
        res = self._res(models.API_VERSION, "Application")
        if existing is not None:
            created = await self.client.merge_patch(
                res,
                namespace=meta["namespace"],
                name=meta["name"],
                patch=gcontroller.merge_patch(_writable(existing), obj),
            )
        else:
            created = await self.client.create(res, obj, field_manager="syrup-api")
        self.cache.record(created)
        return created

    async def update_app(self, namespace: str | None, name: str, body: Any) -> Obj:
        current = self.get_app(namespace, name)
        obj = self.validate_app(body, namespace=str(_meta(current)["namespace"]), name=name)
        res = self._res(models.API_VERSION, "Application")
        patch = gcontroller.merge_patch(_writable(current), obj)
        if not patch:
            return current
        updated = await self.client.merge_patch(
            res, namespace=obj["metadata"]["namespace"], name=name, patch=patch
        )
        self.cache.record(updated)
        return updated

    async def delete_app(self, namespace: str | None, name: str, *, cascade: bool) -> None:
        app = self.get_app(namespace, name)
        ns = str(_meta(app)["namespace"])
        res = self._res(models.API_VERSION, "Application")
        finalizers = list(_meta(app).get("finalizers") or [])
        wanted = [f for f in finalizers if f != gcontroller.FINALIZER]
        if cascade:
            wanted.append(gcontroller.FINALIZER)
        if sorted(wanted) != sorted(finalizers):
            await self.client.merge_patch(
                res, namespace=ns, name=name, patch={"metadata": {"finalizers": wanted}}
            )
        await self.client.delete(res, namespace=ns, name=name, propagation="Background")
        _log.info("application deleted", app=f"{ns}/{name}", cascade=cascade)

    async def sync(self, namespace: str | None, name: str, req: SyncRequest) -> Obj:
        app = self.get_app(namespace, name)
        ns = str(_meta(app)["namespace"])
        phase = ((app.get("status") or {}).get("operationState") or {}).get("phase")
        if app.get("operation") is not None or phase == "Running":
            raise errors.InvalidInput("another operation is already in progress", where="operation")
        for i, r in enumerate(req.resources):
            if not r.get("kind") or not r.get("name"):
                raise errors.InvalidInput("kind and name are required", where=f"resources[{i}]")
        op: Obj = {
            "sync": {
                "revision": req.revision,
                "prune": req.prune,
                **({"dryRun": True} if req.dry_run else {}),
                **({"syncOptions": list(req.options)} if req.options else {}),
                **({"resources": [dict(r) for r in req.resources]} if req.resources else {}),
            },
            "initiatedBy": {"username": req.username},
        }
        res = self._res(models.API_VERSION, "Application")
        updated = await self.client.merge_patch(
            res, namespace=ns, name=name, patch={"operation": op}
        )
        self.cache.record(updated)
        _log.info("sync requested", app=f"{ns}/{name}", prune=req.prune, dry_run=req.dry_run)
        return updated

    async def rollback(
        self,
        namespace: str | None,
        name: str,
        *,
        history_id: int,
        prune: bool,
        dry_run: bool,
        username: str = "syrup-api",
    ) -> Obj:
        app = self.get_app(namespace, name)
        if ((app.get("spec") or {}).get("syncPolicy") or {}).get("automated") is not None:
            raise errors.InvalidInput(
                "rollback cannot be initiated when auto-sync is enabled", where="spec.syncPolicy"
            )
        entries = {int(h.get("id", -1)): h for h in self.history(namespace, name)}
        entry = entries.get(history_id)
        if entry is None:
            raise errors.InvalidInput(f"no history entry {history_id}", where="id")
        return await self.sync(
            namespace,
            name,
            SyncRequest(
                revision=str(entry.get("revision") or ""),
                prune=prune,
                dry_run=dry_run,
                username=username,
            ),
        )

    async def refresh(self, namespace: str | None, name: str, *, hard: bool) -> Obj:
        app = self.get_app(namespace, name)
        ns = str(_meta(app)["namespace"])
        res = self._res(models.API_VERSION, "Application")
        kind = "hard" if hard else "normal"
        patch = {"metadata": {"annotations": {models.REFRESH_ANNOTATION: kind}}}
        updated = await self.client.merge_patch(res, namespace=ns, name=name, patch=patch)
        self.cache.record(updated)
        self.ctl.refresh(ns, name)
        return updated

    async def terminate(self, namespace: str | None, name: str) -> None:
        app = self.get_app(namespace, name)
        ns = str(_meta(app)["namespace"])
        op_state = (app.get("status") or {}).get("operationState") or {}
        if app.get("operation") is None and op_state.get("phase") != "Running":
            raise errors.InvalidInput("no operation is in progress", where="operation")
        res = self._res(models.API_VERSION, "Application")
        patch: Obj = {"operation": None}
        if op_state.get("phase") == "Running":
            patch["status"] = {"operationState": {"phase": "Terminating"}}
        await self.client.merge_patch(res, namespace=ns, name=name, patch=patch)

    # -- projects -------------------------------------------------------------------------

    def projects(self) -> list[Obj]:
        return sorted(
            (
                p
                for p in self.cache.of_kind(models.GROUP, "AppProject")
                if _meta(p).get("namespace") == self.namespace
            ),
            key=lambda p: str(_meta(p).get("name")),
        )

    def get_project(self, name: str) -> Obj:
        obj = self.cache.get(kcache.Key(models.GROUP, "AppProject", self.namespace, name))
        if obj is None:
            raise errors.NotFound(f"project {name} not found")
        return obj

    def _validate_project(self, body: Any, *, name: str | None) -> Obj:
        if not isinstance(body, Mapping):
            raise errors.InvalidInput("expected a JSON object", where="body")
        meta = dict(body.get("metadata") or {})
        if name is not None:
            meta["name"] = name
        if not isinstance(meta.get("name"), str) or not _DNS1123.match(meta["name"]):
            raise errors.InvalidInput("must be a DNS-1123 label", where="metadata.name")
        meta = {k: v for k, v in meta.items() if k in ("name", "labels", "annotations")}
        meta["namespace"] = self.namespace
        obj = {
            "apiVersion": models.API_VERSION,
            "kind": "AppProject",
            "metadata": meta,
            "spec": body.get("spec") or {},
        }
        projects.parse(obj)
        return obj

    async def create_project(self, body: Any, *, upsert: bool) -> Obj:
        obj = self._validate_project(body, name=None)
        name = obj["metadata"]["name"]
        res = self._res(models.API_VERSION, "AppProject")
        exists = self.cache.get(kcache.Key(models.GROUP, "AppProject", self.namespace, name))
        if exists is not None and not upsert:
            raise errors.InvalidInput(f"project {name} already exists", where="metadata.name")
        out = await self.client.apply(res, obj, field_manager="syrup-api")
        self.cache.record(out)
        return out

    async def update_project(self, name: str, body: Any) -> Obj:
        self.get_project(name)
        obj = self._validate_project(body, name=name)
        out = await self.client.apply(
            self._res(models.API_VERSION, "AppProject"), obj, field_manager="syrup-api"
        )
        self.cache.record(out)
        return out

    async def delete_project(self, name: str) -> None:
        self.get_project(name)
        users = [a for a in self.applications() if (a.get("spec") or {}).get("project") == name]
        if users:
            raise errors.InvalidInput(
                f"project is used by {len(users)} application(s)", where="metadata.name"
            )
        await self.client.delete(
            self._res(models.API_VERSION, "AppProject"),
            namespace=self.namespace,
            name=name,
            propagation="Background",
        )
        self.cache.forget(kcache.Key(models.GROUP, "AppProject", self.namespace, name))

    # -- repositories and clusters (Argo CD's labelled Secrets) ---------------------------

    def _secrets(self, kind: str) -> list[Obj]:
        return [
            s
            for s in self.cache.of_kind("", "Secret")
            if _meta(s).get("namespace") == self.namespace
            and (_meta(s).get("labels") or {}).get(SECRET_TYPE) == kind
        ]

    def repositories(self) -> list[Obj]:
        return sorted((_repo_view(s) for s in self._secrets("repository")), key=lambda r: r["repo"])

    def repository_secret(self, url: str) -> Obj | None:
        for s in self._secrets("repository"):
            if _decode(s).get("url") == url:
                return s
        return None

    async def add_repository(self, body: Any, *, upsert: bool) -> Obj:
        repo = _repo_body(body)
        if self.repository_secret(repo["url"]) is not None and not upsert:
            raise errors.InvalidInput(f"repository {repo['url']} already exists", where="repo")
        await test_repository(repo)
        name = "repo-" + _short_hash(repo["url"])
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {SECRET_TYPE: "repository"},
            },
            "type": "Opaque",
            "stringData": {k: v for k, v in repo.items() if v},
        }
        out = await self.client.apply(self._res("v1", "Secret"), secret, field_manager="syrup-api")
        self.cache.record(out)
        return _repo_view(out)

    async def delete_repository(self, url: str) -> None:
        secret = self.repository_secret(url)
        if secret is None:
            raise errors.NotFound(f"repository {url} not found")
        await self.client.delete(
            self._res("v1", "Secret"),
            namespace=self.namespace,
            name=str(_meta(secret)["name"]),
            propagation="Background",
        )
        self.cache.forget(kcache.key_of(secret))

    def clusters(self) -> list[Obj]:
        local = {
            "server": models.IN_CLUSTER_SERVER,
            "name": models.IN_CLUSTER_NAME,
            "connectionState": {"status": "Successful"},
            "serverVersion": self.cache.discovery.server_version,
        }
        others = []
        connected = set(self.ctl.clusters.connected())
        for s in self._secrets("cluster"):
            server, name = credentials.cluster_identity(s)
            # The Secrets are the one registry; the controller says which ones it watches now.
            state: Obj = {"status": "Successful"}
            try:
                credentials.cluster(s)
            except credentials.InvalidCredentials as exc:
                state = {"status": "Failed", "message": str(exc)}
            else:
                if server.rstrip("/") not in connected:
                    state = {
                        "status": "Unknown",
                        "message": "not connected: no application deploys to it",
                    }
            others.append({"server": server, "name": name, "connectionState": state})
        return [local, *sorted(others, key=lambda c: str(c["server"]))]

    async def add_cluster(self, body: Any) -> Obj:
        if not isinstance(body, Mapping):
            raise errors.InvalidInput("expected a JSON object", where="body")
        server, name = body.get("server"), body.get("name")
        if not isinstance(server, str) or not server.startswith("https://"):
            raise errors.InvalidInput("must be an https:// URL", where="server")
        if not isinstance(name, str) or not _DNS1123.match(name):
            raise errors.InvalidInput("must be a DNS-1123 label", where="name")
        if server == models.IN_CLUSTER_SERVER or name == models.IN_CLUSTER_NAME:
            raise errors.InvalidInput("the in-cluster destination always exists", where="server")
        config = body.get("config") or {}
        if not isinstance(config, Mapping):
            raise errors.InvalidInput("expected an object", where="config")
        import json as _json

        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "cluster-" + _short_hash(server),
                "namespace": self.namespace,
                "labels": {SECRET_TYPE: "cluster"},
            },
            "type": "Opaque",
            "stringData": {"server": server, "name": name, "config": _json.dumps(dict(config))},
        }
        out = await self.client.apply(self._res("v1", "Secret"), secret, field_manager="syrup-api")
        self.cache.record(out)
        return {"server": server, "name": name}

    async def delete_cluster(self, server: str) -> None:
        for s in self._secrets("cluster"):
            if _decode(s).get("server") == server:
                await self.client.delete(
                    self._res("v1", "Secret"),
                    namespace=self.namespace,
                    name=str(_meta(s)["name"]),
                    propagation="Background",
                )
                self.cache.forget(kcache.key_of(s))
                return
        raise errors.NotFound(f"cluster {server} not found")


def _ref(node: Mapping[str, Any]) -> Obj:
    return {k: node.get(k) for k in ("group", "kind", "namespace", "name", "uid")}


def _writable(obj: Mapping[str, Any]) -> Obj:
    """The parts of an object a client writes (for merge patches against a full body)."""
    meta = _meta(obj)
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "labels", "annotations", "finalizers")
            if k in meta
        },
        "spec": obj.get("spec"),
    }


def _health_of(obj: Mapping[str, Any]) -> Obj:
    from syrup.gitops import health

    return health.assess(obj).to_json()


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _decode(secret: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value)).decode()
        except ValueError:
            continue
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = str(value)
    return out


def _repo_view(secret: Mapping[str, Any]) -> Obj:
    data = _decode(secret)
    return {
        "repo": data.get("url", ""),
        "type": data.get("type", "git"),
        "username": data.get("username", ""),
        "hasCredentials": bool(data.get("password") or data.get("sshPrivateKey")),
        "connectionState": {"status": "Successful"},
    }


def _repo_body(body: Any) -> dict[str, str]:
    if not isinstance(body, Mapping):
        raise errors.InvalidInput("expected a JSON object", where="body")
    url = body.get("repo")
    if not isinstance(url, str) or not url.strip():
        raise errors.InvalidInput("is required", where="repo")
    out = {"url": url.strip(), "type": "git"}
    for field in ("username", "password", "sshPrivateKey"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise errors.InvalidInput("must be a string", where=field)
        if value:
            out[field] = value
    if "password" in out and "username" not in out:
        raise errors.InvalidInput("is required with a password", where="username")
    return out


async def test_repository(repo: Mapping[str, str]) -> None:
    """``git ls-remote`` with the given credentials; :class:`InvalidInput` says why it failed."""
    url = repo["url"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
    with tempfile.TemporaryDirectory(prefix="syrup-repo-") as tmp:
        if repo.get("password"):
            # Credentials reach git through an askpass script reading the environment, so they
            # never appear on a command line or in a URL that could be logged.
            askpass = os.path.join(tmp, "askpass")
            with open(askpass, "w") as fh:
                fh.write(
                    '#!/bin/sh\ncase "$1" in Username*) echo "$SYRUP_GIT_USER";;'
                    ' *) echo "$SYRUP_GIT_PASS";; esac\n'
                )
            os.chmod(askpass, 0o700)
            env |= {
                "GIT_ASKPASS": askpass,
                "SYRUP_GIT_USER": repo.get("username", ""),
                "SYRUP_GIT_PASS": repo["password"],
            }
        else:
            env["GIT_ASKPASS"] = "true"
        if repo.get("sshPrivateKey"):
            key = os.path.join(tmp, "id")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(repo["sshPrivateKey"].rstrip("\n") + "\n")
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {key} -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
            )
        proc = await asyncio.create_subprocess_exec(
            "git",
            "-c",
            "protocol.file.allow=always",
            "ls-remote",
            "--heads",
            "--",
            url,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise errors.InvalidInput("timed out after 30s", where="repo") from exc
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise errors.InvalidInput(
            f"cannot reach {url}: {' '.join(lines[-2:]) or 'git failed'}", where="repo"
        )
