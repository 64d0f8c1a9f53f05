"""The REST API against a real ``syrup up`` on a real local cluster, over real HTTP."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import (
    PASSWORD,
    Up,
    application,
    make_repo,
    status_of,
    unique,
    wait_for,
    wait_synced_healthy,
)
from tests.conftest import Cluster

# Every route that needs a token, with a body where it takes one.
PROTECTED: list[tuple[str, str]] = [
    ("GET", "/api/v1/applications"),
    ("POST", "/api/v1/applications"),
    ("GET", "/api/v1/applications/x"),
    ("PUT", "/api/v1/applications/x"),
    ("DELETE", "/api/v1/applications/x"),
    ("GET", "/api/v1/applications/x/resource-tree"),
    ("GET", "/api/v1/applications/x/managed-resources"),
    ("GET", "/api/v1/applications/x/resource?kind=Pod&resourceName=p"),
    ("GET", "/api/v1/applications/x/manifests"),
    ("GET", "/api/v1/applications/x/events"),
    ("GET", "/api/v1/applications/x/history"),
    ("POST", "/api/v1/applications/x/sync"),
    ("POST", "/api/v1/applications/x/rollback"),
    ("POST", "/api/v1/applications/x/refresh"),
    ("DELETE", "/api/v1/applications/x/operation"),
    ("GET", "/api/v1/stream/applications"),
    ("GET", "/api/v1/projects"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects/default"),
    ("PUT", "/api/v1/projects/default"),
    ("DELETE", "/api/v1/projects/x"),
    ("GET", "/api/v1/repositories"),
    ("POST", "/api/v1/repositories"),
    ("POST", "/api/v1/repositories/validate"),
    ("DELETE", "/api/v1/repositories?repo=x"),
    ("GET", "/api/v1/clusters"),
    ("POST", "/api/v1/clusters"),
    ("DELETE", "/api/v1/clusters?server=x"),
    ("GET", "/api/v1/account"),
    ("POST", "/api/v1/account"),
    ("DELETE", "/api/v1/account/x"),
    ("POST", "/api/v1/account/admin/token"),
    ("DELETE", "/api/v1/account/admin/token/abc"),
    ("PUT", "/api/v1/account/password"),
    ("GET", "/api/v1/settings/rbac"),
    ("PUT", "/api/v1/settings/rbac"),
    ("GET", "/api/v1/session/userinfo"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/metrics"),
]

# Writes a readonly account may not make, and the permission the 403 names.
WRITES: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/applications", None, "applications, create"),
    ("PUT", "/api/v1/applications/{app}", None, "applications, update"),
    ("DELETE", "/api/v1/applications/{app}", None, "applications, delete"),
    ("POST", "/api/v1/applications/{app}/sync", {}, "applications, sync"),
    ("POST", "/api/v1/applications/{app}/rollback", {"id": 0}, "applications, sync"),
    ("DELETE", "/api/v1/applications/{app}/operation", None, "applications, sync"),
    ("POST", "/api/v1/projects", {"metadata": {"name": "p1"}}, "projects, create"),
    ("PUT", "/api/v1/projects/default", {"spec": {}}, "projects, update"),
    ("DELETE", "/api/v1/projects/default", None, "projects, delete"),
    ("POST", "/api/v1/repositories", {"repo": "file:///nowhere"}, "repositories, create"),
    ("DELETE", "/api/v1/repositories?repo=file:///x", None, "repositories, delete"),
    ("POST", "/api/v1/clusters", {"server": "https://x", "name": "x"}, "clusters, create"),
    ("DELETE", "/api/v1/clusters?server=https://x", None, "clusters, delete"),
    ("POST", "/api/v1/account", {"name": "mallory"}, "accounts, create"),
    ("DELETE", "/api/v1/account/admin", None, "accounts, delete"),
    ("POST", "/api/v1/account/admin/token", {}, "accounts, update"),
    ("PUT", "/api/v1/settings/rbac", {"policy": ""}, "settings, update"),
]


@pytest.fixture(scope="module")
def deployed(up: Up, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One automated app, synced and healthy, shared by the read-only tests of this module."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    name = unique("shared")
    dest = unique("ns")
    with up.client() as c:
        r = c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest))
        assert r.status_code == 201, r.text
        wait_synced_healthy(c, name)
    return {"name": name, "dest": dest, "repo": repo}


def account_token(up: Up, name: str) -> str:
    with up.client() as c:
        r = c.post("/api/v1/account", json={"name": name, "password": PASSWORD})
        assert r.status_code in (201, 400), r.text
        r = c.post(f"/api/v1/account/{name}/token", json={"description": "tests"})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_endpoint_but_login_health_and_version_needs_a_token(
    up: Up, method: str, path: str
) -> None:
    with up.client(token="") as c:
        r = c.request(method, path, json={})
        assert r.status_code == 401, r.text
        assert "token" in r.json()["error"]
    with up.client(token="syr_000000000000_notarealtokenatallxx") as c:
        assert c.request(method, path, json={}).status_code == 401


@pytest.mark.parametrize(
    "path", ["/healthz", "/api/version", "/api/v1/version", "/api/openapi.json"]
)
def test_health_version_and_the_openapi_document_are_public(up: Up, path: str) -> None:
    r = httpx.get(up.url + path)
    assert r.status_code == 200
    if path == "/api/openapi.json":
        paths = r.json()["paths"]
        assert "/api/v1/applications/{name}/sync" in paths
        assert "/api/v1/session" in paths


def test_login_gives_a_token_and_a_wrong_password_gives_401(up: Up) -> None:
    bad = httpx.post(f"{up.url}/api/v1/session", json={"username": "admin", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid username or password"
    token = up.login()
    with up.client(token) as c:
        assert c.get("/api/v1/session/userinfo").json() == {
            "loggedIn": True,
            "username": "admin",
            "canSync": True,
        }
        assert c.delete("/api/v1/session").status_code == 200
        assert c.get("/api/v1/session/userinfo").status_code == 401


def test_a_login_body_without_a_password_is_a_422_naming_the_field(up: Up) -> None:
    r = httpx.post(f"{up.url}/api/v1/session", json={"username": "admin"})
    assert r.status_code == 422
    assert r.json()["field"] == "password"


def test_api_tokens_work_for_automation_and_stop_working_when_revoked(up: Up) -> None:
    with up.client() as c:
        r = c.post("/api/v1/account/admin/token", json={"description": "ci"})
        token, token_id = r.json()["token"], r.json()["id"]
        with up.client(token) as bot:
            assert bot.get("/api/v1/applications").status_code == 200
        listed = c.get("/api/v1/account").json()["items"]
        admin = next(a for a in listed if a["name"] == "admin")
        assert token_id in [t["id"] for t in admin["tokens"]]
        assert token not in json.dumps(listed)
        assert c.delete(f"/api/v1/account/admin/token/{token_id}").status_code == 200
        with up.client(token) as bot:
            assert bot.get("/api/v1/applications").status_code == 401


def test_the_account_store_keeps_only_hashes(up: Up) -> None:
    stored = (up.data_dir / "api" / "accounts.json").read_text()
    assert PASSWORD not in stored
    assert "$2b$" in stored
    assert up.token not in stored


# -- RBAC --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "permission"), WRITES)
def test_readonly_accounts_get_403_naming_the_missing_permission(
    up: Up, deployed: dict[str, Any], method: str, path: str, body: Any, permission: str
) -> None:
    token = account_token(up, "viewer")
    app = deployed["name"]
    if body is None and method in ("POST", "PUT"):
        body = application(app, deployed["repo"], dest_ns=deployed["dest"])
    with up.client(token) as c:
        r = c.request(method, path.format(app=app), json=body)
        assert r.status_code == 403, r.text
        assert r.json()["permission"].startswith(permission)
        assert "permission denied" in r.json()["error"]
        assert c.get(f"/api/v1/applications/{app}").status_code == 200


def test_a_policy_line_lets_a_role_sync_in_one_project_but_not_delete(
    up: Up, deployed: dict[str, Any]
) -> None:
    token = account_token(up, "deployer")
    app = deployed["name"]
    with up.client() as admin:
        before = admin.get("/api/v1/settings/rbac").json()["policy"]
        policy = (
            "p, role:deployer, applications, sync, default/*, allow\ng, deployer, role:deployer\n"
        )
        assert admin.put("/api/v1/settings/rbac", json={"policy": policy}).status_code == 200
        try:
            with up.client(token) as c:
                r = c.post(f"/api/v1/applications/{app}/sync", json={"dryRun": True})
                assert r.status_code == 200, r.text
                denied = c.delete(f"/api/v1/applications/{app}")
                assert denied.status_code == 403
                assert denied.json()["permission"] == f"applications, delete, default/{app}"
        finally:
            admin.put("/api/v1/settings/rbac", json={"policy": before})


@pytest.mark.parametrize(
    ("policy", "where"),
    [
        ("p, role:x, applications, sync\n", "policy.csv:1"),
        ("g, a\n", "policy.csv:1"),
        ("# ok\nq, a, b\n", "policy.csv:2"),
        ("p, role:x, widgets, get, *, allow\n", "policy.csv:1"),
        ("p, role:x, applications, get, *, maybe\n", "policy.csv:1"),
    ],
)
def test_a_bad_policy_is_rejected_with_its_line_and_changes_nothing(
    up: Up, policy: str, where: str
) -> None:
    with up.client() as c:
        before = c.get("/api/v1/settings/rbac").json()["policy"]
        r = c.put("/api/v1/settings/rbac", json={"policy": policy})
        assert r.status_code == 400
        assert r.json()["field"] == where
        assert c.get("/api/v1/settings/rbac").json()["policy"] == before


# -- applications ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda a: a["spec"].pop("source"), "spec.source"),
        (lambda a: a["spec"]["source"].pop("repoURL"), "spec.source.repoURL"),
        (lambda a: a["metadata"].update(name="Bad_Name"), "metadata.name"),
        (lambda a: a["spec"].update(project="nope"), "spec.project"),
        (lambda a: a["spec"].update(destination={"namespace": "x"}), "spec.destination"),
        (lambda a: a["spec"]["syncPolicy"].update(automated="yes"), "spec.syncPolicy.automated"),
        (lambda a: a["spec"]["source"].update(helm=[1]), "spec.source.helm"),
    ],
)
def test_a_malformed_application_is_a_400_naming_the_field_and_stores_nothing(
    up: Up, tmp_path: Path, change: Any, field: str
) -> None:
    repo = make_repo(tmp_path)
    name = unique("bad")
    body = application(name, repo, dest_ns="x")
    change(body)
    with up.client() as c:
        r = c.post("/api/v1/applications", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field
        stored = body["metadata"]["name"]
        assert c.get(f"/api/v1/applications/{stored}").status_code in (400, 404)


def test_applications_list_with_filters(up: Up, deployed: dict[str, Any]) -> None:
    name = deployed["name"]

    def names(**params: Any) -> list[str]:
        with up.client() as c:
            r = c.get("/api/v1/applications", params=params)
            assert r.status_code == 200
            return [a["metadata"]["name"] for a in r.json()["items"]]

    assert name in names()
    assert name in names(project="default")
    assert name not in names(project="other")
    assert names(namespace=deployed["dest"]) == [name]
    assert name in names(health="Healthy", sync="Synced")
    assert name not in names(sync="OutOfSync")
    assert name in names(selector="team=tests")
    assert name not in names(selector="team!=tests")
    assert names(search=name[-8:]) == [name]


def test_resource_tree_goes_from_the_app_to_its_pods(up: Up, deployed: dict[str, Any]) -> None:
    with up.client() as c:
        nodes = c.get(f"/api/v1/applications/{deployed['name']}/resource-tree").json()["nodes"]
    by_kind = {n["kind"]: n for n in nodes}
    assert {"ConfigMap", "Deployment", "ReplicaSet", "Pod"} <= set(by_kind)
    assert by_kind["ReplicaSet"]["parentRefs"][0]["name"] == "web"
    assert by_kind["Pod"]["parentRefs"][0]["kind"] == "ReplicaSet"
    assert by_kind["Deployment"]["health"]["status"] == "Healthy"
    assert by_kind["Deployment"]["status"] == "Synced"


def test_manifests_history_events_and_one_resource(up: Up, deployed: dict[str, Any]) -> None:
    name = deployed["name"]
    with up.client() as c:
        manifests = c.get(f"/api/v1/applications/{name}/manifests").json()["manifests"]
        assert sorted(m["kind"] for m in manifests) == ["ConfigMap", "Deployment"]
        history = c.get(f"/api/v1/applications/{name}/history").json()["items"]
        assert history and history[0]["revision"]
        events = c.get(f"/api/v1/applications/{name}/events").json()["items"]
        assert any(e["reason"] == "ScalingReplicaSet" for e in events), events
        r = c.get(
            f"/api/v1/applications/{name}/resource",
            params={
                "group": "apps",
                "kind": "Deployment",
                "namespace": deployed["dest"],
                "resourceName": "web",
            },
        )
        assert r.json()["manifest"]["spec"]["replicas"] == 1
        missing = c.get(
            f"/api/v1/applications/{name}/resource", params={"kind": "Pod", "resourceName": "x"}
        )
        assert missing.status_code == 404


def test_live_drift_shows_in_managed_resources_and_a_sync_repairs_it(
    up: Up, cluster: Cluster, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    name, dest = unique("drift"), unique("ns")
    with up.client() as c:
        body = application(name, repo, dest_ns=dest, automated=False)
        assert c.post("/api/v1/applications", json=body).status_code == 201
        wait_for("OutOfSync before the first sync", lambda: status_of(c, name)[0] == "OutOfSync")
        r = c.post(f"/api/v1/applications/{name}/sync", json={"prune": True})
        assert r.status_code == 200, r.text
        wait_synced_healthy(c, name)

        cluster.kubectl(
            "-n",
            dest,
            "patch",
            "configmap",
            "web-config",
            "-p",
            '{"data":{"GREETING":"changed by hand"}}',
        )
        wait_for("OutOfSync after a kubectl change", lambda: status_of(c, name)[0] == "OutOfSync")
        items = c.get(f"/api/v1/applications/{name}/managed-resources").json()["items"]
        cm = next(i for i in items if i["kind"] == "ConfigMap")
        assert "-  GREETING: changed by hand" in cm["diff"]
        assert "+  GREETING: hello" in cm["diff"]
        assert cm["liveState"]["data"]["GREETING"] == "changed by hand"

        r = c.post(f"/api/v1/applications/{name}/sync", json={})
        assert r.status_code == 200
        wait_for("Synced after sync", lambda: status_of(c, name)[0] == "Synced")
        cm_live = cluster.kubectl_json("-n", dest, "get", "configmap", "web-config")
        assert cm_live["data"]["GREETING"] == "hello"


def test_update_rollback_and_refresh(up: Up, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    name, dest = unique("roll"), unique("ns")
    with up.client() as c:
        assert (
            c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest)).status_code
            == 201
        )
        wait_synced_healthy(c, name)

        rejected = c.post(f"/api/v1/applications/{name}/rollback", json={"id": 0})
        assert rejected.status_code == 400
        assert rejected.json()["field"] == "spec.syncPolicy"

        current = c.get(f"/api/v1/applications/{name}").json()
        current["spec"]["syncPolicy"].pop("automated")
        r = c.put(f"/api/v1/applications/{name}", json=current)
        assert r.status_code == 200, r.text
        assert "automated" not in r.json()["spec"]["syncPolicy"]

        assert (
            c.post(f"/api/v1/applications/{name}/rollback", json={"id": 99}).json()["field"] == "id"
        )
        r = c.post(f"/api/v1/applications/{name}/rollback", json={"id": 0})
        assert r.status_code == 200, r.text
        assert r.json()["operation"]["sync"]["revision"]

        for kind in ("normal", "hard"):
            r = c.post(f"/api/v1/applications/{name}/refresh", params={"type": kind})
            assert r.status_code == 200
        assert (
            c.post(f"/api/v1/applications/{name}/refresh", params={"type": "x"}).json()["field"]
            == "type"
        )


def test_terminate_without_an_operation_is_a_400(up: Up, deployed: dict[str, Any]) -> None:
    with up.client() as c:
        r = c.delete(f"/api/v1/applications/{deployed['name']}/operation")
        assert r.status_code == 400
        assert r.json()["field"] == "operation"


@pytest.mark.parametrize("cascade", [True, False])
def test_delete_with_and_without_cascade(
    up: Up, cluster: Cluster, tmp_path: Path, cascade: bool
) -> None:
    repo = make_repo(tmp_path)
    name, dest = unique("del"), unique("ns")
    with up.client() as c:
        assert (
            c.post("/api/v1/applications", json=application(name, repo, dest_ns=dest)).status_code
            == 201
        )
        wait_synced_healthy(c, name)
        r = c.delete(f"/api/v1/applications/{name}", params={"cascade": str(cascade).lower()})
        assert r.status_code == 200
        wait_for("app gone", lambda: c.get(f"/api/v1/applications/{name}").status_code == 404)

    def configmap_exists() -> bool:
        proc = cluster.kubectl("-n", dest, "get", "configmap", "web-config", check=False)
        return proc.returncode == 0

    if cascade:
        wait_for("resources deleted", lambda: not configmap_exists())
    else:
        assert configmap_exists()


def test_creating_the_same_app_twice_is_idempotent_and_a_different_spec_needs_upsert(
    up: Up, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    name = unique("twice")
    body = application(name, repo, dest_ns=unique("ns"), automated=False)
    with up.client() as c:
        assert c.post("/api/v1/applications", json=body).status_code == 201
        assert c.post("/api/v1/applications", json=body).status_code == 201
        body["spec"]["source"]["path"] = "other"
        r = c.post("/api/v1/applications", json=body)
        assert r.status_code == 400 and r.json()["field"] == "metadata.name"
        assert (
            c.post("/api/v1/applications", json=body, params={"upsert": "true"}).status_code == 201
        )
        assert c.get(f"/api/v1/applications/{name}").json()["spec"]["source"]["path"] == "other"
        c.delete(f"/api/v1/applications/{name}")


# -- projects, repositories, clusters ------------------------------------------------------


def test_projects_create_get_update_delete(up: Up) -> None:
    name = unique("proj")
    body = {
        "metadata": {"name": name},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "team-*"}]},
    }
    with up.client() as c:
        assert c.post("/api/v1/projects", json=body).status_code == 201
        assert c.post("/api/v1/projects", json=body).json()["field"] == "metadata.name"
        assert name in [p["metadata"]["name"] for p in c.get("/api/v1/projects").json()["items"]]
        body["spec"]["sourceRepos"] = ["file:///*"]
        assert c.put(f"/api/v1/projects/{name}", json=body).status_code == 200
        assert c.get(f"/api/v1/projects/{name}").json()["spec"]["sourceRepos"] == ["file:///*"]
        bad = c.put(f"/api/v1/projects/{name}", json={"spec": {"destinations": "x"}})
        assert bad.status_code == 400 and bad.json()["field"] == "spec.destinations"
        assert c.delete(f"/api/v1/projects/{name}").status_code == 200
        wait_for("project gone", lambda: c.get(f"/api/v1/projects/{name}").status_code == 404)


def test_an_app_outside_its_projects_destinations_is_rejected(up: Up, tmp_path: Path) -> None:
    proj = unique("proj")
    body = {
        "metadata": {"name": proj},
        "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "team-*"}]},
    }
    repo = make_repo(tmp_path)
    with up.client() as c:
        assert c.post("/api/v1/projects", json=body).status_code == 201
        app = application(unique("a"), repo, dest_ns="elsewhere", project=proj)
        r = c.post("/api/v1/applications", json=app)
        assert r.status_code == 400 and r.json()["field"] == "spec"
        assert "do not match any of the allowed destinations" in r.json()["error"]

        # The same rules as the controller: a negated repo pattern, and every source counts.
        body["spec"]["sourceRepos"] = ["*", "!https://charts.example/*"]
        assert c.put(f"/api/v1/projects/{proj}", json=body).status_code == 200
        app = application(unique("a"), repo, dest_ns="team-a", project=proj)
        source = app["spec"].pop("source")
        chart = {"repoURL": "https://charts.example/stable", "chart": "web", "targetRevision": "1"}
        app["spec"]["sources"] = [source, chart]
        r = c.post("/api/v1/applications", json=app)
        assert r.status_code == 400, r.text
        assert "application repo https://charts.example/stable is not permitted" in r.text
        app["spec"]["sources"] = [source]
        assert c.post("/api/v1/applications", json=app).status_code == 201


def test_repositories_add_with_credentials_list_validate_and_remove(up: Up, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    with up.client() as c:
        bad = c.post("/api/v1/repositories", json={"repo": str(tmp_path / "missing.git")})
        assert bad.status_code == 400 and bad.json()["field"] == "repo"
        assert c.post("/api/v1/repositories", json={"repo": ""}).json()["field"] == "repo"
        no_user = c.post("/api/v1/repositories", json={"repo": repo.url, "password": "p"})
        assert no_user.json()["field"] == "username"

        r = c.post(
            "/api/v1/repositories", json={"repo": repo.url, "username": "u", "password": "s3cret"}
        )
        assert r.status_code == 201, r.text
        assert r.json() == {
            "repo": repo.url,
            "type": "git",
            "username": "u",
            "hasCredentials": True,
            "connectionState": {"status": "Successful"},
        }
        listed = c.get("/api/v1/repositories")
        assert repo.url in [x["repo"] for x in listed.json()["items"]]
        assert "s3cret" not in listed.text
        assert c.post("/api/v1/repositories/validate", json={"repo": repo.url}).status_code == 200
        assert c.delete("/api/v1/repositories", params={"repo": repo.url}).status_code == 200
        assert c.delete("/api/v1/repositories", params={"repo": repo.url}).status_code == 404


def test_clusters_list_the_local_one_and_add_and_remove_others(up: Up) -> None:
    server = f"https://{unique('k8s')}.example.invalid:6443"
    with up.client() as c:
        items = c.get("/api/v1/clusters").json()["items"]
        assert items[0]["server"] == "https://kubernetes.default.svc"
        assert (
            c.post("/api/v1/clusters", json={"server": "http://x", "name": "x"}).json()["field"]
            == "server"
        )
        r = c.post("/api/v1/clusters", json={"server": server, "name": "staging"})
        assert r.status_code == 201
        assert server in [x["server"] for x in c.get("/api/v1/clusters").json()["items"]]
        assert c.delete("/api/v1/clusters", params={"server": server}).status_code == 200
        assert c.delete("/api/v1/clusters", params={"server": server}).status_code == 404


# -- live updates and metrics ----------------------------------------------------------------


def test_the_stream_sends_an_event_when_an_app_changes(up: Up, deployed: dict[str, Any]) -> None:
    name = deployed["name"]
    got: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            up.client() as c,
            c.stream("GET", "/api/v1/stream/applications", params={"name": name}, timeout=30) as r,
        ):
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("event: hello"):
                    ready.set()
                if line.startswith("data: ") and '"application"' in line:
                    got.append(json.loads(line[6:]))
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    with up.client() as c:
        c.post(f"/api/v1/applications/{name}/refresh", params={"type": "normal"})
    thread.join(20)
    assert got and got[0]["type"] == "MODIFIED"
    assert got[0]["application"]["metadata"]["name"] == name


def test_metrics_after_a_sync(up: Up, deployed: dict[str, Any]) -> None:
    with up.client() as c:
        assert c.get("/api/v1/applications").status_code == 200
        text = c.get("/metrics").text
    name = deployed["name"]
    assert (
        f'syrup_app_sync_total{{name="{name}",namespace="argocd",phase="Succeeded",project="default"}}'
        in text
    )
    info = [
        ln for ln in text.splitlines() if ln.startswith("syrup_app_info") and f'name="{name}"' in ln
    ]
    assert info and 'health_status="Healthy"' in info[0] and 'sync_status="Synced"' in info[0]
    assert "syrup_app_reconcile_seconds_count" in text
    assert 'syrup_git_request_total{repo="' + deployed["repo"].url in text
    assert (
        'syrup_api_request_duration_seconds_count{code="200",method="GET",route="/api/v1/applications"}'
        in text
    )
