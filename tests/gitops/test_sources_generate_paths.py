"""manifest-generate-paths: a commit re-renders only the apps whose listed paths it touched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syrup.gitops import models
from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import Repo


def configmap(name: str, value: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: '{value}'\n"
    )


@pytest.fixture
def running(cluster: Cluster, ns: str, tmp_path: Path, git_home: Path) -> Iterator[harness.Running]:
    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", ns))
    yield run
    run.stop()


def at_revision(client: Any, ns: str, names: list[str], sha: str) -> bool:
    for name in names:
        status = harness.get_app(client, ns, name).get("status") or {}
        sync = status.get("sync") or {}
        if sync.get("revision") != sha or sync.get("status") != "Synced":
            return False
    return True


def test_a_commit_under_one_apps_generate_paths_re_renders_that_app_only(
    cluster: Cluster, ns: str, make_repo: Callable[..., Repo], running: harness.Running
) -> None:
    repo = make_repo()
    repo.write("apps/a/cm.yaml", configmap("a", "1"))
    repo.write("apps/b/cm.yaml", configmap("b", "1"))
    repo.write("shared/settings.txt", "one\n")
    repo.commit("two apps")
    listing, plain = f"{ns}-a", f"{ns}-b"
    with cluster.client() as client:
        for name, path, paths in ((listing, "apps/a", ".;/shared"), (plain, "apps/b", ".")):
            app = harness.application(
                name, ns, repo=repo.url, path=path, dest=ns, automated={}, options=[]
            )
            app["metadata"]["annotations"] = {models.GENERATE_PATHS_ANNOTATION: paths}
            harness.apply_app(client, app)
        harness.wait_for(
            "both apps synced", lambda: at_revision(client, ns, [listing, plain], repo.head())
        )
        counts = running.run(lambda: dict(running.controller.renders.renders_by_app))

        # A file outside both app folders, under the path one app lists.
        repo.write("shared/settings.txt", "two\n")
        sha = repo.commit("shared settings")
        running.refresh_repo(repo.url)
        harness.wait_for(
            "both apps at the new commit", lambda: at_revision(client, ns, [listing, plain], sha)
        )
        after = running.run(lambda: dict(running.controller.renders.renders_by_app))
        assert after[listing] == counts[listing] + 1
        assert after[plain] == counts[plain]

        # The other app's own folder: only it renders again.
        repo.write("apps/b/cm.yaml", configmap("b", "2"))
        sha = repo.commit("b changes")
        running.refresh_repo(repo.url)
        harness.wait_for(
            "both apps at the second commit",
            lambda: at_revision(client, ns, [listing, plain], sha),
        )
        last = running.run(lambda: dict(running.controller.renders.renders_by_app))
        assert (last[listing], last[plain]) == (after[listing], after[plain] + 1)
    live = cluster.kubectl_json("get", "configmap", "b", "-n", ns)
    assert live["data"]["value"] == "2"
