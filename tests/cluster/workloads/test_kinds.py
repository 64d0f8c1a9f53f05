"""StatefulSets, DaemonSets, Services, volumes, Ingress, HPA, scheduling and garbage
collection, each checked through kubectl the way a user or a GitOps health check reads them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests import crds
from tests.cluster.workloads.conftest import Scoped, wait_for


def apply(cluster: Scoped, *objects: dict[str, Any]) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def volumes_of(cluster: Scoped) -> list[Any]:
    """PersistentVolumes bound to claims in the test's namespace."""
    return [
        pv
        for pv in cluster.kubectl_json("get", "pv")["items"]
        if pv["spec"].get("claimRef", {}).get("namespace") == cluster.namespace
    ]


def pod_template(app: str, image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [
                {"name": app, "image": image, "ports": [{"name": "http", "containerPort": 8080}]}
            ],
            **spec,
        },
    }


def test_a_statefulset_creates_ordinal_pods_with_claims_and_rolls_out(fast: Scoped) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": pod_template("db", "postgres:16"),
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    apply(fast, sts)
    fast.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    pods = fast.kubectl_json("get", "pods", "-l", "app=db")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1", "db-2"]
    assert all(p["spec"]["hostname"] == p["metadata"]["name"] for p in pods)
    claims = fast.kubectl_json("get", "pvc")["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1", "data-db-2"]
    wait_for(
        lambda: all(
            c["status"].get("phase") == "Bound" for c in fast.kubectl_json("get", "pvc")["items"]
        ),
        what="claims bound",
    )
    assert len(volumes_of(fast)) == 3

    # Ordered creation: db-0 was created before db-1 and db-2.
    created = {p["metadata"]["name"]: p["metadata"]["creationTimestamp"] for p in pods}
    assert created["db-0"] <= created["db-1"] <= created["db-2"]

    first = fast.kubectl_json("get", "statefulset", "db")["status"]
    fast.kubectl("set", "image", "statefulset/db", "db=postgres:17")
    fast.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    status = fast.kubectl_json("get", "statefulset", "db")["status"]
    assert status["currentRevision"] == status["updateRevision"] != first["updateRevision"]
    assert status["updatedReplicas"] == 3 and status["readyReplicas"] == 3
    images = {
        p["spec"]["containers"][0]["image"]
        for p in fast.kubectl_json("get", "pods", "-l", "app=db")["items"]
    }
    assert images == {"postgres:17"}
    revisions = fast.kubectl_json("get", "controllerrevisions")["items"]
    assert len(revisions) == 2

    # Scaling down removes the highest ordinal; the claims stay.
    fast.kubectl("scale", "statefulset/db", "--replicas=1")
    wait_for(
        lambda: (
            [
                p["metadata"]["name"]
                for p in fast.kubectl_json("get", "pods", "-l", "app=db")["items"]
            ]
            == ["db-0"]
        ),
        what="only db-0 left",
    )
    assert len(fast.kubectl_json("get", "pvc")["items"]) == 3


def test_a_daemonset_runs_one_pod_per_matching_node(fast: Scoped) -> None:
    fast.kubectl("label", "node", "syrup-node-2", "logs=yes")
    ds_all = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": pod_template("agent", "fluent-bit:3"),
        },
    }
    ds_some = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "logs"},
        "spec": {
            "selector": {"matchLabels": {"app": "logs"}},
            "template": pod_template("logs", nodeSelector={"logs": "yes"}),
        },
    }
    apply(fast, ds_all, ds_some)
    fast.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    fast.kubectl("rollout", "status", "daemonset/logs", "--timeout=60s")
    agents = fast.kubectl_json("get", "pods", "-l", "app=agent")["items"]
    assert sorted(p["spec"]["nodeName"] for p in agents) == ["syrup-node-1", "syrup-node-2"]
    logs = fast.kubectl_json("get", "pods", "-l", "app=logs")["items"]
    assert [p["spec"]["nodeName"] for p in logs] == ["syrup-node-2"]
    status = fast.kubectl_json("get", "daemonset", "agent")["status"]
    assert status["desiredNumberScheduled"] == 2 and status["numberReady"] == 2

    # A node gaining the label gets a pod; losing it removes the pod.
    fast.kubectl("label", "node", "syrup-node-1", "logs=yes")
    wait_for(
        lambda: len(fast.kubectl_json("get", "pods", "-l", "app=logs")["items"]) == 2,
        what="a logs pod on the newly labelled node",
    )
    fast.kubectl("label", "node", "syrup-node-1", "logs-")
    wait_for(
        lambda: (
            [
                p["spec"]["nodeName"]
                for p in fast.kubectl_json("get", "pods", "-l", "app=logs")["items"]
            ]
            == ["syrup-node-2"]
        ),
        what="the logs pod to leave the unlabelled node",
    )

    fast.kubectl("set", "image", "daemonset/agent", "agent=fluent-bit:4")
    fast.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    images = {
        p["spec"]["containers"][0]["image"]
        for p in fast.kubectl_json("get", "pods", "-l", "app=agent")["items"]
    }
    assert images == {"fluent-bit:4"}


def test_services_get_endpoints_slices_and_load_balancer_addresses(fast: Scoped) -> None:
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template("web"),
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    apply(fast, deploy, svc, ingress, hpa)
    fast.kubectl("rollout", "status", "deployment/web", "--timeout=60s")

    def ready_addresses() -> Any:
        subsets = fast.kubectl_json("get", "endpoints", "web").get("subsets") or []
        addresses = [a for s in subsets for a in s.get("addresses", [])]
        return subsets if len(addresses) == 2 else None

    subsets = wait_for(ready_addresses, what="two ready endpoint addresses")
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    pod_ips = {
        p["status"]["podIP"] for p in fast.kubectl_json("get", "pods", "-l", "app=web")["items"]
    }
    assert {a["ip"] for a in subsets[0]["addresses"]} == pod_ips

    slices = fast.kubectl_json("get", "endpointslices", "-l", "kubernetes.io/service-name=web")[
        "items"
    ]
    assert len(slices) == 1
    assert {e["addresses"][0] for e in slices[0]["endpoints"]} == pod_ips
    assert all(e["conditions"]["ready"] for e in slices[0]["endpoints"])

    lb = wait_for(
        lambda: (
            fast.kubectl_json("get", "service", "web")
            .get("status", {})
            .get("loadBalancer", {})
            .get("ingress")
        ),
        what="a load balancer address",
    )
    assert lb[0]["ip"]
    ing = wait_for(
        lambda: (
            fast.kubectl_json("get", "ingress", "web")
            .get("status", {})
            .get("loadBalancer", {})
            .get("ingress")
        ),
        what="an ingress address",
    )
    assert ing[0]["ip"]

    hpa_status = wait_for(
        lambda: fast.kubectl_json("get", "hpa", "web").get("status", {}).get("conditions"),
        what="HPA conditions",
    )
    by_type = {c["type"]: c for c in hpa_status}
    assert by_type["AbleToScale"]["status"] == "True"
    assert by_type["ScalingActive"]["status"] == "False"
    hpa_live = fast.kubectl_json("get", "hpa", "web")["status"]
    assert hpa_live["currentReplicas"] == 2 and not hpa_live.get("currentMetrics")

    # Scaling to zero empties the endpoints; deleting the Service removes them.
    fast.kubectl("scale", "deployment/web", "--replicas=0")
    wait_for(
        lambda: not fast.kubectl_json("get", "endpoints", "web").get("subsets"),
        what="empty endpoints",
    )
    fast.kubectl("delete", "service", "web")
    wait_for(
        lambda: "NotFound" in fast.kubectl("get", "endpoints", "web", check=False).stderr,
        what="endpoints removed",
    )
    wait_for(
        lambda: not fast.kubectl_json("get", "endpointslices")["items"],
        what="endpoint slices collected",
    )


def test_claims_bind_to_provisioned_volumes_or_wait_for_a_missing_class(fast: Scoped) -> None:
    claims = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}},
                **extra,
            },
        }
        for name, extra in (("plain", {}), ("gp2", {"storageClassName": "gp2"}))
    ]
    apply(fast, *claims)
    plain = wait_for(
        lambda: (
            (c := fast.kubectl_json("get", "pvc", "plain")).get("status", {}).get("phase")
            == "Bound"
            and c
        ),
        what="the claim to bind",
    )
    assert plain["spec"]["storageClassName"] == "standard"
    pv = fast.kubectl_json("get", "pv", plain["spec"]["volumeName"])
    assert pv["spec"]["claimRef"]["name"] == "plain"
    assert pv["status"]["phase"] == "Bound"
    assert plain["status"]["capacity"]["storage"] == "5Gi"

    wait_for(
        lambda: "ProvisioningFailed" in fast.kubectl("get", "events").stdout,
        what="ProvisioningFailed",
    )
    assert fast.kubectl_json("get", "pvc", "gp2")["status"]["phase"] == "Pending"

    fast.kubectl("delete", "pvc", "plain")
    wait_for(lambda: not volumes_of(fast), what="the volume reclaimed")


def test_an_unschedulable_pod_stays_pending_with_a_reason(fast: Scoped) -> None:
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27", **resources}], **extra},
        }
        for name, resources, extra in (
            ("picky", {}, {"nodeSelector": {"disk": "ssd"}}),
            ("greedy", {"resources": {"requests": {"cpu": "500"}}}, {}),
            (
                "affine",
                {},
                {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": ["syrup-node-2"],
                                            }
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                },
            ),
        )
    ]
    apply(fast, *pods)
    fast.kubectl("wait", "--for=condition=Ready", "pod/affine", "--timeout=60s")
    assert fast.kubectl_json("get", "pod", "affine")["spec"]["nodeName"] == "syrup-node-2"

    def scheduled_condition(name: str) -> Any:
        conds = fast.kubectl_json("get", "pod", name).get("status", {}).get("conditions") or []
        return next(
            (c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None
        )

    picky = wait_for(lambda: scheduled_condition("picky"), what="picky unschedulable")
    assert picky["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in picky["message"]
    greedy = wait_for(lambda: scheduled_condition("greedy"), what="greedy unschedulable")
    assert "Insufficient cpu" in greedy["message"]
    assert "FailedScheduling" in fast.kubectl("get", "events").stdout

    # A node gaining the label lets the picky pod in.
    fast.kubectl("label", "node", "syrup-node-1", "disk=ssd")
    fast.kubectl("wait", "--for=condition=Ready", "pod/picky", "--timeout=60s")


@pytest.mark.parametrize(
    ("cascade", "dependents_remain"),
    [("background", False), ("foreground", False), ("orphan", True)],
)
def test_deleting_a_deployment_cascades_as_asked(
    fast: Scoped, cascade: str, dependents_remain: bool
) -> None:
    fast.kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
    fast.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    fast.kubectl("delete", "deployment", "web", f"--cascade={cascade}", "--wait=true", timeout=90)
    assert "NotFound" in fast.kubectl("get", "deployment", "web", check=False).stderr

    def leftovers() -> tuple[int, int]:
        rs = fast.kubectl_json("get", "rs", "-l", "app=web")["items"]
        pods = fast.kubectl_json("get", "pods", "-l", "app=web")["items"]
        return len(rs), len(pods)

    if dependents_remain:
        rs = fast.kubectl_json("get", "rs", "-l", "app=web")["items"]
        assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
        assert leftovers() == (1, 2)
    else:
        wait_for(lambda: leftovers() == (0, 0), what="dependents deleted")


def test_a_foreground_delete_of_a_kind_no_controller_follows_finishes_after_its_dependents(
    fast: Scoped,
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}.example.com"
    crd = crds.crd(group, "Widget")
    fast.cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    fast.cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s"
    )
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    wait_for(
        lambda: (
            fast.kubectl("apply", "-f", "-", input=json.dumps(widget), check=False).returncode == 0
        ),
        what="widgets served",
    )
    uid = fast.kubectl_json("get", f"widgets.{group}", "w")["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Widget",
                    "name": "w",
                    "uid": uid,
                    "blockOwnerDeletion": True,
                }
            ],
        },
    }
    apply(fast, owned)
    fast.kubectl("create", "role", "reader", "--verb=get", "--resource=pods")

    # Neither kind has an informer in the collector; both deletions still complete.
    fast.kubectl(
        "delete", f"widgets.{group}", "w", "--cascade=foreground", "--wait=true", timeout=60
    )
    assert "NotFound" in fast.kubectl("get", "configmap", "owned", check=False).stderr
    fast.kubectl("delete", "role", "reader", "--cascade=foreground", "--wait=true", timeout=60)
    assert "NotFound" in fast.kubectl("get", "role", "reader", check=False).stderr
    fast.cluster.kubectl("delete", "crd", f"widgets.{group}", "--wait=false")
