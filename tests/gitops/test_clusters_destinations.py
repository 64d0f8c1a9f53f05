"""Destination clusters from cluster Secrets: apps deploy, prune and cascade there.

The controller runs against the worker's shared cluster (where the Applications live); a
second real local cluster is the destination, registered the way Argo CD registers one.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syrup import logs
from syrup.gitops import credentials
from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo

SECRETS = "/api/v1/namespaces/{ns}/secrets"
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
"""


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything Syrup logs during the test, down to DEBUG, as the terminal would show it."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    logs.configure(level="DEBUG")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(handler)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def register(client: httpx.Client, secret: dict[str, Any]) -> None:
    harness.apply(client, secret, SECRETS.format(ns=secret["metadata"]["namespace"]))


def to_cluster(app: dict[str, Any], *, server: str = "", name: str = "") -> dict[str, Any]:
    dest = app["spec"]["destination"]
    dest.pop("server", None)
    if server:
        dest["server"] = server
    if name:
        dest["name"] = name
    return app


def conditions(client: httpx.Client, ns: str, name: str) -> dict[str, str]:
    status = harness.get_app(client, ns, name).get("status") or {}
    return {c["type"]: c["message"] for c in status.get("conditions") or []}


def test_an_app_deploys_prunes_and_cascades_on_its_destination_cluster_only(
    cluster: Cluster,
    cluster_factory: Callable[..., Cluster],
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    captured_logs: io.StringIO,
) -> None:
    remote = cluster_factory()
    repo = make_repo()
    repo.write("app/deploy.yaml", DEPLOYMENT)
    repo.write("app/keep.yaml", CONFIGMAP.format(name="keep"))
    repo.write("app/gone.yaml", CONFIGMAP.format(name="gone"))
    repo.commit("an app for the remote cluster")
    dest, name = f"{ns}-remote", f"{ns}-app"
    secret = credentials.cluster_secret(
        remote.kubeconfig, context="syrup", namespace=ns, name="staging-cluster"
    )
    secret["stringData"]["name"] = "staging"
    app = harness.application(name, ns, repo=repo.url, path="app", dest=dest, automated={})
    app["spec"]["syncPolicy"]["automated"]["prune"] = True
    app["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    with cluster.client() as client:
        register(client, secret)
        harness.apply_app(client, to_cluster(app, name="staging"))
        status = harness.wait_synced_healthy(client, ns, name)["status"]
        assert {r["name"] for r in status["resources"]} == {"web", "keep", "gone"}

        # The objects are on the destination, with their health read there; none at home.
        assert remote.kubectl_json("get", "deployment", "web", "-n", dest)["status"]
        assert cluster.kubectl("get", "namespace", dest, check=False).returncode != 0
        assert running.run(running.controller.clusters.connected) == [remote.url]

        # A file gone from Git is pruned from the destination.
        (repo.work / "app" / "gone.yaml").unlink()
        repo.commit("drop one ConfigMap")
        running.refresh_repo(repo.url)
        harness.wait_for(
            "the ConfigMap pruned on the destination",
            lambda: remote.kubectl("get", "cm", "gone", "-n", dest, check=False).returncode != 0,
        )
        assert remote.kubectl_json("get", "cm", "keep", "-n", dest)["data"] == {"k": "v"}

        # Drift on the destination is seen there and shows in the diff.
        remote.kubectl("-n", dest, "patch", "cm", "keep", "-p", '{"data":{"k":"drift"}}')
        harness.wait_for(
            "OutOfSync after drift on the destination",
            lambda: harness.app_state(harness.get_app(client, ns, name))[0] == "OutOfSync",
        )
        diffs = running.call(running.controller.diff(ns, name))
        assert any("drift" in text for text in diffs.values())

        # The token is nowhere a person could read it.
        token = remote.token
        shown = json.dumps(harness.get_app(client, ns, name))
        events = client.get(f"/api/v1/namespaces/{ns}/events").text
        assert token not in shown and token not in events
        assert token not in repr(running.controller.clusters.local)
        assert token not in repr(running.controller.states)

        # Deleting the app deletes its resources on the destination, then lets the app go.
        assert client.delete(f"{harness.APPS.format(ns=ns)}/{name}").status_code == 200
        harness.wait_for(
            "the app gone",
            lambda: client.get(f"{harness.APPS.format(ns=ns)}/{name}").status_code == 404,
            timeout=90,
        )
    assert remote.kubectl("get", "deployment", "web", "-n", dest, check=False).returncode != 0
    assert remote.kubectl("get", "cm", "keep", "-n", dest, check=False).returncode != 0
    harness.wait_for(
        "the destination disconnected once no app uses it",
        lambda: running.run(running.controller.clusters.connected) == [],
    )
    text = captured_logs.getvalue()
    assert "connected to cluster" in text
    assert token not in text


def _bad(secret: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    if field == "config.caData":
        config = json.loads(secret["stringData"]["config"])
        config["tlsClientConfig"]["caData"] = value
        secret["stringData"]["config"] = json.dumps(config)
    else:
        secret["stringData"][field] = value
    return secret


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("config", "{not json", "data.config: is not JSON"),
        ("config", '["a list"]', "data.config: expected a JSON object"),
        ("config.caData", base64.b64encode(b"not a PEM").decode(), "data.config"),
        ("namespaces", "a,b", "data.namespaces: namespace-scoped clusters are not supported"),
    ],
)
def test_a_bad_cluster_secret_gives_a_condition_naming_the_secret_and_field_until_fixed(
    cluster: Cluster,
    cluster_factory: Callable[..., Cluster],
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    captured_logs: io.StringIO,
    field: str,
    value: str,
    message: str,
) -> None:
    remote = cluster_factory()
    repo = make_repo()
    repo.write("app/cm.yaml", CONFIGMAP.format(name="fixed"))
    repo.commit("one ConfigMap")
    dest, name = f"{ns}-remote", f"{ns}-app"
    good = credentials.cluster_secret(remote.kubeconfig, context="syrup", namespace=ns, name="c1")
    bad = _bad(json.loads(json.dumps(good)), field, value)
    with cluster.client() as client:
        register(client, bad)
        harness.apply_app(
            client,
            to_cluster(
                harness.application(name, ns, repo=repo.url, path="app", dest=dest, automated={}),
                server=remote.url,
            ),
        )
        found = harness.wait_for(
            "a condition naming the Secret",
            lambda: conditions(client, ns, name).get("InvalidSpecError"),
        )
        assert f"Secret {ns}/c1" in found and message in found, found

        # Fixing the Secret is enough: the app connects and syncs without being touched.
        register(client, good)
        harness.wait_synced_healthy(client, ns, name)
        assert remote.kubectl_json("get", "cm", "fixed", "-n", dest)["data"] == {"k": "v"}
        assert remote.token not in json.dumps(harness.get_app(client, ns, name))
    assert remote.token not in captured_logs.getvalue()


def test_an_unknown_or_unreachable_destination_is_a_condition_not_a_crash(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    repo = make_repo()
    repo.write("app/cm.yaml", CONFIGMAP.format(name="x"))
    repo.commit("one ConfigMap")
    unknown, down = f"{ns}-unknown", f"{ns}-down"
    nowhere = "https://127.0.0.1:1"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "down",
            "namespace": ns,
            "labels": {credentials.SECRET_TYPE_LABEL: "cluster"},
        },
        "stringData": {"name": "down", "server": nowhere, "config": '{"bearerToken": "t0k3n"}'},
    }
    with cluster.client() as client:
        register(client, secret)
        for name, dest in ((unknown, {"name": "nope"}), (down, {"server": nowhere})):
            app = harness.application(name, ns, repo=repo.url, path="app", dest=ns, automated={})
            harness.apply_app(client, to_cluster(app, **dest))
        missing = harness.wait_for(
            "a condition for the unknown cluster",
            lambda: conditions(client, ns, unknown).get("InvalidSpecError"),
        )
        assert "cluster nope is not configured" in missing
        refused = harness.wait_for(
            "a condition for the unreachable cluster",
            lambda: conditions(client, ns, down).get("ComparisonError"),
        )
        assert nowhere in refused and f"Secret {ns}/down" in refused
        assert "t0k3n" not in json.dumps(harness.get_app(client, ns, down))

        # Reconciles keep coming, connection attempts back off (2 s, then 4 s...).
        first = running.run(lambda: running.controller.clusters.attempts)
        time.sleep(5)
        assert running.run(lambda: running.controller.clusters.attempts) - first <= 2
    assert running.run(running.controller.clusters.connected) == []


@pytest.mark.parametrize(
    ("destinations", "allowed"),
    [
        ([{"name": "staging", "namespace": "*"}], True),
        ([{"server": "https://127.0.0.1:2", "namespace": "*"}], True),
        ([{"server": "https://kubernetes.default.svc", "namespace": "*"}], False),
        ([{"name": "prod", "namespace": "*"}], False),
    ],
)
def test_project_destination_rules_match_the_registered_clusters_server_and_name(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    destinations: list[dict[str, str]],
    allowed: bool,
) -> None:
    repo = make_repo()
    repo.write("app/cm.yaml", CONFIGMAP.format(name="x"))
    repo.commit("one ConfigMap")
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "limited", "namespace": ns},
        "spec": {"sourceRepos": ["*"], "destinations": destinations},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "staging",
            "namespace": ns,
            "labels": {credentials.SECRET_TYPE_LABEL: "cluster"},
        },
        "stringData": {"name": "staging", "server": "https://127.0.0.1:2", "config": "{}"},
    }
    name = f"{ns}-app"
    app = harness.application(name, ns, repo=repo.url, path="app", dest=ns, automated={})
    app["spec"]["project"] = "limited"
    with cluster.client() as client:
        register(client, secret)
        harness.apply(client, project, f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/appprojects")
        # By server: the project's name rules see the Secret's name, and the other way round.
        harness.apply_app(client, to_cluster(app, server="https://127.0.0.1:2"))
        found = harness.wait_for(
            "a condition", lambda: conditions(client, ns, name) or None, timeout=60
        )
    denied = "do not match any of the allowed destinations"
    if allowed:
        # Past the project check: the (unreachable) cluster is what stops it.
        assert "ComparisonError" in found and denied not in json.dumps(found), found
    else:
        assert denied in found.get("InvalidSpecError", ""), found


def test_a_changed_or_deleted_cluster_secret_disconnects_and_the_app_says_why(
    cluster: Cluster,
    cluster_factory: Callable[..., Cluster],
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
) -> None:
    remote = cluster_factory()
    repo = make_repo()
    repo.write("app/cm.yaml", CONFIGMAP.format(name="x"))
    repo.commit("one ConfigMap")
    dest, name = f"{ns}-remote", f"{ns}-app"
    secret = credentials.cluster_secret(remote.kubeconfig, context="syrup", namespace=ns, name="c")
    app = harness.application(name, ns, repo=repo.url, path="app", dest=dest, automated={})
    app["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
    with cluster.client() as client:
        register(client, secret)
        harness.apply_app(client, to_cluster(app, server=remote.url))
        harness.wait_synced_healthy(client, ns, name)
        assert running.run(running.controller.clusters.connected) == [remote.url]

        # The Secret gone: the destination is not configured any more.
        client.delete(f"{SECRETS.format(ns=ns)}/c").raise_for_status()
        missing = harness.wait_for(
            "a condition about the missing cluster",
            lambda: conditions(client, ns, name).get("InvalidSpecError"),
        )
        assert f"cluster {remote.url} is not configured" in missing
        assert running.run(running.controller.clusters.connected) == []

        # Registered again: the app recovers by itself (its next refresh is minutes away).
        register(client, secret)
        harness.wait_for(
            "the app without conditions, connected again",
            lambda: (
                not conditions(client, ns, name)
                and running.run(running.controller.clusters.connected)
            ),
        )

        # New credentials that the cluster refuses: the old connection goes, the app says so.
        config = json.loads(secret["stringData"]["config"])
        config["bearerToken"] = "wrong-token-0123"
        secret["stringData"]["config"] = json.dumps(config)
        register(client, secret)
        refused = harness.wait_for(
            "a condition about the refused credentials",
            lambda: conditions(client, ns, name).get("ComparisonError"),
        )
        assert remote.url in refused and f"Secret {ns}/c" in refused
        assert "wrong-token-0123" not in json.dumps(harness.get_app(client, ns, name))
        assert running.run(running.controller.clusters.connected) == []
        client.delete(f"{SECRETS.format(ns=ns)}/c").raise_for_status()

        # As in Argo CD, an app whose cluster is gone can still be deleted; what it deployed
        # there stays (nothing can reach it).
        assert client.delete(f"{harness.APPS.format(ns=ns)}/{name}").status_code == 200
        harness.wait_for(
            "the app gone",
            lambda: client.get(f"{harness.APPS.format(ns=ns)}/{name}").status_code == 404,
        )
    assert remote.kubectl_json("get", "cm", "x", "-n", dest)["data"] == {"k": "v"}
