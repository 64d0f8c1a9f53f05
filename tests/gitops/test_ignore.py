"""ignoreDifferences: one row per form, rule matching, and system-wide defaults."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from syrup import errors
from syrup.gitops import ignore

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "prod",
        "annotations": {"a/b": "x", "keep": "y"},
        "managedFields": [
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "fieldsV1": {
                    "f:spec": {"f:replicas": {}},
                    "f:metadata": {"f:annotations": {"f:keep": {}}},
                },
            },
            {
                "manager": "sidecar-injector",
                "operation": "Apply",
                "fieldsV1": {
                    "f:spec": {
                        "f:template": {
                            "f:spec": {
                                "f:containers": {
                                    'k:{"name":"proxy"}': {".": {}, "f:image": {}, "f:name": {}}
                                }
                            }
                        }
                    }
                },
            },
        ],
    },
    "spec": {
        "replicas": 3,
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "proxy", "image": "proxy:9"},
                ]
            }
        },
    },
}


def spec_of(obj: dict[str, Any]) -> Any:
    return obj["spec"]


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        (
            {"kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
            lambda o: "replicas" not in o["spec"],
        ),
        (
            {"kind": "Deployment", "jsonPointers": ["/metadata/annotations/a~1b"]},
            lambda o: o["metadata"]["annotations"] == {"keep": "y"},
        ),
        (
            {"kind": "Deployment", "jsonPointers": ["/spec/template/spec/containers/1"]},
            lambda o: [c["name"] for c in o["spec"]["template"]["spec"]["containers"]] == ["web"],
        ),
        (
            {"kind": "Deployment", "jsonPointers": ["/spec/not/there"]},
            lambda o: o["spec"]["replicas"] == 3,
        ),
        (
            {
                "kind": "Deployment",
                "jqPathExpressions": [
                    '.spec.template.spec.containers[] | select(.name == "web") | .env'
                ],
            },
            lambda o: "env" not in o["spec"]["template"]["spec"]["containers"][0],
        ),
        (
            {"kind": "Deployment", "managedFieldsManagers": ["kube-controller-manager"]},
            lambda o: "replicas" not in o["spec"] and o["metadata"]["annotations"]["keep"] == "y",
        ),
        (
            {"kind": "Deployment", "managedFieldsManagers": ["sidecar-injector"]},
            lambda o: [c["name"] for c in o["spec"]["template"]["spec"]["containers"]] == ["web"],
        ),
    ],
)
def test_each_ignore_form_removes_its_fields(rule: dict[str, Any], check: Any) -> None:
    rules = ignore.parse([rule])
    original = copy.deepcopy(DEPLOYMENT)
    out = ignore.normalize(DEPLOYMENT, rules)
    assert check(out)
    assert original == DEPLOYMENT  # the input is left alone


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ({"kind": "Deployment"}, True),
        ({"kind": "Deployment", "group": "apps"}, True),
        ({"kind": "Deployment", "group": ""}, False),
        ({"kind": "*", "group": "*"}, True),
        ({"kind": "Deployment", "name": "web", "namespace": "prod"}, True),
        ({"kind": "Deployment", "name": "api"}, False),
        ({"kind": "Deployment", "namespace": "dev"}, False),
        ({"kind": "StatefulSet"}, False),
    ],
)
def test_rules_match_by_group_kind_name_and_namespace(rule: dict[str, Any], matches: bool) -> None:
    [parsed] = ignore.parse([{**rule, "jsonPointers": ["/spec/replicas"]}])
    assert parsed.matches(DEPLOYMENT) is matches
    out = ignore.normalize(DEPLOYMENT, [parsed])
    assert ("replicas" not in out["spec"]) is matches


def test_two_objects_differing_only_in_ignored_fields_compare_equal() -> None:
    live = copy.deepcopy(DEPLOYMENT)
    live["spec"]["replicas"] = 7
    rules = ignore.parse(
        [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]
    )
    assert ignore.normalize(DEPLOYMENT, rules) == ignore.normalize(live, rules)
    assert ignore.normalize(DEPLOYMENT, []) != ignore.normalize(live, [])


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"jsonPointers": ["/a"]}, r"spec\.ignoreDifferences\[0\]\.kind: kind is required"),
        (
            {"kind": "X", "jsonPointers": ["spec/replicas"]},
            r"jsonPointers\[0\]: a JSON pointer starts with '/'",
        ),
        (
            {"kind": "X", "jqPathExpressions": [".spec["]},
            r"jqPathExpressions\[0\]: jq expression '\.spec\[' does not compile",
        ),
        (
            {"kind": "X", "managedFieldsManagers": "kcm"},
            r"managedFieldsManagers: expected a list of strings",
        ),
        ("nope", r"spec\.ignoreDifferences\[0\]: expected a map"),
    ],
)
def test_bad_rules_are_errors_naming_the_field(raw: Any, fragment: str) -> None:
    with pytest.raises(ignore.InvalidRule, match=fragment):
        ignore.parse([raw])


def test_system_wide_defaults_load_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ignore.yaml"
    config.write_text(
        """
ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
resource.customizations.ignoreDifferences.all: |
  managedFieldsManagers:
    - sidecar-injector
resource.customizations.ignoreDifferences.apps_Deployment: |
  jqPathExpressions:
    - '.metadata.annotations.keep'
"""
    )
    rules = ignore.load_defaults(config)
    assert [(r.group, r.kind) for r in rules] == [
        ("apps", "Deployment"),
        ("*", "*"),
        ("apps", "Deployment"),
    ]
    out = ignore.normalize(DEPLOYMENT, rules)
    assert "replicas" not in out["spec"]
    assert "keep" not in out["metadata"]["annotations"]
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["web"]


@pytest.mark.parametrize(
    ("text", "error", "fragment"),
    [
        (
            "ignoreDifferences: [ {kind: X, jsonPointers: [bad]} ]",
            ignore.InvalidRule,
            "ignore.yaml: ignoreDifferences[0]",
        ),
        ("ignoreDifferences: {", errors.ConfigError, "cannot read ignoreDifferences defaults"),
        ("- a list", ignore.InvalidRule, "expected a map"),
    ],
)
def test_a_bad_defaults_file_is_an_error_naming_the_file(
    tmp_path: Path, text: str, error: type[Exception], fragment: str
) -> None:
    config = tmp_path / "ignore.yaml"
    config.write_text(text)
    with pytest.raises(error) as info:
        ignore.load_defaults(config)
    assert fragment in str(info.value)
    assert str(config) in str(info.value)
