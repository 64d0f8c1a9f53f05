"""The OpenAPI documents kubectl reads (``explain`` and client-side apply look kinds up by GVK)."""

from __future__ import annotations

from typing import Any

from syrup.cluster.apply import openapi, schemas
from tests import crds


def _by_gvk(doc: dict[str, Any], group: str, version: str, kind: str) -> dict[str, Any]:
    for schema in doc["components"]["schemas"].values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if (gvk["group"], gvk["version"], gvk["kind"]) == (group, version, kind):
                found: dict[str, Any] = schema
                return found
    raise AssertionError(f"{group}/{version} {kind} is not in the document")


def test_the_v3_index_points_at_each_group_version_with_a_hash() -> None:
    paths = openapi.v3_index()["paths"]
    assert paths["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    assert "api/v1" in paths


def test_a_group_version_document_holds_its_kinds_in_openapi_form_with_patch_metadata() -> None:
    doc = openapi.v3_group_version("apis/apps/v1")
    assert doc is not None
    deployment = _by_gvk(doc, "apps", "v1", "Deployment")
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    containers = pod_spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["type"] == "array", "JSON-schema type lists become OpenAPI types"
    patch_ops = [p["patch"] for p in doc["paths"].values()]
    gvks = [op["x-kubernetes-group-version-kind"]["kind"] for op in patch_ops]
    assert "Deployment" in gvks
    params = {p["name"] for p in patch_ops[0]["parameters"]}
    assert "fieldValidation" in params
    int_or_string = doc["components"]["schemas"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string == {"type": "string", "format": "int-or-string"}


def test_a_registered_crd_appears_in_v3_and_v2_and_leaves_when_unregistered() -> None:
    crd = crds.crd(
        "openapi.example.com",
        "Gadget",
        schema={
            "type": "object",
            "properties": {"spec": {"type": "object"}},
        },
    )
    schemas.register_crd(crd)
    try:
        assert "apis/openapi.example.com/v1" in openapi.v3_index()["paths"]
        doc = openapi.v3_group_version("openapi.example.com/v1")
        assert doc is not None
        gadget = _by_gvk(doc, "openapi.example.com", "v1", "Gadget")
        assert "spec" in gadget["properties"]
        v2 = openapi.v2_document()
        assert "com.example.openapi.v1.Gadget" in v2["definitions"]
    finally:
        schemas.unregister_crd("gadgets.openapi.example.com")
    assert openapi.v3_group_version("openapi.example.com/v1") is None
