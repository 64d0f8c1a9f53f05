"""Defaults a real API server fills in (pkg/apis/{core,apps,batch}/v1/defaults.go)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

from syrup.cluster.apply import defaults, schemas


def defaulted(
    obj: dict[str, Any],
    *,
    old: dict[str, Any] | None = None,
    allocate_cluster_ip: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """Defaults, then (for Services) the address allocation the admission runs after them."""
    out = copy.deepcopy(obj)
    schema = schemas.for_kind(out["apiVersion"], out["kind"])
    defaults.apply_defaults(out, schema=schema, old=old)
    if out["kind"] == "Service":
        defaults.allocate_service_addresses(out, allocate_cluster_ip)
    return out


POD_SPEC = {
    "containers": [
        {
            "name": "app",
            "image": "nginx",
            "ports": [{"containerPort": 80}],
            "readinessProbe": {"httpGet": {"port": 80}},
        },
        {"name": "side", "image": "busybox:1.36"},
    ],
    "volumes": [
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "s", "secret": {"secretName": "s"}},
    ],
}


def test_a_deployment_gets_the_workload_pod_and_container_defaults() -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"selector": {}, "template": {"spec": copy.deepcopy(POD_SPEC)}},
    }
    out = defaulted(dep)["spec"]
    assert out["replicas"] == 1
    assert out["revisionHistoryLimit"] == 10
    assert out["progressDeadlineSeconds"] == 600
    assert out["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod = out["template"]["spec"]
    assert (pod["restartPolicy"], pod["dnsPolicy"], pod["schedulerName"]) == (
        "Always",
        "ClusterFirst",
        "default-scheduler",
    )
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == {}
    app, side = pod["containers"]
    assert app["imagePullPolicy"] == "Always", "an untagged image is pulled always"
    assert side["imagePullPolicy"] == "IfNotPresent"
    assert app["terminationMessagePath"] == "/dev/termination-log"
    assert app["terminationMessagePolicy"] == "File"
    assert app["resources"] == {}
    assert app["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    probe = app["readinessProbe"]
    assert (
        probe["timeoutSeconds"],
        probe["periodSeconds"],
        probe["successThreshold"],
        probe["failureThreshold"],
    ) == (1, 10, 1, 3)
    assert probe["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert [v.get("configMap", v.get("secret"))["defaultMode"] for v in pod["volumes"]] == [
        420,
        420,
    ]


def test_defaulting_twice_changes_nothing() -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}},
    }
    once = defaulted(dep)
    assert defaulted(once) == once


def test_a_recreate_strategy_gets_no_rolling_update_block() -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"strategy": {"type": "Recreate"}},
    }
    assert defaulted(dep)["spec"]["strategy"] == {"type": "Recreate"}


def test_statefulset_daemonset_job_and_cronjob_defaults() -> None:
    sts = defaulted(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}, "spec": {}}
    )["spec"]
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    ds = defaulted(
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {}}
    )["spec"]
    assert ds["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    job = defaulted(
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {}}
    )["spec"]
    assert (job["backoffLimit"], job["completions"], job["parallelism"]) == (6, 1, 1)
    cron = defaulted(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": copy.deepcopy(POD_SPEC)}}}},
        }
    )["spec"]
    assert cron["concurrencyPolicy"] == "Allow"
    assert (cron["successfulJobsHistoryLimit"], cron["failedJobsHistoryLimit"]) == (3, 1)
    assert cron["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Always"


def test_a_service_gets_a_cluster_ip_tcp_ports_and_target_port_equal_to_port() -> None:
    ips = (f"10.96.0.{n}" for n in itertools.count(10))
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }
    out = defaulted(svc, allocate_cluster_ip=lambda: next(ips))
    spec = out["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["clusterIP"] == "10.96.0.10"
    assert spec["clusterIPs"] == ["10.96.0.10"]
    # An update without clusterIP keeps the allocated one instead of taking a new address.
    again = defaulted(svc, old=out, allocate_cluster_ip=lambda: next(ips))
    assert again["spec"]["clusterIP"] == "10.96.0.10"


def test_a_headless_or_external_name_service_allocates_nothing() -> None:
    def fail() -> str:
        raise AssertionError("no address should be allocated")

    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "h"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
    }
    assert defaulted(headless, allocate_cluster_ip=fail)["spec"]["clusterIP"] == "None"
    external = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "e"},
        "spec": {"type": "ExternalName", "externalName": "x.example.com"},
    }
    assert "clusterIP" not in defaulted(external, allocate_cluster_ip=fail)["spec"]
