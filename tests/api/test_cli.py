"""The ``syrup`` CLI against a running ``syrup up``: exit codes, tables and parsed JSON."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.harness import PASSWORD, Up, make_repo, plain, unique, wait_for
from tests.conftest import SYRUP, Cluster


@pytest.fixture
def cli(up: Up, tmp_path: Path) -> Any:
    """Run ``syrup`` with a private config file; log in first."""
    env = {**os.environ, "SYRUP_CONFIG": str(tmp_path / "config"), "NO_COLOR": "1"}
    env.pop("SYRUP_SERVER", None)
    env.pop("SYRUP_AUTH_TOKEN", None)

    def run(
        *args: str, check: int | None = 0, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [SYRUP, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"syrup {' '.join(args)} exited {proc.returncode}, not {check}:\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    run("login", up.url, "--username", "admin", "--password", PASSWORD)
    return run


def test_login_writes_the_config_and_a_wrong_password_exits_2(
    up: Up, cli: Any, tmp_path: Path
) -> None:
    config = yaml.safe_load((tmp_path / "config").read_text())
    context = config["current-context"]
    assert config["contexts"][context]["server"] == up.url
    assert config["contexts"][context]["token"].startswith("syr_")
    assert oct((tmp_path / "config").stat().st_mode & 0o777) == "0o600"
    bad = cli("login", up.url, "--password", "wrong", check=2)
    assert "invalid username or password" in bad.stderr


def test_commands_without_login_exit_2_and_say_how_to_log_in(tmp_path: Path) -> None:
    env = {**os.environ, "SYRUP_CONFIG": str(tmp_path / "none")}
    proc = subprocess.run(
        [SYRUP, "app", "list"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 2
    assert "syrup login" in proc.stderr


@pytest.mark.timeout(900)  # some thirty CLI processes and two syncs, on a loaded machine
def test_app_lifecycle_from_the_cli(up: Up, cli: Any, cluster: Cluster, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    name, dest = unique("cli"), unique("ns")
    cli(
        "app", "create", name, "--repo", repo.url, "--path", "app", "--revision", "main",
        "--dest-server", "https://kubernetes.default.svc", "--dest-namespace", dest,
        "--sync-option", "CreateNamespace=true", "--label", "team=cli",
    )  # fmt: skip

    # Not automated: a diff exists before the first sync (exit 1), none after (exit 0).
    wait_for("rendered", lambda: cli("app", "diff", name, check=None).returncode == 1, timeout=120)
    synced = cli("app", "sync", name, "--prune", "--timeout", "200")
    assert "resources done" in synced.stdout
    assert f"application '{name}' synced" in synced.stdout
    assert cli("app", "diff", name, check=0).stdout == ""
    cli("app", "wait", name, "--health", "--sync", "--timeout", "120")

    listed = json.loads(cli("app", "list", "-o", "json", "-l", "team=cli").stdout)
    assert name in [a["metadata"]["name"] for a in listed]
    assert name in cli("app", "list", "-o", "name").stdout.split()
    table = plain(cli("app", "list").stdout)
    assert "NAME" in table and name in table and "Synced" in table
    assert "REPO" in cli("app", "list", "-o", "wide").stdout
    got = json.loads(cli("app", "get", name, "-o", "json").stdout)
    assert got["status"]["health"]["status"] == "Healthy"
    assert yaml.safe_load(cli("app", "get", name, "-o", "yaml").stdout)["metadata"]["name"] == name
    shown = plain(cli("app", "get", name).stdout)
    assert "Health Status: Healthy" in shown and "Deployment" in shown

    cluster.kubectl(
        "-n", dest, "patch", "configmap", "web-config", "-p", '{"data":{"GREETING":"x"}}'
    )
    drift = wait_for(
        "drift", lambda: (p := cli("app", "diff", name, check=None)).returncode == 1 and p
    )
    assert "-  GREETING: x" in drift.stdout and "+  GREETING: hello" in drift.stdout

    resources = json.loads(cli("app", "resources", name, "-o", "json").stdout)
    assert {r["kind"] for r in resources} == {"ConfigMap", "Deployment"}
    manifests = list(yaml.safe_load_all(cli("app", "manifests", name).stdout))
    assert {m["kind"] for m in manifests} == {"ConfigMap", "Deployment"}
    history = json.loads(cli("app", "history", name, "-o", "json").stdout)
    assert history[0]["id"] == 0
    cli("app", "refresh", name, "--hard")
    rolled = cli("app", "rollback", name, "0", "--timeout", "120")
    assert f"application '{name}' rolled back to 0" in rolled.stdout
    # Without an id, the deploy before the latest, as `argocd app rollback` does.
    entries = json.loads(cli("app", "history", name, "-o", "json").stdout)
    again = cli("app", "rollback", name, "--timeout", "120")
    assert f"rolled back to {entries[-2]['id']}" in again.stdout
    assert len(json.loads(cli("app", "history", name, "-o", "json").stdout)) == len(entries) + 1
    assert cli("app", "terminate-op", name, check=2).stderr

    cli("app", "set", name, "--sync-policy", "automated", "--self-heal", "--auto-prune")
    policy = json.loads(cli("app", "get", name, "-o", "json").stdout)["spec"]["syncPolicy"]
    assert policy["automated"] == {"selfHeal": True, "prune": True}
    cli("app", "unset", name, "--sync-option", "CreateNamespace=true")
    policy = json.loads(cli("app", "get", name, "-o", "json").stdout)["spec"]["syncPolicy"]
    assert policy.get("syncOptions") == []

    cli("app", "delete", name, "-y")
    wait_for("deleted", lambda: cli("app", "get", name, check=None).returncode == 2)


def test_a_failed_sync_exits_1(up: Up, cli: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    bad_port = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 70000}]},
    }
    repo.write("app/bad.yaml", [bad_port])
    repo.push("invalid object")
    name = unique("fail")
    cli(
        "app", "create", name, "--repo", repo.url, "--path", "app", "--revision", "main",
        "--dest-server", "https://kubernetes.default.svc", "--dest-namespace", unique("ns"),
        "--sync-option", "CreateNamespace=true",
    )  # fmt: skip
    wait_for("rendered", lambda: cli("app", "diff", name, check=None).returncode == 1, timeout=120)
    proc = cli("app", "sync", name, "--timeout", "120", check=1)
    assert "sync Failed" in proc.stderr or "sync Error" in proc.stderr


def test_wait_times_out_with_exit_1(up: Up, cli: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    name = unique("slow")
    cli(
        "app", "create", name, "--repo", repo.url, "--path", "app", "--revision", "main",
        "--dest-server", "https://kubernetes.default.svc", "--dest-namespace", unique("ns"),
    )  # fmt: skip
    proc = cli("app", "wait", name, "--sync", "--timeout", "2", check=1)
    assert "timed out" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["app", "create", "x", "--repo", "file:///r", "--dest-namespace", "n"],
            "spec.destination",
        ),
        (
            ["app", "create", "x", "--dest-server", "https://kubernetes.default.svc"],
            "spec.source.repoURL",
        ),
        (["app", "get", "no-such-app"], "not found"),
        # Brackets in a message are printed as they are, not read as style markup.
        (["app", "sync", "x", "--resource", "[red]bad[/red]"], "[red]bad[/red]"),
        (["app", "sync", "x", "--resource", "bad"], "GROUP:KIND:NAME"),
        (["app", "create", "x", "--self-heal"], "--sync-policy automated"),
        (["proj", "create", "p", "--dest", "nocomma"], "SERVER,NAMESPACE"),
    ],
)
def test_bad_input_exits_2_with_the_reason(cli: Any, args: list[str], message: str) -> None:
    proc = cli(*args, check=2)
    assert message in proc.stderr


def test_repo_proj_cluster_and_account_commands(up: Up, cli: Any, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cli("repo", "add", repo.url, "--username", "git", "--password", "pw")
    repos = json.loads(cli("repo", "list", "-o", "json").stdout)
    assert {"repo": repo.url, "hasCredentials": True}.items() <= next(
        r for r in repos if r["repo"] == repo.url
    ).items()
    assert repo.url in cli("repo", "list").stdout
    cli("repo", "rm", repo.url)
    assert repo.url not in cli("repo", "list", "-o", "name").stdout
    assert "cannot reach" in cli("repo", "add", str(tmp_path / "nope.git"), check=2).stderr

    proj = unique("proj")
    cli("proj", "create", proj, "-d", "team", "--src", "*", "--dest", "*,team-*")
    assert proj in cli("proj", "list", "-o", "name").stdout.split()
    got = json.loads(cli("proj", "get", proj, "-o", "json").stdout)
    assert got["spec"]["destinations"] == [{"server": "*", "namespace": "team-*"}]
    assert "team-*" in cli("proj", "get", proj).stdout

    token = cli("account", "generate-token", "--id", "ci", "--expires-in", "1h").stdout.strip()
    env = {
        **os.environ,
        "SYRUP_SERVER": up.url,
        "SYRUP_AUTH_TOKEN": token,
        "SYRUP_CONFIG": "/nonexistent",
    }
    proc = subprocess.run(
        [SYRUP, "app", "list", "-o", "json"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0 and isinstance(json.loads(proc.stdout), list)
    assert "admin" in cli("account", "list", "-o", "name").stdout.split()


@pytest.mark.parametrize(
    ("app", "shown"),
    [
        # Requested, not yet picked up: the failure on record is the previous operation's.
        ({"operation": {"sync": {}}, "status": {"operationState": {"phase": "Failed"}}}, "Pending"),
        # Picked up but its state not yet written: still the previous startedAt.
        ({"status": {"operationState": {"phase": "Failed", "startedAt": "t1"}}}, "Pending"),
        ({"status": {"operationState": {"phase": "Running", "startedAt": "t2"}}}, "Running"),
        ({"status": {"operationState": {"phase": "Failed", "startedAt": "t2"}}}, "Failed"),
    ],
)
def test_sync_progress_does_not_show_the_previous_operation_as_ours(
    app: dict[str, Any], shown: str
) -> None:
    from syrup.cli.argocd import _progress

    assert _progress(app, {}, previous="t1").endswith(f"operation {shown}")


def test_a_malformed_application_stored_with_kubectl_does_not_break_list_or_get(
    up: Up, cli: Any, cluster: Cluster
) -> None:
    # The API refuses such a spec; kubectl bypasses it and the CLI must still work.
    name = unique("bad")
    bad = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "file:///nowhere", "path": "."},
            "destination": [{"namespace": "x"}],
        },
    }
    apps = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
    with cluster.client() as client:
        response = client.post(apps, json=bad)
        assert response.status_code == 201, response.text
    try:
        wait_for(
            "the spec error in the app's status",
            lambda: "spec.destination" in cli("app", "get", name).stdout,
        )
        listed = cli("app", "list").stdout
        assert name in listed
        shown = cli("app", "get", name).stdout
        assert "InvalidSpecError" in shown
        # Nothing can be compared: diff and manifests say why instead of reporting success.
        for command in ("diff", "manifests"):
            proc = cli("app", command, name, check=2)
            assert "InvalidSpecError: spec.destination" in proc.stderr, proc.stderr
    finally:
        with cluster.client() as client:
            client.delete(f"{apps}/{name}")


def test_a_sync_without_prune_ends_and_names_what_waits_to_be_pruned(
    up: Up, cli: Any, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "extra"}}
    repo.write("app/extra.yaml", [extra])
    repo.push("an extra config map")
    name = unique("noprune")
    cli(
        "app", "create", name, "--repo", repo.url, "--path", "app", "--revision", "main",
        "--dest-server", "https://kubernetes.default.svc", "--dest-namespace", unique("ns"),
        "--sync-option", "CreateNamespace=true",
    )  # fmt: skip
    cli("app", "sync", name, "--timeout", "120")
    (repo.work / "app" / "extra.yaml").unlink()
    repo.push("drop the extra config map")
    cli("app", "get", name, "--refresh")
    wait_for("the app to see the removal", lambda: "OutOfSync" in cli("app", "get", name).stdout)
    # The diff shows what a sync with --prune would delete.
    shown = cli("app", "diff", name, check=1).stdout
    assert "===== core/ConfigMap" in shown and "extra" in shown, shown
    assert "-  name: extra" in shown, shown
    # A dry run lists what a sync would do, as Argo CD does, and changes nothing.
    dry = cli("app", "sync", name, "--dry-run", "--prune", "--timeout", "60").stdout
    assert "ConfigMap/extra: Pruned configmap/extra pruned (dry run)" in dry, dry
    assert "Deployment/web: Synced deployment.apps/web configured (dry run)" in dry, dry
    assert "extra" in cli("app", "diff", name, check=1).stdout
    # The app stays OutOfSync (the ConfigMap waits for --prune), yet the sync is done.
    proc = cli("app", "sync", name, "--timeout", "60")
    assert "ConfigMap/extra: requires pruning (sync with --prune)" in proc.stdout, proc.stdout
    assert "OutOfSync" in cli("app", "get", name).stdout
    # Operations record the user who asked for them.
    status = json.loads(cli("app", "get", name, "-o", "json").stdout)["status"]
    assert status["operationState"]["operation"]["initiatedBy"] == {"username": "admin"}
    assert status["history"][-1]["initiatedBy"] == {"username": "admin"}
