"""Chart repositories and multi-source apps, end to end: loopback chart repo, real git, cluster.

The chart repository is an ``index.yaml`` and archives served over HTTP on 127.0.0.1, as in
``test_chartrepo.py``; versions are published during a test by packaging and re-indexing.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from helm_python import chart as hchart
from helm_python import registry as hregistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo
from tests.gitops.test_chartrepo import archives, free_port, oci_registry

__all__ = ["archives", "oci_registry"]  # fixtures shared with test_chartrepo

USER, PASSWORD = "charts-reader", "chart-Passw0rd-7"

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
  chart: {{ .Chart.Version | quote }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
data:
  from: chart
"""


class ChartRepo:
    """A Helm repository directory served over HTTP; :meth:`publish` adds a version."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url

    def publish(self, version: str) -> None:
        src = self.root.parent / f"src-{version}" / "demo"
        (src / "templates").mkdir(parents=True)
        (src / "Chart.yaml").write_text(f"apiVersion: v2\nname: demo\nversion: {version}\n")
        (src / "values.yaml").write_text("greeting: hello\n")
        (src / "templates" / "cm.yaml").write_text(TEMPLATE)
        hchart.package(src, destination=self.root, version=version)
        hregistry.repo_index_generate(self.root, base_url=self.url)


def basic_auth(app: ASGIApp, user: str, password: str) -> ASGIApp:
    """Answer 401 to any request without these Basic credentials, as a private repository."""
    expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != expected:
            await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


def serve(tmp_path: Path, auth: tuple[str, str] | None = None) -> Iterator[ChartRepo]:
    root = tmp_path / "charts" / "repo"
    root.mkdir(parents=True)
    port = free_port()
    repo = ChartRepo(root, f"http://127.0.0.1:{port}")
    static = Starlette()
    static.mount("/", StaticFiles(directory=root))
    app: ASGIApp = basic_auth(static, *auth) if auth else static
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield repo
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[ChartRepo]:
    yield from serve(tmp_path)


@pytest.fixture
def private_chart_repo(tmp_path: Path) -> Iterator[ChartRepo]:
    yield from serve(tmp_path, (USER, PASSWORD))


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def app_object(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "project": "default",
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"automated": {}},
            **spec,
        },
    }


def settled(client: Any, ns: str, name: str, check: Callable[[dict[str, Any]], bool]) -> Any:
    def probe() -> dict[str, Any] | None:
        app = harness.get_app(client, ns, name)
        status = app.get("status") or {}
        if (status.get("sync") or {}).get("status") != "Synced":
            return None
        return app if check(status) else None

    return harness.wait_for(f"{ns}/{name}", probe, timeout=60)


def refreshed(running: harness.Running, ns: str, name: str) -> None:
    """Ask for a refresh and wait until the controller has done it."""
    ctl = running.controller
    before = running.run(lambda: ctl.reconciles)
    running.run(lambda: ctl.refresh(ns, name))
    harness.wait_for(
        "the refresh",
        lambda: running.run(
            lambda: (
                ctl.reconciles > before
                and ctl.states[f"{ns}/{name}"].force_refresh is None
                and ctl.idle()
            )
        ),
    )


def configmap(cluster: Cluster, ns: str, name: str) -> dict[str, str]:
    out: dict[str, str] = cluster.kubectl_json("get", "configmap", name, "-n", ns)["data"]
    return out


def test_a_chart_range_resolves_to_the_highest_version_and_a_new_one_is_picked_up(
    cluster: Cluster, ns: str, chart_repo: ChartRepo, running: harness.Running
) -> None:
    for version in ("1.0.0", "1.0.1", "1.1.0"):
        chart_repo.publish(version)
    name = f"{ns}-chart"
    source = {
        "repoURL": chart_repo.url,
        "chart": "demo",
        "targetRevision": "1.0.*",
        "helm": {"parameters": [{"name": "greeting", "value": "hi"}], "releaseName": "r"},
    }
    with cluster.client() as client:
        harness.apply_app(client, app_object(name, ns, source=source))
        status = settled(
            client, ns, name, lambda s: (s.get("sync") or {}).get("revision") == "1.0.1"
        )
        assert status["status"]["history"][-1]["revision"] == "1.0.1"
        assert status["status"]["sourceType"] == "Helm"
        assert configmap(cluster, ns, "r-settings") == {"greeting": "hi", "chart": "1.0.1"}

        # A refresh that finds the same archive renders nothing.
        renders = running.run(lambda: running.controller.renders.renders)
        refreshed(running, ns, name)
        assert running.run(lambda: running.controller.renders.renders) == renders

        chart_repo.publish("1.0.2")
        running.run(lambda: running.controller.refresh(ns, name))
        app = settled(client, ns, name, lambda s: (s.get("sync") or {}).get("revision") == "1.0.2")
        assert [h["revision"] for h in app["status"]["history"]] == ["1.0.1", "1.0.2"]
        assert configmap(cluster, ns, "r-settings")["chart"] == "1.0.2"


def test_an_unknown_chart_version_is_a_comparison_error_naming_what_the_repository_has(
    cluster: Cluster, ns: str, chart_repo: ChartRepo, running: harness.Running
) -> None:
    chart_repo.publish("1.0.0")
    name = f"{ns}-missing"
    source = {"repoURL": chart_repo.url, "chart": "demo", "targetRevision": "^2"}
    with cluster.client() as client:
        harness.apply_app(client, app_object(name, ns, source=source))

        def condition() -> str | None:
            status = harness.get_app(client, ns, name).get("status") or {}
            found = [c for c in status.get("conditions") or [] if c["type"] == "ComparisonError"]
            return found[0]["message"] if found else None

        message = harness.wait_for("a ComparisonError", condition)
    assert "spec.source chart" in message and "available: 1.0.0" in message


def test_a_chart_takes_values_from_a_git_ref_and_a_values_commit_re_syncs_it(
    cluster: Cluster,
    ns: str,
    chart_repo: ChartRepo,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    chart_repo.publish("1.0.0")
    repo = make_repo()
    repo.write("envs/prod.yaml", "greeting: from-git\n")
    repo.write(
        "extra/shared.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\ndata:\n  from: git\n",
    )
    first = repo.commit("values")
    name = f"{ns}-multi"
    sources = [
        {
            "repoURL": chart_repo.url,
            "chart": "demo",
            "targetRevision": "1.0.0",
            "helm": {"valueFiles": ["$values/envs/prod.yaml"], "releaseName": "m"},
        },
        {"repoURL": repo.url, "targetRevision": "HEAD", "ref": "values", "path": "extra"},
    ]
    with cluster.client() as client:
        harness.apply_app(client, app_object(name, ns, sources=sources))
        app = settled(
            client, ns, name, lambda s: (s.get("sync") or {}).get("revisions") == ["1.0.0", first]
        )
        status = app["status"]
        assert "revision" not in status["sync"]
        assert status["sync"]["comparedTo"]["sources"] == sources
        entry = status["history"][-1]
        assert entry["revisions"] == ["1.0.0", first] and entry["sources"] == sources
        assert status["operationState"]["syncResult"]["revisions"] == ["1.0.0", first]
        assert configmap(cluster, ns, "m-settings")["greeting"] == "from-git"
        # Both sources make ConfigMap "shared": the later source's copy is applied, and said.
        assert configmap(cluster, ns, "shared") == {"from": "git"}
        warning = [c for c in status["conditions"] if c["type"] == "RepeatedResourceWarning"]
        assert warning and "ConfigMap" in warning[0]["message"]

        renders = running.run(lambda: running.controller.renders.renders)
        repo.write("envs/prod.yaml", "greeting: changed\n")
        second = repo.commit("new greeting")
        assert running.refresh_repo(repo.url) == 1
        settled(
            client, ns, name, lambda s: (s.get("sync") or {}).get("revisions") == ["1.0.0", second]
        )
        assert configmap(cluster, ns, "m-settings")["greeting"] == "changed"
        # Only the chart renders again (it reads the file); the extra path is carried forward.
        assert running.run(lambda: running.controller.renders.renders) - renders == 1

        # A rollback to the first entry applies both sources at that entry's revisions.
        body = {"operation": {"rollback": {"id": 0, "pauseAutomation": True}}}
        response = client.patch(
            f"{harness.APPS.format(ns=ns)}/{name}",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text
        app = harness.wait_for(
            "the rollback to the first values",
            lambda: (
                (a := harness.get_app(client, ns, name))["status"]["history"][-1]["revisions"]
                == ["1.0.0", first]
                and a
            ),
        )
        assert app["status"]["operationState"]["syncResult"]["sources"] == sources
        assert configmap(cluster, ns, "m-settings")["greeting"] == "from-git"


def test_an_oci_chart_resolves_its_range_with_a_helm_secret_for_the_registry(
    cluster: Cluster, ns: str, oci_registry: str, running: harness.Running
) -> None:
    # Argo CD keeps an OCI registry's Secret without the scheme, and says enableOCI.
    registry = oci_registry.removeprefix("oci://")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "registry",
            "namespace": ns,
            "labels": {"argocd.argoproj.io/secret-type": "repository"},
        },
        "stringData": {
            "url": registry,
            "type": "helm",
            "enableOCI": "true",
            "insecureOCIForceHttp": "true",
        },
    }
    name = f"{ns}-oci"
    source = {
        "repoURL": registry,
        "chart": "demo",
        "targetRevision": "~0.1",
        "helm": {"valuesObject": {"serviceAccount": {"create": False}}},
    }
    with cluster.client() as client:
        harness.apply(client, secret, f"/api/v1/namespaces/{ns}/secrets")
        harness.apply_app(client, app_object(name, ns, source=source))
        app = settled(client, ns, name, lambda s: (s.get("sync") or {}).get("revision") == "0.1.5")
    assert app["spec"]["source"]["repoURL"] == registry
    cluster.kubectl_json("get", "deployment", f"{name}-demo", "-n", ns)


def test_a_private_chart_repository_is_read_with_its_helm_secret(
    cluster: Cluster, ns: str, private_chart_repo: ChartRepo, running: harness.Running
) -> None:
    private_chart_repo.publish("2.0.0")
    name = f"{ns}-private"
    source = {"repoURL": private_chart_repo.url, "chart": "demo", "targetRevision": "2.x"}
    with cluster.client() as client:
        harness.apply_app(client, app_object(name, ns, source=source))

        def condition() -> str | None:
            status = harness.get_app(client, ns, name).get("status") or {}
            found = [c for c in status.get("conditions") or [] if c["type"] == "ComparisonError"]
            return found[0]["message"] if found else None

        assert "401" in harness.wait_for("a ComparisonError", condition)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "charts",
                "namespace": ns,
                "labels": {"argocd.argoproj.io/secret-type": "repository"},
            },
            "stringData": {
                "url": private_chart_repo.url,
                "type": "helm",
                "username": USER,
                "password": PASSWORD,
            },
        }
        harness.apply(client, secret, f"/api/v1/namespaces/{ns}/secrets")
        running.run(lambda: running.controller.refresh(ns, name))
        app = settled(client, ns, name, lambda s: (s.get("sync") or {}).get("revision") == "2.0.0")
    assert PASSWORD not in str(app)
    assert configmap(cluster, ns, f"{name}-settings")["chart"] == "2.0.0"
