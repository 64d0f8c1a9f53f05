"""The local cluster's API server, driven by the real kubectl and real client libraries."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CORPUS, KUBECTL, Cluster

CM = "/api/v1/namespaces/{ns}/configmaps"

REQUIRED_RESOURCES = [
    *("namespaces", "configmaps", "secrets", "services", "endpoints", "pods"),
    *("serviceaccounts", "persistentvolumeclaims", "persistentvolumes", "nodes", "events"),
    *("limitranges", "resourcequotas", "deployments", "replicasets", "statefulsets"),
    *("daemonsets", "jobs", "cronjobs", "ingresses", "ingressclasses", "networkpolicies"),
    *("roles", "rolebindings", "clusterroles", "clusterrolebindings", "poddisruptionbudgets"),
    *("horizontalpodautoscalers", "leases", "storageclasses", "endpointslices"),
    "customresourcedefinitions",
]


def make_cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


# -- kubectl end to end ---------------------------------------------------------------------


def test_kubectl_api_resources_lists_every_required_kind_with_short_names(cluster: Cluster):
    out = cluster.kubectl("api-resources", "-o", "wide").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for plural in REQUIRED_RESOURCES:
        assert plural in rows, f"{plural} missing from api-resources"
    assert " deploy " in rows["deployments"] and " svc " in rows["services"]
    assert " cm " in rows["configmaps"]
    all_kinds = cluster.kubectl("api-resources", "--categories=all", "-o", "name").stdout
    assert "pods" in all_kinds and "deployments.apps" in all_kinds


def test_kubectl_creates_namespace_and_configmap_from_literals(cluster: Cluster):
    cluster.kubectl("create", "namespace", "lit-demo")
    cluster.kubectl("-n", "lit-demo", "create", "configmap", "settings", "--from-literal=a=1")
    cm = cluster.kubectl_json("-n", "lit-demo", "get", "configmap", "settings")
    assert cm["data"] == {"a": "1"}
    assert cm["metadata"]["uid"] and cm["metadata"]["creationTimestamp"]


def test_kubectl_get_label_annotate_patch_replace_delete_round_trip(cluster: Cluster, ns: str):
    manifest = yaml.safe_dump(
        {
            **make_cm("app-config", colour="blue"),
            "metadata": {"name": "app-config", "namespace": ns, "labels": {"tier": "web"}},
        }
    )
    cluster.kubectl("create", "-f", "-", input=manifest)

    as_yaml = yaml.safe_load(
        cluster.kubectl("-n", ns, "get", "cm", "app-config", "-o", "yaml").stdout
    )
    assert as_yaml["data"] == {"colour": "blue"}
    everywhere = cluster.kubectl("get", "configmaps", "-A").stdout
    assert ns in everywhere and "app-config" in everywhere
    assert "app-config" in cluster.kubectl("-n", ns, "get", "cm", "-l", "tier=web").stdout
    assert "app-config" not in cluster.kubectl("-n", ns, "get", "cm", "-l", "tier!=web").stdout

    cluster.kubectl("-n", ns, "label", "cm", "app-config", "team=blue")
    cluster.kubectl("-n", ns, "annotate", "cm", "app-config", "note=hello")
    cluster.kubectl(
        "-n", ns, "patch", "cm", "app-config", "--type", "merge", "-p", '{"data":{"size":"L"}}'
    )
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "cm",
        "app-config",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/data/colour"}]',
    )
    obj = cluster.kubectl_json("-n", ns, "get", "cm", "app-config")
    assert obj["metadata"]["labels"] == {"tier": "web", "team": "blue"}
    assert obj["metadata"]["annotations"]["note"] == "hello"
    assert obj["data"] == {"size": "L"}

    obj["data"]["size"] = "XL"
    cluster.kubectl("replace", "-f", "-", input=json.dumps(obj))
    assert cluster.kubectl_json("-n", ns, "get", "cm", "app-config")["data"] == {"size": "XL"}

    cluster.kubectl("-n", ns, "delete", "cm", "app-config")
    gone = cluster.kubectl("-n", ns, "get", "cm", "app-config", check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_kubectl_replace_with_a_stale_resource_version_is_a_conflict(cluster: Cluster, ns: str):
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("stale", v="1")).raise_for_status()
    stale = cluster.kubectl_json("-n", ns, "get", "cm", "stale")
    with cluster.client() as c:
        c.patch(
            f"{CM.format(ns=ns)}/stale",
            json={"data": {"v": "2"}},
            headers={"content-type": "application/merge-patch+json"},
        ).raise_for_status()
    stale["data"]["v"] = "3"
    proc = cluster.kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert proc.returncode == 1
    assert "Conflict" in proc.stderr and "the object has been modified" in proc.stderr
    assert cluster.kubectl_json("-n", ns, "get", "cm", "stale")["data"] == {"v": "2"}


def test_kubectl_get_watch_sees_additions_and_changes_made_by_another_client(
    cluster: Cluster, ns: str
):
    watch = subprocess.Popen(
        [
            KUBECTL,
            "-n",
            ns,
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "--request-timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.env(),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watch.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()
    time.sleep(1.5)  # let kubectl list and open its watch
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("watched", a="1")).raise_for_status()
        c.patch(
            f"{CM.format(ns=ns)}/watched",
            json={"data": {"a": "2"}},
            headers={"content-type": "application/merge-patch+json"},
        ).raise_for_status()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.1)
    watch.terminate()
    reader.join(5)
    text = "".join(lines)
    events = [line.split()[:2] for line in text.splitlines()[1:] if line.strip()]
    assert ["ADDED", "watched"] in events and ["MODIFIED", "watched"] in events


# -- a real client library ------------------------------------------------------------------


def test_kubernetes_python_client_lists_then_resumes_a_watch_from_the_list_version(
    cluster: Cluster, ns: str
):
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(api_client)
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("before", a="1")).raise_for_status()
    listed = core.list_namespaced_config_map(ns)
    assert [i.metadata.name for i in listed.items] == ["before"]
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("after", a="2")).raise_for_status()
        c.delete(f"{CM.format(ns=ns)}/before").raise_for_status()
    seen = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map,
        ns,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=3,
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "after"), ("DELETED", "before")]
    api_client.close()


# -- storage, restarts and watch history ---------------------------------------------------


def test_restart_keeps_every_object_byte_for_byte_and_versions_keep_increasing(
    cluster_factory: Any, tmp_path: Path
):
    first = cluster_factory(tmp_path / "data")
    with first.client() as c:
        for i in range(20):
            c.post(CM.format(ns="default"), json=make_cm(f"keep-{i}", i=str(i))).raise_for_status()
        before = c.get(CM.format(ns="default")).json()
    assert first.stop() == 0, first.log()

    second = cluster_factory(tmp_path / "data")
    with second.client() as c:
        after = c.get(CM.format(ns="default")).json()
        assert after["items"] == before["items"]
        created = c.post(CM.format(ns="default"), json=make_cm("new")).json()
    assert int(created["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


def test_acknowledged_writes_survive_kill_9(cluster_factory: Any, tmp_path: Path):
    first = cluster_factory(tmp_path / "data")
    acknowledged = []
    with first.client() as c:
        for i in range(200):
            r = c.post(CM.format(ns="default"), json=make_cm(f"k9-{i}"))
            r.raise_for_status()
            acknowledged.append(f"k9-{i}")
    first.stop(signal.SIGKILL)
    second = cluster_factory(tmp_path / "data")
    with second.client() as c:
        names = {i["metadata"]["name"] for i in c.get(CM.format(ns="default")).json()["items"]}
    assert set(acknowledged) <= names


def test_a_watch_resumed_from_a_compacted_version_gets_410(cluster_factory: Any, tmp_path: Path):
    small = cluster_factory(tmp_path / "data", args=["--watch-history", "10"])
    with small.client() as c:
        old_rv = c.get(CM.format(ns="default")).json()["metadata"]["resourceVersion"]
        for i in range(30):
            c.post(CM.format(ns="default"), json=make_cm(f"churn-{i}")).raise_for_status()
        r = c.get(
            CM.format(ns="default"),
            params={"watch": "true", "resourceVersion": old_rv, "timeoutSeconds": "2"},
        )
    assert r.status_code == 200
    event = json.loads(r.text.splitlines()[0])
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


# -- protocol details -----------------------------------------------------------------------


def test_requests_without_a_valid_token_get_401_but_health_and_version_answer(cluster: Cluster):
    with httpx.Client(base_url=cluster.url, verify=cluster.ca) as anon:
        r = anon.get("/api/v1/namespaces")
        assert r.status_code == 401
        assert r.json()["kind"] == "Status" and r.json()["reason"] == "Unauthorized"
        bad = anon.get("/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        for path in ("/healthz", "/livez", "/readyz"):
            assert anon.get(path).text == "ok"
        assert anon.get("/version").json()["major"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "reason"),
    [
        ("POST", "/api/v1/namespaces/nowhere/configmaps", make_cm("x"), 404, "NotFound"),
        ("GET", "/api/v1/namespaces/default/configmaps/absent", None, 404, "NotFound"),
        ("GET", "/apis/example.com/v1/widgets", None, 404, "NotFound"),
        ("POST", "/api/v1/namespaces/default/configmaps", b"{not json", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces/default/configmaps", make_cm("Bad_Name"), 422, "Invalid"),
        ("PUT", "/api/v1/namespaces", make_cm("x"), 405, "MethodNotAllowed"),
    ],
)
def test_failed_requests_answer_a_status_with_the_right_reason_and_store_nothing(
    cluster: Cluster, method: str, path: str, body: Any, code: int, reason: str
):
    # NB: the cluster is shared with other tests' leftovers (pods, events), so "nothing stored"
    # is checked on the ConfigMaps these requests aim at, not on the global resourceVersion.
    def stored(c: httpx.Client) -> set[tuple[str, str, str]]:
        items = c.get("/api/v1/configmaps").json()["items"]
        return {
            (m["namespace"], m["name"], m["resourceVersion"])
            for m in (i["metadata"] for i in items)
            if m["namespace"] in ("default", "nowhere")
        }

    with cluster.client() as c:
        before = stored(c)
        content = body if isinstance(body, bytes) else json.dumps(body).encode() if body else None
        r = c.request(method, path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == code, r.text
        status = r.json()
        assert status["kind"] == "Status" and status["reason"] == reason and status["code"] == code
        assert status["message"]
        after = stored(c)
    assert after == before


def test_create_twice_is_already_exists_and_generate_name_makes_unique_names(
    cluster: Cluster, ns: str
):
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("once")).raise_for_status()
        again = c.post(CM.format(ns=ns), json=make_cm("once"))
        assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
        names = set()
        for _ in range(5):
            r = c.post(CM.format(ns=ns), json={"metadata": {"generateName": "job-"}})
            names.add(r.json()["metadata"]["name"])
    assert len(names) == 5 and all(n.startswith("job-") and len(n) == 9 for n in names)


def test_generation_moves_only_with_the_spec_and_status_has_its_own_endpoint(
    cluster: Cluster, ns: str
):
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
            },
        },
    }
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    merge = {"content-type": "application/merge-patch+json"}
    with cluster.client() as c:
        created = c.post(base, json=deploy).json()
        assert created["metadata"]["generation"] == 1
        labelled = c.patch(f"{base}/web", json={"metadata": {"labels": {"x": "y"}}}, headers=merge)
        assert labelled.json()["metadata"]["generation"] == 1
        scaled = c.patch(f"{base}/web", json={"spec": {"replicas": 3}}, headers=merge).json()
        assert scaled["metadata"]["generation"] == 2

        # The main endpoint ignores status; the status endpoint changes only status.
        ignored = c.patch(f"{base}/web", json={"status": {"replicas": 42}}, headers=merge).json()
        assert ignored.get("status", {}).get("replicas") != 42
        status = c.patch(
            f"{base}/web/status",
            json={"status": {"observedGeneration": 7}, "spec": {"replicas": 9}},
            headers=merge,
        ).json()
        assert status["status"]["observedGeneration"] == 7
        assert status["spec"]["replicas"] == 3 and status["metadata"]["generation"] == 2


def test_finalizers_hold_a_deletion_until_they_are_removed(cluster: Cluster, ns: str):
    obj = make_cm("held")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=obj).raise_for_status()
        r = c.delete(f"{CM.format(ns=ns)}/held")
        assert r.status_code == 200
        marked = c.get(f"{CM.format(ns=ns)}/held").json()
        assert marked["metadata"]["deletionTimestamp"]
        c.patch(
            f"{CM.format(ns=ns)}/held",
            json={"metadata": {"finalizers": None}},
            headers={"content-type": "application/merge-patch+json"},
        ).raise_for_status()
        assert c.get(f"{CM.format(ns=ns)}/held").status_code == 404


def test_delete_preconditions_and_dry_run_change_nothing(cluster: Cluster, ns: str):
    with cluster.client() as c:
        created = c.post(CM.format(ns=ns), json=make_cm("guarded")).json()
        wrong = c.request(
            "DELETE", f"{CM.format(ns=ns)}/guarded", json={"preconditions": {"uid": "not-the-uid"}}
        )
        assert wrong.status_code == 409
        dry = c.post(CM.format(ns=ns), params={"dryRun": "All"}, json=make_cm("dry"))
        assert dry.status_code == 201 and dry.json()["metadata"]["name"] == "dry"
        assert c.get(f"{CM.format(ns=ns)}/dry").status_code == 404
        dry_del = c.delete(f"{CM.format(ns=ns)}/guarded", params={"dryRun": "All"})
        assert dry_del.status_code == 200
        again = c.get(f"{CM.format(ns=ns)}/guarded").json()
        assert again["metadata"]["uid"] == created["metadata"]["uid"]


def test_deleting_a_namespace_terminates_then_removes_it_with_its_contents(cluster: Cluster):
    ns = cluster.namespace()
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("inside")).raise_for_status()
        r = c.delete(f"/api/v1/namespaces/{ns}")
        assert r.json()["status"]["phase"] == "Terminating"
        blocked = c.post(CM.format(ns=ns), json=make_cm("late"))
        assert blocked.status_code in (403, 404)
        deadline = time.monotonic() + 10
        while c.get(f"/api/v1/namespaces/{ns}").status_code != 404:
            assert time.monotonic() < deadline, "namespace never went away"
            time.sleep(0.1)
        assert c.get(f"{CM.format(ns=ns)}/inside").status_code == 404


def test_list_pages_with_limit_and_continue_and_filters_by_field_and_set_selectors(
    cluster: Cluster, ns: str
):
    with cluster.client() as c:
        for i in range(7):
            obj = make_cm(f"page-{i}")
            obj["metadata"]["labels"] = {"parity": "even" if i % 2 == 0 else "odd"}
            c.post(CM.format(ns=ns), json=obj).raise_for_status()
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            params = {"limit": "3", **({"continue": token} if token else {})}
            body = c.get(CM.format(ns=ns), params=params).json()
            seen += [i["metadata"]["name"] for i in body["items"]]
            pages += 1
            token = body["metadata"].get("continue")
            if not token:
                break
        assert seen == [f"page-{i}" for i in range(7)] and pages == 3
        odd = c.get(CM.format(ns=ns), params={"labelSelector": "parity in (odd)"}).json()
        assert len(odd["items"]) == 3
        one = c.get(CM.format(ns=ns), params={"fieldSelector": "metadata.name=page-4"}).json()
        assert [i["metadata"]["name"] for i in one["items"]] == ["page-4"]


def test_kubectl_get_prints_server_side_table_columns(cluster: Cluster, ns: str):
    with cluster.client() as c:
        c.post(CM.format(ns=ns), json=make_cm("tabled", a="1", b="2")).raise_for_status()
    header, row = cluster.kubectl("-n", ns, "get", "cm", "tabled").stdout.splitlines()[:2]
    assert header.split() == ["NAME", "DATA", "AGE"]
    assert row.split()[:2] == ["tabled", "2"]
    ns_header = cluster.kubectl("get", "ns", ns).stdout.splitlines()[0]
    assert ns_header.split() == ["NAME", "STATUS", "AGE"]


# -- the real corpus ------------------------------------------------------------------------


def _is_kubernetes_manifest(path: Path) -> bool:
    """Kustomize inputs such as Kong's declarative config sit beside manifests; skip them."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return bool(docs) and all(isinstance(d, dict) and "kind" in d for d in docs)


def _corpus_manifests() -> list[Path]:
    apps = CORPUS / "waffle-world" / "apps"
    return sorted(
        p
        for p in apps.glob("*/*/*")
        if p.suffix in (".yaml", ".yml")
        and "templates" not in p.parts
        and p.name not in ("kustomization.yaml", "kustomization.yml")
        and _is_kubernetes_manifest(p)
    )


def test_every_waffle_world_application_manifest_can_be_created(cluster: Cluster):
    files = _corpus_manifests()
    assert len(files) > 40
    namespaces = set()
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("metadata", {}).get("namespace"):
                namespaces.add(doc["metadata"]["namespace"])
    with cluster.client() as c:
        for name in namespaces:
            c.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    failures = []
    for f in files:
        proc = cluster.kubectl("create", "-f", str(f), check=False)
        if proc.returncode == 0:
            continue
        # Custom resources whose CRD is not installed: a clear error naming the missing type.
        istio = "VirtualService" in proc.stderr or "EnvoyFilter" in proc.stderr
        if istio and "ensure CRDs are installed first" in proc.stderr:
            continue
        failures.append(f"{f}: {proc.stderr}")
    assert not failures, "\n".join(failures)


def test_the_legacy_watch_path_streams_events_and_bookmarks_when_asked(cluster: Cluster, ns: str):
    with cluster.client() as c:
        rv = c.get(CM.format(ns=ns)).json()["metadata"]["resourceVersion"]
        c.post(CM.format(ns=ns), json=make_cm("via-watch-path")).raise_for_status()
        r = c.get(
            f"/api/v1/watch/namespaces/{ns}/configmaps",
            params={"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "3"},
        )
    events = [json.loads(line) for line in r.text.splitlines() if line]
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "via-watch-path"
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and set(bookmarks[0]["object"]["metadata"]) == {"resourceVersion"}
