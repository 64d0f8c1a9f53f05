"""Sync and compare options: one row per option, app-level and per resource."""

from __future__ import annotations

from typing import Any

import pytest

from syrup.gitops import options


def resource(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": annotations},
    }


@pytest.mark.parametrize(
    ("item", "field", "value"),
    [
        ("PruneLast=true", "prune_last", True),
        ("ApplyOutOfSyncOnly=true", "apply_out_of_sync_only", True),
        ("Replace=true", "replace", True),
        ("ServerSideApply=true", "server_side_apply", True),
        ("ServerSideApply=false", "server_side_apply", False),
        ("PrunePropagationPolicy=background", "prune_propagation", options.Propagation.BACKGROUND),
        ("PrunePropagationPolicy=orphan", "prune_propagation", options.Propagation.ORPHAN),
        ("RespectIgnoreDifferences=true", "respect_ignore_differences", True),
        ("SkipDryRunOnMissingResource=true", "skip_dry_run_on_missing_resource", True),
        ("Prune=false", "prune", options.Removal.NEVER),
        ("Prune=confirm", "prune", options.Removal.CONFIRM),
        ("Delete=false", "delete", options.Removal.NEVER),
        ("CreateNamespace=true", "create_namespace", True),
        ("Validate=false", "validate", False),
        ("FailOnSharedResource=true", "fail_on_shared_resource", True),
        (" CreateNamespace=TRUE ", "create_namespace", True),
    ],
)
def test_each_app_level_option_sets_its_field(item: str, field: str, value: object) -> None:
    parsed = options.parse([item])
    assert getattr(parsed, field) == value
    # Nothing else is set.
    others = {k: v for k, v in vars(parsed).items() if k != field and v is not None}
    assert others == {}


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        (["PruneLas=true"], "unknown option 'PruneLas'"),
        (["PruneLast"], "option 'PruneLast' needs a value"),
        (["PruneLast=yes"], "PruneLast must be true or false, got 'yes'"),
        (["PrunePropagationPolicy=later"], "PrunePropagationPolicy must be one of foreground"),
        (["Prune=maybe"], "Prune must be one of true, false, confirm"),
    ],
)
def test_bad_app_options_are_errors_naming_the_option_and_the_field(
    items: list[str], fragment: str
) -> None:
    with pytest.raises(options.InvalidOption) as info:
        options.parse(items)
    assert fragment in str(info.value)
    assert str(info.value).startswith("spec.syncPolicy.syncOptions: ")


def test_unset_options_take_argo_cd_defaults() -> None:
    opts = options.parse([])
    assert opts.may_prune and opts.may_delete and opts.validates
    assert opts.propagation is options.Propagation.FOREGROUND
    assert opts.propagation.api_value == "Foreground"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({options.SYNC_OPTIONS: "Prune=false"}, {"prune": options.Removal.NEVER}),
        ({options.SYNC_OPTIONS: "Delete=false"}, {"delete": options.Removal.NEVER}),
        (
            {options.SYNC_OPTIONS: "Replace=true,ServerSideApply=false"},
            {"replace": True, "server_side_apply": False},
        ),
        (
            {options.SYNC_OPTIONS: "SkipDryRunOnMissingResource=true"},
            {"skip_dry_run_on_missing_resource": True},
        ),
        ({options.COMPARE_OPTIONS: "IgnoreExtraneous"}, {"ignore_extraneous": True}),
        ({options.COMPARE_OPTIONS: "ServerSideDiff=true"}, {"server_side_diff": True}),
        ({}, {}),
    ],
)
def test_resource_annotations_set_options_for_that_resource(
    annotations: dict[str, str], expected: dict[str, object]
) -> None:
    opts = options.for_resource(resource(**annotations))
    assert {k: v for k, v in vars(opts).items() if v is not None} == expected


def test_a_resource_option_wins_over_the_app_option_and_the_rest_is_inherited() -> None:
    app = options.parse(["ServerSideApply=true", "PruneLast=true", "Validate=false"])
    mine = options.effective(app, resource(**{options.SYNC_OPTIONS: "ServerSideApply=false"}))
    assert mine.server_side_apply is False
    assert mine.prune_last is True
    assert mine.validates is False


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        (
            {options.SYNC_OPTIONS: "Prune=nope"},
            "ConfigMap/c: annotation argocd.argoproj.io/sync-options",
        ),
        (
            {options.COMPARE_OPTIONS: "IgnoreExtranous"},
            "annotation argocd.argoproj.io/compare-options",
        ),
    ],
)
def test_bad_resource_options_name_the_object_and_the_annotation(
    annotations: dict[str, str], fragment: str
) -> None:
    with pytest.raises(options.InvalidOption, match=fragment):
        options.for_resource(resource(**annotations))
