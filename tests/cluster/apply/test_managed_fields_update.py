"""The FieldsV1 of Update entries, as a real API server writes them, through the real kubectl.

Each case runs everyday kubectl verbs (or a status write over HTTPS) against the local cluster
and compares one Update entry of ``managedFields`` with what kube-apiserver writes for the same
requests: a map, pointer struct or list item that the write created carries ``".": {}`` when it
has children; a struct the Go type holds by value (``spec``, ``strategy``, ``template``, a
container's ``resources``, ``status``) does not, unless something new encloses it; an atomic
value (a Deployment's ``selector``) is a leaf. A custom resource has no Go type, so its ``spec``
and ``status`` are created too. The expected trees follow structured-merge-diff's comparison and
entries seen on real clusters (``kubectl create deployment web --image=nginx``, client-side
applies with probes, ports and volumes, custom resources created by kubectl).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from syrup.cluster.apply import managed, schemas
from tests import crds
from tests.conftest import Cluster

Step = Callable[[Cluster, str, str], None]
"""One write of a case: (cluster, namespace, a group name unique to the case)."""


def kubectl(*args: str, input: Any = None) -> Step:
    """Run kubectl in the case's namespace; ``input`` is a manifest (``{group}`` filled in)."""

    def run(cluster: Cluster, ns: str, group: str) -> None:
        text = None if input is None else json.dumps(input).replace("{group}", group)
        cluster.kubectl("-n", ns, *(a.replace("{group}", group) for a in args), input=text)

    return run


def put_status(path: str, status: dict[str, Any], *, manager: str) -> Step:
    """Replace an object's status through its ``/status`` endpoint (a controller's write)."""

    def run(cluster: Cluster, ns: str, group: str) -> None:
        url = path.format(ns=ns, group=group)
        with cluster.client() as c:
            obj = c.get(url).raise_for_status().json()
            obj["status"] = status
            r = c.put(f"{url}/status", params={"fieldManager": manager}, json=obj)
            assert r.status_code == 200, r.text

    return run


def create_crd(cluster: Cluster, ns: str, group: str) -> None:
    with cluster.client() as c:
        r = c.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=gadget_crd(group)
        )
        assert r.status_code == 201, r.text


def gadget_crd(group: str) -> dict[str, Any]:
    """A CRD with a nested object, a map, a list-map, an atomic list and a defaulted field."""
    spec_schema = {
        "type": "object",
        "properties": {
            "size": {"type": "integer"},
            "color": {"type": "string", "default": "red"},
            "owner": {"type": "object", "properties": {"name": {"type": "string"}}},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "zones": {"type": "array", "items": {"type": "string"}},
            "parts": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["id"],
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
                },
            },
        },
    }
    return crds.crd(
        group,
        "Gadget",
        schema={
            "type": "object",
            "properties": {
                "spec": spec_schema,
                "status": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                },
            },
        },
        status=True,
    )


GADGET = {
    "apiVersion": "{group}/v1",
    "kind": "Gadget",
    "metadata": {"name": "g", "labels": {"team": "a"}},
    "spec": {
        "size": 2,
        "owner": {"name": "ann"},
        "tags": {"env": "dev"},
        "zones": ["z1"],
        "parts": [{"id": "p", "n": 1}],
    },
}

API = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "labels": {"app": "api"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {
                "containers": [
                    {
                        "name": "api",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 8080}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/api"}],
                    }
                ],
                "volumes": [{"name": "config", "configMap": {"name": "api-config"}}],
            },
        },
    },
}

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "svc"},
    "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
}

READY = {
    "type": "Ready",
    "status": "True",
    "reason": "Serving",
    "message": "",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}

E: dict[str, Any] = {}
"""A leaf: FieldsV1 writes a member without children as an empty object."""


def node(*leaves: str, **children: Any) -> dict[str, Any]:
    """A node the write created: ``"."`` plus the given leaves and children."""
    return {".": E, **tree(*leaves, **children)}


def tree(*leaves: str, **children: Any) -> dict[str, Any]:
    """A node that existed before the write: its leaves and children, no ``"."``."""
    out: dict[str, Any] = {leaf: E for leaf in leaves}
    out.update(children)
    return out


WEB_POD_SPEC = tree(
    "f:dnsPolicy",
    "f:restartPolicy",
    "f:schedulerName",
    "f:securityContext",
    "f:terminationGracePeriodSeconds",
    **{
        "f:containers": {
            'k:{"name":"nginx"}': node(
                "f:image",
                "f:imagePullPolicy",
                "f:name",
                "f:resources",
                "f:terminationMessagePath",
                "f:terminationMessagePolicy",
            )
        }
    },
)

CREATE_DEPLOYMENT = {
    "f:metadata": {"f:labels": node("f:app")},
    "f:spec": tree(
        "f:progressDeadlineSeconds",
        "f:replicas",
        "f:revisionHistoryLimit",
        "f:selector",
        **{
            "f:strategy": tree(
                "f:type", **{"f:rollingUpdate": node("f:maxSurge", "f:maxUnavailable")}
            ),
            "f:template": tree(
                **{"f:metadata": {"f:labels": node("f:app")}, "f:spec": WEB_POD_SPEC}
            ),
        },
    ),
}

CLIENT_SIDE_APPLY = {
    "f:metadata": {
        "f:annotations": node("f:kubectl.kubernetes.io/last-applied-configuration"),
        "f:labels": node("f:app"),
    },
    "f:spec": tree(
        "f:progressDeadlineSeconds",
        "f:replicas",
        "f:revisionHistoryLimit",
        "f:selector",
        **{
            "f:strategy": tree(
                "f:type", **{"f:rollingUpdate": node("f:maxSurge", "f:maxUnavailable")}
            ),
            "f:template": {
                "f:metadata": {"f:labels": node("f:app")},
                "f:spec": tree(
                    "f:dnsPolicy",
                    "f:restartPolicy",
                    "f:schedulerName",
                    "f:securityContext",
                    "f:terminationGracePeriodSeconds",
                    **{
                        "f:containers": {
                            'k:{"name":"api"}': node(
                                "f:image",
                                "f:imagePullPolicy",
                                "f:name",
                                "f:resources",
                                "f:terminationMessagePath",
                                "f:terminationMessagePolicy",
                                **{
                                    "f:livenessProbe": node(
                                        "f:failureThreshold",
                                        "f:periodSeconds",
                                        "f:successThreshold",
                                        "f:timeoutSeconds",
                                        **{"f:httpGet": node("f:path", "f:port", "f:scheme")},
                                    ),
                                    "f:ports": node(
                                        **{
                                            'k:{"containerPort":8080,"protocol":"TCP"}': node(
                                                "f:containerPort", "f:protocol"
                                            )
                                        }
                                    ),
                                    "f:volumeMounts": node(
                                        **{
                                            'k:{"mountPath":"/etc/api"}': node(
                                                "f:mountPath", "f:name"
                                            )
                                        }
                                    ),
                                },
                            )
                        },
                        "f:volumes": node(
                            **{
                                'k:{"name":"config"}': node(
                                    "f:name", **{"f:configMap": node("f:defaultMode", "f:name")}
                                )
                            }
                        ),
                    },
                ),
            },
        },
    ),
}


@dataclass(frozen=True)
class Case:
    steps: list[Step]
    target: str
    manager: str
    expected: dict[str, Any]
    subresource: str | None = None
    setup: list[Step] = field(default_factory=list)


CASES = [
    pytest.param(
        Case(
            steps=[kubectl("create", "deployment", "web", "--image=nginx")],
            target="deploy/web",
            manager="kubectl-create",
            expected=CREATE_DEPLOYMENT,
        ),
        id="kubectl create deployment marks labels, rollingUpdate and the container, not spec",
    ),
    pytest.param(
        Case(
            steps=[kubectl("create", "cronjob", "cj", "--image=busybox", "--schedule=0 * * * *")],
            target="cronjob/cj",
            manager="kubectl-create",
            expected={
                "f:spec": tree(
                    "f:concurrencyPolicy",
                    "f:failedJobsHistoryLimit",
                    "f:schedule",
                    "f:successfulJobsHistoryLimit",
                    "f:suspend",
                    **{
                        "f:jobTemplate": {
                            "f:metadata": {"f:name": E},
                            "f:spec": {
                                "f:template": {
                                    "f:spec": {
                                        **WEB_POD_SPEC,
                                        "f:containers": {
                                            'k:{"name":"cj"}': WEB_POD_SPEC["f:containers"][
                                                'k:{"name":"nginx"}'
                                            ]
                                        },
                                    }
                                }
                            },
                        }
                    },
                )
            },
        ),
        id="kubectl create cronjob leaves jobTemplate and its spec and template unmarked",
    ),
    pytest.param(
        Case(
            steps=[kubectl("create", "configmap", "c", "--from-literal=a=b")],
            target="cm/c",
            manager="kubectl-create",
            expected={"f:data": node("f:a")},
        ),
        id="kubectl create configmap marks the data map it creates",
    ),
    pytest.param(
        Case(
            steps=[kubectl("apply", "-f", "-", input=API)],
            target="deploy/api",
            manager="kubectl-client-side-apply",
            expected=CLIENT_SIDE_APPLY,
        ),
        id="a client-side apply marks the probe, ports, mounts and volume source it creates",
    ),
    pytest.param(
        Case(
            setup=[kubectl("apply", "-f", "-", input=API)],
            steps=[
                kubectl(
                    "patch",
                    "deploy/api",
                    "-p",
                    json.dumps(
                        {
                            "spec": {
                                "strategy": {"rollingUpdate": {"maxSurge": 2}},
                                "template": {
                                    "spec": {
                                        "containers": [
                                            {"name": "api", "env": [{"name": "A", "value": "1"}]}
                                        ]
                                    }
                                },
                            }
                        }
                    ),
                )
            ],
            target="deploy/api",
            manager="kubectl-patch",
            expected={
                "f:spec": {
                    "f:strategy": {"f:rollingUpdate": {"f:maxSurge": E}},
                    "f:template": {
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"api"}': {
                                    "f:env": node(**{'k:{"name":"A"}': node("f:name", "f:value")})
                                }
                            }
                        }
                    },
                }
            },
        ),
        id="a strategic patch marks only what it creates inside existing objects",
    ),
    pytest.param(
        Case(
            setup=[kubectl("create", "deployment", "web", "--image=nginx")],
            steps=[kubectl("scale", "deploy/web", "--replicas=3")],
            target="deploy/web",
            manager="kubectl",
            subresource="scale",
            expected={"f:spec": {"f:replicas": E}},
        ),
        id="kubectl scale owns spec.replicas through the scale subresource",
    ),
    pytest.param(
        Case(
            setup=[kubectl("create", "deployment", "web", "--image=nginx")],
            steps=[kubectl("label", "deploy/web", "tier=front")],
            target="deploy/web",
            manager="kubectl-label",
            expected={"f:metadata": {"f:labels": {"f:tier": E}}},
        ),
        id="kubectl label adds to labels that exist without a marker",
    ),
    pytest.param(
        Case(
            setup=[kubectl("create", "configmap", "c", "--from-literal=a=b")],
            steps=[kubectl("label", "cm/c", "tier=front")],
            target="cm/c",
            manager="kubectl-label",
            expected={"f:metadata": {"f:labels": node("f:tier")}},
        ),
        id="kubectl label marks the labels map it creates",
    ),
    pytest.param(
        Case(
            setup=[],
            steps=[kubectl("create", "-f", "-", input=SERVICE)],
            target="svc/svc",
            manager="kubectl-create",
            expected={
                "f:spec": tree(
                    "f:internalTrafficPolicy",
                    "f:selector",
                    "f:sessionAffinity",
                    "f:type",
                    **{
                        "f:ports": node(
                            **{
                                'k:{"port":80,"protocol":"TCP"}': node(
                                    "f:port", "f:protocol", "f:targetPort"
                                )
                            }
                        )
                    },
                )
            },
        ),
        id="a Service create owns no allocated address: clusterIP and families come later",
    ),
    pytest.param(
        Case(
            setup=[kubectl("create", "-f", "-", input=SERVICE)],
            steps=[
                put_status(
                    "/api/v1/namespaces/{ns}/services/svc",
                    {"conditions": [READY]},
                    manager="svc-prober",
                )
            ],
            target="svc/svc",
            manager="svc-prober",
            subresource="status",
            expected={
                "f:status": {
                    "f:conditions": node(
                        **{
                            'k:{"type":"Ready"}': node(
                                "f:lastTransitionTime",
                                "f:message",
                                "f:reason",
                                "f:status",
                                "f:type",
                            )
                        }
                    )
                }
            },
        ),
        id="a status write on a built-in kind leaves status unmarked",
    ),
    pytest.param(
        Case(
            setup=[create_crd],
            steps=[kubectl("create", "-f", "-", input=GADGET)],
            target="gadgets.{group}/g",
            manager="kubectl-create",
            expected={
                "f:metadata": {"f:labels": node("f:team")},
                "f:spec": node(
                    "f:color",
                    "f:size",
                    "f:zones",
                    **{
                        "f:owner": node("f:name"),
                        "f:parts": node(**{'k:{"id":"p"}': node("f:id", "f:n")}),
                        "f:tags": node("f:env"),
                    },
                ),
            },
        ),
        id="a custom resource create marks spec and every object below it",
    ),
    pytest.param(
        Case(
            setup=[create_crd, kubectl("create", "-f", "-", input=GADGET)],
            steps=[
                put_status(
                    "/apis/{group}/v1/namespaces/{ns}/gadgets/g",
                    {"phase": "Ready", "observed": {"generation": 1}},
                    manager="gadget-controller",
                )
            ],
            target="gadgets.{group}/g",
            manager="gadget-controller",
            subresource="status",
            expected={
                "f:status": node("f:phase", **{"f:observed": node("f:generation")}),
            },
        ),
        id="a status write on a custom resource marks the status it creates",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_update_entries_carry_the_member_markers_a_real_api_server_writes(
    cluster: Cluster, ns: str, case: Case
) -> None:
    group = f"g{uuid.uuid4().hex[:10]}.example.com"
    for step in case.setup:
        step(cluster, ns, group)
    for step in case.steps:
        step(cluster, ns, group)

    obj = cluster.kubectl_json(
        "-n", ns, "get", case.target.replace("{group}", group), "--show-managed-fields"
    )
    entries = [
        e
        for e in obj["metadata"]["managedFields"]
        if (e["manager"], e["operation"], e.get("subresource"))
        == (case.manager, "Update", case.subresource)
    ]
    assert len(entries) == 1, json.dumps(obj["metadata"]["managedFields"], indent=1)
    assert entries[0]["fieldsV1"] == case.expected, json.dumps(entries[0]["fieldsV1"], indent=1)


# -- the same rules on stored objects, without a server ------------------------------------------


def record(kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` after the manager "m" wrote it over ``old``, with its managedFields."""
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    meta = {"name": "x", "namespace": "n"}
    new = {"apiVersion": api_version, "kind": kind, "metadata": meta, **new}
    managed.record_update(
        old,
        new,
        manager="m",
        schema=schemas.for_kind(api_version, kind),
        now="2026-01-01T00:00:00Z",
    )
    return new


def fields_of(obj: dict[str, Any], manager: str) -> Any:
    found = [
        e["fieldsV1"] for e in obj["metadata"].get("managedFields", []) if e["manager"] == manager
    ]
    return found[0] if found else None


STORED_CASES = [
    pytest.param(
        "ConfigMap",
        {"metadata": {"name": "x", "labels": {}}},
        {"metadata": {"name": "x", "labels": {"a": "b"}}},
        {"f:metadata": {"f:labels": {"f:a": E}}},
        id="keys added to an empty map that exists get no marker on the map",
    ),
    pytest.param(
        "Deployment",
        {"metadata": {"name": "x"}, "spec": {"replicas": 1}},
        {"spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": 2}}}},
        {"f:spec": {"f:strategy": {"f:rollingUpdate": node("f:maxSurge")}}},
        id="a value struct the stored object leaves out still exists",
    ),
    pytest.param(
        "Deployment",
        {"metadata": {"name": "x"}, "spec": {"replicas": 1}},
        {"spec": {"replicas": 1, "strategy": {}}},
        None,
        id="an empty value struct is no change",
    ),
    pytest.param(
        "ConfigMap",
        None,
        {"data": {}, "binaryData": {"k": "YQ=="}},
        {"f:binaryData": node("f:k"), "f:data": E},
        id="an empty map a create writes is a leaf",
    ),
]


@pytest.mark.parametrize(("kind", "old", "new", "expected"), STORED_CASES)
def test_update_sets_judge_absent_fields_as_the_go_types_do(
    kind: str, old: dict[str, Any] | None, new: dict[str, Any], expected: Any
) -> None:
    if old is not None:
        old = {"apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind, **old}
    assert fields_of(record(kind, old, new), "m") == expected


def test_removing_a_map_takes_its_marker_from_the_manager_that_created_it() -> None:
    created = record("ConfigMap", None, {"data": {"a": "b"}, "metadata": {"labels": {"x": "y"}}})
    created["metadata"]["managedFields"][0]["manager"] = "creator"
    after = {k: copy.deepcopy(v) for k, v in created.items() if k != "data"}
    after = record("ConfigMap", created, after)
    assert fields_of(after, "creator") == {"f:metadata": {"f:labels": node("f:x")}}
