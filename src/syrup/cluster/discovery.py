"""Discovery documents: what ``kubectl api-resources`` and client libraries read first.

Answers the legacy discovery endpoints (``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>``,
``/apis/<group>/<version>``) from the live resource registry, so a CRD's resources appear as
soon as it is stored. Subresources are listed as ``<plural>/<sub>`` entries as a real server
does; clients use them to know that ``kubectl scale`` may patch ``deployments/scale``.
"""

from __future__ import annotations

from typing import Any

from syrup.cluster import errors, resources

Obj = dict[str, Any]

_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"]}


class Discovery:
    def __init__(self, registry: resources.Registry) -> None:
        self.registry = registry

    def core_versions(self, server_address: str) -> Obj:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def _group_doc(self, name: str, versions: list[str]) -> Obj:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    def group_list(self) -> Obj:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self._group_doc(g, vs) for g, vs in self.registry.groups().items()],
        }

    def group(self, name: str) -> Obj:
        versions = self.registry.groups().get(name)
        if not versions:
            raise errors.NotFound("the server could not find the requested resource")
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(name, versions)}

    def resource_list(self, group: str, version: str) -> Obj:
        types = [rt for rt in self.registry if rt.group == group and rt.version == version]
        if not types:
            raise errors.NotFound("the server could not find the requested resource")
        entries: list[Obj] = []
        for rt in types:
            entry: Obj = {
                "name": rt.plural,
                "singularName": rt.singular_name,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(rt.verbs),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            entries.append(entry)
            for sub in rt.subresources:
                sub_entry: Obj = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": "Scale" if sub == "scale" else rt.kind,
                    "verbs": _SUB_VERBS.get(sub, ["get"]),
                }
                if sub == "scale":
                    sub_entry["group"] = "autoscaling"
                    sub_entry["version"] = "v1"
                entries.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": entries,
        }

    def paths(self) -> list[str]:
        out = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
        for group, versions in self.registry.groups().items():
            out.append(f"/apis/{group}")
            out.extend(f"/apis/{group}/{v}" for v in versions)
        return out
