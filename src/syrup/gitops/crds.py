"""The ``Application`` and ``AppProject`` CustomResourceDefinitions Syrup installs when missing.

They mirror Argo CD's (group ``argoproj.io``, version ``v1alpha1``, namespaced, the same short
names) with an open schema: Argo CD's own CRDs carry a 20,000-line OpenAPI schema that adds
nothing to what the controller checks when it reads a spec. Like Argo CD's, they have no
``status`` subresource: the controller writes ``status`` (and clears ``operation``) with
ordinary patches.
"""

from __future__ import annotations

from typing import Any

from syrup.gitops import models


def _crd(kind: str, plural: str, short: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{models.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "syrup"},
        },
        "spec": {
            "group": models.GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


APPLICATION = _crd("Application", "applications", ["app", "apps"])
APPPROJECT = _crd("AppProject", "appprojects", ["appproj", "appprojs"])
ALL = (APPLICATION, APPPROJECT)


def default_project(namespace: str) -> dict[str, Any]:
    """Argo CD's ``default`` project: any repository, any destination."""
    return {
        "apiVersion": models.API_VERSION,
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": namespace},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
