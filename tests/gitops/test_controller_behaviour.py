"""Acceptance: drift and self-heal, pruning, refresh on request, and bad input of every kind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syrup.kube import cache as kcache
from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import EXAMPLES, Repo


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def synced(client: Any, ns: str, name: str, *, timeout: float = 60) -> dict[str, Any]:
    """Wait until the app's last sync succeeded and it compares Synced (health aside)."""

    def probe() -> dict[str, Any] | None:
        app = harness.get_app(client, ns, name)
        status = app.get("status") or {}
        ok = (status.get("operationState") or {}).get("phase") == "Succeeded"
        return app if ok and harness.app_state(app)[0] == "Synced" else None

    return harness.wait_for(f"{ns}/{name} synced", probe, timeout=timeout)


def deployment(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = cluster.kubectl_json("get", "deployment", name, "-n", ns)
    return out


@pytest.mark.parametrize(
    ("change", "field", "drifted"),
    [
        (("scale", "deployment/guestbook-ui", "--replicas=3"), ("spec", "replicas"), 3),
        (
            ("set", "image", "deployment/guestbook-ui", "guestbook-ui=nginx:1.27"),
            ("image",),
            "nginx:1.27",
        ),
    ],
    ids=["kubectl scale", "kubectl set image"],
)
def test_live_drift_is_reverted_by_self_heal_and_only_reported_without_it(
    cluster: Cluster,
    ns: str,
    make_repo: Callable[..., Repo],
    running: harness.Running,
    change: tuple[str, ...],
    field: tuple[str, ...],
    drifted: Any,
) -> None:
    repo = make_repo(EXAMPLES)
    healing, watching = f"{ns}-heal", f"{ns}-watch"

    def read(dep: dict[str, Any]) -> Any:
        if field == ("image",):
            return dep["spec"]["template"]["spec"]["containers"][0]["image"]
        return dep["spec"]["replicas"]

    with cluster.client() as client:
        for name, heal in ((healing, True), (watching, False)):
            app = harness.application(
                name, ns, repo=repo.url, path="guestbook", dest=name, automated={"selfHeal": heal}
            )
            harness.apply_app(client, app)
        for name in (healing, watching):
            synced(client, ns, name)
        original = read(deployment(cluster, watching, "guestbook-ui"))
        syncs = running.run(lambda: running.controller.syncs)
        for name in (healing, watching):
            cluster.kubectl(*change, "-n", name)

        # Self-heal syncs again and puts the field back within 10 s.
        harness.wait_for(
            "self-heal to revert the drift",
            lambda: (
                running.run(lambda: running.controller.syncs) > syncs
                and read(deployment(cluster, healing, "guestbook-ui")) == original
            ),
            timeout=10,
        )

        # Without self-heal the app turns OutOfSync and the diff shows exactly that field.
        harness.wait_for(
            "the unhealed app to turn OutOfSync",
            lambda: harness.app_state(harness.get_app(client, ns, watching))[0] == "OutOfSync",
            timeout=10,
        )
    assert read(deployment(cluster, watching, "guestbook-ui")) == drifted
    diffs = running.call(running.controller.diff(ns, watching))
    assert list(diffs) == [f"Deployment.apps {watching}/guestbook-ui"]
    changed = [
        (line[0], line[1:].strip())
        for line in next(iter(diffs.values())).splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    # The image sits in the containers list, so its YAML line starts with the item marker.
    key = "- image" if field == ("image",) else "replicas"
    assert changed == [("-", f"{key}: {drifted}"), ("+", f"{key}: {original}")]


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def test_a_file_deleted_from_git_is_pruned_only_when_prune_is_on(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/keep.yaml", CM.format(name="keep"))
    repo.write("app/gone.yaml", CM.format(name="gone"))
    repo.commit()
    pruning, keeping = f"{ns}-prune", f"{ns}-keep"
    with cluster.client() as client:
        for name, prune in ((pruning, True), (keeping, False)):
            app = harness.application(
                name, ns, repo=repo.url, path="app", dest=name, automated={"prune": prune}
            )
            harness.apply_app(client, app)
        for name in (pruning, keeping):
            harness.wait_synced_healthy(client, ns, name)

        (repo.work / "app" / "gone.yaml").unlink()
        head = repo.commit("delete gone.yaml")
        assert running.refresh_repo(repo.url) == 2

        def revision_of(name: str) -> Callable[[], dict[str, Any] | None]:
            def probe() -> dict[str, Any] | None:
                app = harness.get_app(client, ns, name)
                op = (app.get("status") or {}).get("operationState") or {}
                return app if op.get("syncResult", {}).get("revision") == head else None

            return probe

        harness.wait_for("the pruning app to sync the new commit", revision_of(pruning))
        harness.wait_synced_healthy(client, ns, pruning)
        gone = cluster.kubectl("get", "configmap", "gone", "-n", pruning, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        results = harness.get_app(client, ns, pruning)["status"]["operationState"]["syncResult"]
        assert {"kind": "ConfigMap", "name": "gone", "status": "Pruned"}.items() <= next(
            r for r in results["resources"] if r["name"] == "gone"
        ).items()

        kept = harness.wait_for("the keeping app to sync the new commit", revision_of(keeping))
    cluster.kubectl("get", "configmap", "gone", "-n", keeping)
    status = kept["status"]
    assert status["sync"]["status"] == "OutOfSync"
    row = next(r for r in status["resources"] if r["name"] == "gone")
    assert row["requiresPruning"] is True and row["status"] == "OutOfSync"
    result = next(
        r for r in status["operationState"]["syncResult"]["resources"] if r["name"] == "gone"
    )
    assert result["status"] == "PruneSkipped"


BAD_CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    "chart/templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
        "  a: {{ .Values.missing.deeper }}\n"
    ),
}


def condition(client: Any, ns: str, name: str, kind: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        conds = (harness.get_app(client, ns, name).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == kind), None)

    return harness.wait_for(f"a {kind} condition on {name}", probe, timeout=30)


def failed_sync(client: Any, ns: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        op = (harness.get_app(client, ns, name).get("status") or {}).get("operationState") or {}
        return op if op.get("phase") == "Failed" else None

    return harness.wait_for(f"a failed sync of {name}", probe, timeout=30)


def test_bad_input_of_each_kind_is_reported_and_other_apps_keep_syncing(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("good/cm.yaml", CM.format(name="good"))
    repo.write("yaml/cm.yaml", CM.format(name="precious"))
    repo.write("reject/cm.yaml", CM.format(name="Not_A_Valid_Name"))
    for rel, text in BAD_CHART.items():
        repo.write(rel, text)
    repo.commit()

    def app(suffix: str, path: str, **kw: Any) -> dict[str, Any]:
        kw.setdefault("repo", repo.url)
        kw.setdefault("automated", {})
        return harness.application(f"{ns}-{suffix}", ns, path=path, dest=f"{ns}-{suffix}", **kw)

    with cluster.client() as client:
        harness.apply_app(client, app("yaml", "yaml"))
        harness.wait_synced_healthy(client, ns, f"{ns}-yaml")
        before = cluster.kubectl_json("get", "configmap", "precious", "-n", f"{ns}-yaml")

        # Invalid YAML: a ComparisonError naming the file and line; nothing applied.
        repo.write("yaml/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n")
        repo.commit("break the YAML")
        running.refresh_repo(repo.url)
        cond = condition(client, ns, f"{ns}-yaml", "ComparisonError")
        assert cond["message"].startswith("yaml/cm.yaml:5: invalid YAML"), cond
        after = cluster.kubectl_json("get", "configmap", "precious", "-n", f"{ns}-yaml")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

        cases = {
            "helm": app("helm", "chart"),
            "revision": app("revision", "good", revision="no-such-branch"),
            "unreachable": app("unreachable", "good", repo=str(repo.bare) + "-missing"),
            "namespace": app("namespace", "good", options=[]),
            "reject": app("reject", "reject"),
        }
        for obj in cases.values():
            harness.apply_app(client, obj)
        harness.apply_app(client, app("good", "good"))

        helm_error = condition(client, ns, f"{ns}-helm", "ComparisonError")["message"]
        assert "chart" in helm_error and "templates/cm.yaml:6" in helm_error
        revision = condition(client, ns, f"{ns}-revision", "ComparisonError")["message"]
        assert "no-such-branch" in revision
        unreachable = condition(client, ns, f"{ns}-unreachable", "ComparisonError")["message"]
        assert "-missing" in unreachable
        missing_ns = failed_sync(client, ns, f"{ns}-namespace")["message"]
        assert f"{ns}-namespace" in missing_ns and "not found" in missing_ns
        rejected = failed_sync(client, ns, f"{ns}-reject")
        assert "Not_A_Valid_Name" in rejected["message"]
        assert rejected["syncResult"]["resources"][0]["status"] == "SyncFailed"
        assert condition(client, ns, f"{ns}-reject", "SyncError")

        # Meanwhile a good app syncs, and keeps syncing new commits.
        harness.wait_synced_healthy(client, ns, f"{ns}-good")
        repo.write("good/cm2.yaml", CM.format(name="second"))
        repo.commit("add a config map")
        running.refresh_repo(repo.url)
        harness.wait_for(
            "the good app to apply the new commit",
            lambda: (
                cluster.kubectl(
                    "get", "configmap", "second", "-n", f"{ns}-good", check=False
                ).returncode
                == 0
            ),
            timeout=30,
        )


def test_the_refresh_annotation_and_an_operation_drive_a_manual_app(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/a.yaml", CM.format(name="a"))
    first = repo.commit()
    name = f"{ns}-manual"
    path = f"{harness.APPS.format(ns=ns)}/{name}"
    with cluster.client() as client:
        harness.apply_app(
            client, harness.application(name, ns, repo=repo.url, path="app", dest=name)
        )
        # Without automation nothing is applied: the app is OutOfSync on the first commit.
        app = harness.wait_for(
            "an OutOfSync comparison",
            lambda: (
                (a := harness.get_app(client, ns, name))
                and harness.app_state(a)[0] == "OutOfSync"
                and a
            ),
        )
        assert app["status"]["sync"]["revision"] == first

        # A new commit shows up at once when the refresh annotation asks for it.
        repo.write("app/b.yaml", CM.format(name="b"))
        second = repo.commit()
        annotate = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}}}
        headers = {"Content-Type": "application/merge-patch+json"}
        assert client.patch(path, json=annotate, headers=headers).status_code == 200
        app = harness.wait_for(
            "the refreshed revision",
            lambda: (
                (a := harness.get_app(client, ns, name))
                and a.get("status", {}).get("sync", {}).get("revision") == second
                and a
            ),
        )
        assert "argocd.argoproj.io/refresh" not in (app["metadata"].get("annotations") or {})

        # An operation (what `argocd app sync` writes) syncs it and is cleared afterwards.
        operation = {
            "operation": {
                "sync": {"revision": second, "prune": True},
                "initiatedBy": {"username": "alice"},
            }
        }
        assert client.patch(path, json=operation, headers=headers).status_code == 200
        app = harness.wait_synced_healthy(client, ns, name)
    assert "operation" not in app
    op = app["status"]["operationState"]
    assert op["phase"] == "Succeeded" and op["operation"]["initiatedBy"] == {"username": "alice"}
    cluster.kubectl("get", "configmap", "b", "-n", name)


def test_server_defaults_and_fields_of_other_managers_do_not_make_an_app_out_of_sync(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo(EXAMPLES)
    name = f"{ns}-owned"
    with cluster.client() as client:
        app = harness.application(name, ns, repo=repo.url, path="guestbook", dest=name)
        app["spec"]["syncPolicy"]["automated"] = {}
        harness.apply_app(client, app)
        synced(client, ns, name)
        # Another manager adds what Git never mentions; the server defaulted the rest.
        cluster.kubectl("annotate", "deployment", "guestbook-ui", "team=web", "-n", name)
        cluster.kubectl("label", "service", "guestbook-ui", "tier=front", "-n", name)
        key = kcache.Key("apps", "Deployment", name, "guestbook-ui")

        def seen() -> bool:
            live = running.run(lambda: running.controller.cache.get(key)) or {}
            return "team" in (live.get("metadata", {}).get("annotations") or {})

        harness.wait_for("the controller's cache to see the annotation", seen)
        syncs = running.run(lambda: running.controller.syncs)
        running.run(lambda: running.controller.refresh(ns, name))
        harness.wait_for("an idle controller", lambda: running.run(running.controller.idle))
        status = harness.get_app(client, ns, name)["status"]
    assert status["sync"]["status"] == "Synced"
    assert all(r["status"] == "Synced" for r in status["resources"])
    assert running.run(lambda: running.controller.syncs) == syncs
    live = cluster.kubectl_json("get", "deployment", "guestbook-ui", "-n", name)
    assert live["metadata"]["annotations"]["team"] == "web"
    assert live["spec"]["strategy"]["type"] == "RollingUpdate"  # a server default


def test_a_broken_commit_keeps_the_app_unknown_retries_on_backoff_and_fails_an_operation(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("app/a.yaml", CM.format(name="a"))
    repo.commit()
    name = f"{ns}-broken"
    key = f"{ns}/{name}"
    path = f"{harness.APPS.format(ns=ns)}/{name}"
    with cluster.client() as client:
        harness.apply_app(
            client,
            harness.application(name, ns, repo=repo.url, path="app", dest=name, automated={}),
        )
        harness.wait_synced_healthy(client, ns, name)

        repo.write("app/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n")
        repo.commit("break the YAML")
        running.refresh_repo(repo.url)
        # Another app that never rendered at all: its path does not exist.
        never = f"{ns}-never"
        harness.apply_app(
            client, harness.application(never, ns, repo=repo.url, path="nope", dest=never)
        )
        condition(client, ns, name, "ComparisonError")
        condition(client, ns, never, "ComparisonError")

        def failures() -> tuple[int, int]:
            states = running.controller.states
            return states[key].failures, states[f"{ns}/{never}"].failures

        first = running.run(failures)

        # While Git stays broken the app is never shown compared against its last good
        # manifests, and it is retried on its backoff (0.5 s doubling to 3 s here), not on
        # every wake-up of the scheduler (twice a second).
        seen = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            status = harness.get_app(client, ns, name).get("status") or {}
            seen.append(
                (
                    status["sync"]["status"],
                    [c["type"] for c in status.get("conditions") or []],
                )
            )
            time.sleep(0.2)
        assert set(map(str, seen)) == {str(("Unknown", ["ComparisonError"]))}, seen
        last = running.run(failures)
        retries = (last[0] - first[0], last[1] - first[1])
        assert all(1 <= n <= 5 for n in retries), retries

        # A sync asked for meanwhile fails at once with the reason, and is cleared.
        operation = {"operation": {"sync": {}, "initiatedBy": {"username": "alice"}}}
        headers = {"Content-Type": "application/merge-patch+json"}
        assert client.patch(path, json=operation, headers=headers).status_code == 200
        app = harness.wait_for(
            "the operation to fail",
            lambda: (
                (a := harness.get_app(client, ns, name))
                and "operation" not in a
                and (a["status"].get("operationState") or {}).get("phase") == "Failed"
                and a
            ),
            timeout=10,
        )
    op = app["status"]["operationState"]
    assert op["message"].startswith("ComparisonError: app/a.yaml:5: invalid YAML"), op
    assert op["operation"]["initiatedBy"] == {"username": "alice"}


def test_the_retry_backoff_stays_finite_after_very_many_failures(
    running: harness.Running,
) -> None:
    from syrup.gitops.controller import AppState

    state = AppState(failures=5000)
    running.controller._backoff(state)
    assert state.failures == 5001
    assert 0 < state.retry_at - time.monotonic() <= running.controller.settings.retry_max_seconds
