"""Acceptance: deleting an app-of-apps parent with its finalizer cascades to every child.

The waffle-world repository's root Application (``autodeploy-app``) and each child carry
``resources-finalizer.argocd.argoproj.io``. Deleting the root deletes every child Application,
each child deletes its own resources, and only then do the Applications go. Objects in the
same namespaces that no app tracks stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import WAFFLE, Repo
from tests.gitops.test_controller_waffle import ISTIO_KINDS, ROOT_APP, URL, child_sources, istio_crd

TRACKING = "app.kubernetes.io/instance"


@pytest.mark.timeout(600)
def test_deleting_the_waffle_world_root_removes_every_child_and_their_resources(
    cluster_factory: Callable[..., Cluster],
    make_repo: Callable[..., Repo],
    git_rewrite: Callable[[str, Repo], None],
    tmp_path: Path,
) -> None:
    repo = make_repo(WAFFLE)
    git_rewrite(URL, repo)
    cluster = cluster_factory()
    with cluster.client() as client:
        for doc in yaml.safe_load_all((WAFFLE / "misc/apps/namespace.yaml").read_text()):
            if doc:
                harness.apply(client, doc, "/api/v1/namespaces")
        # The Istio kinds many children use, so that they sync.
        for kind, plural in ISTIO_KINDS.items():
            harness.apply(
                client,
                istio_crd(kind, plural),
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            )
    nodes = cluster.kubectl_json("get", "nodes")["items"]
    cluster.kubectl("label", "node", nodes[0]["metadata"]["name"], "phase=prod")
    # Something in a team namespace that no Application tracks.
    cluster.kubectl("create", "configmap", "hand-made", "-n", "snutt-prod", "--from-literal=a=1")
    children = child_sources()

    run = harness.Running(harness.settings(cluster.kubeconfig, tmp_path / "data", "argocd"))
    try:
        with cluster.client() as client:
            parent = harness.application(ROOT_APP, "argocd", repo=URL, path="apps", dest="argocd")
            parent["spec"]["syncPolicy"]["automated"] = {}
            parent["metadata"]["finalizers"] = ["resources-finalizer.argocd.argoproj.io"]
            harness.apply_app(client, parent)

            def all_children() -> set[str] | None:
                items = client.get(harness.APPS.format(ns="argocd")).json()["items"]
                names = {a["metadata"]["name"] for a in items} - {ROOT_APP}
                return names if names == set(children) else None

            harness.wait_for("every child Application", all_children, timeout=90)

            def deployed() -> list[str] | None:
                deps = cluster.kubectl_json("get", "deployments", "-A", "-l", TRACKING)["items"]
                owners = sorted({d["metadata"]["labels"][TRACKING] for d in deps})
                return owners if len(owners) >= 10 else None

            owners = harness.wait_for("children's Deployments", deployed, timeout=180)
            assert all(o in children for o in owners)

            response = client.delete(f"{harness.APPS.format(ns='argocd')}/{ROOT_APP}")
            assert response.status_code in (200, 202), response.text

            def apps_gone() -> bool:
                return client.get(harness.APPS.format(ns="argocd")).json()["items"] == []

            try:
                harness.wait_for("every Application deleted", apps_gone, timeout=240)
            except AssertionError:
                items = client.get(harness.APPS.format(ns="argocd")).json()["items"]
                left = {a["metadata"]["name"]: a["metadata"].get("finalizers") for a in items}
                tracked = run.run(
                    lambda: [str(k) for k in run.controller.cache.by_app.get(ROOT_APP, ())]
                )
                raise AssertionError(f"Applications left: {left}; tracked: {tracked}") from None

        def resources_gone() -> bool:
            for kind in ("deployments", "services", "configmaps", "cronjobs"):
                items = cluster.kubectl_json("get", kind, "-A", "-l", TRACKING)["items"]
                alive = [i for i in items if not i["metadata"].get("deletionTimestamp")]
                if alive:
                    return False
            return True

        harness.wait_for("every child's resources deleted", resources_gone, timeout=120)
        kept = cluster.kubectl_json("get", "configmap", "hand-made", "-n", "snutt-prod")
        assert kept["data"] == {"a": "1"}
        namespaces = {n["metadata"]["name"] for n in cluster.kubectl_json("get", "ns")["items"]}
        assert "snutt-prod" in namespaces
    finally:
        run.stop()
