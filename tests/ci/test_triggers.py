"""Which events start which workflows: GitHub's filter patterns, paths, cron and inputs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from syrup.ci import events, globbing, workflows
from syrup.errors import InvalidInput


@pytest.mark.parametrize(
    ("patterns", "value", "selected"),
    [
        (["main"], "main", True),
        (["main"], "mainline", False),
        (["releases/*"], "releases/v1", True),
        (["releases/*"], "releases/v1/hotfix", False),
        (["releases/**"], "releases/v1/hotfix", True),
        (["feature/**", "!feature/skip-*"], "feature/skip-me", False),
        (["feature/**", "!feature/skip-*"], "feature/keep", True),
        (["!x", "**"], "x", True),
        (["v[12].[0-9]+.[0-9]+"], "v1.10.3", True),
        (["v[12].[0-9]+.[0-9]+"], "v3.1.0", False),
        (["v.*"], "v.250930", True),
        (["**.js"], "src/app/index.js", True),
        (["docs/**", "!docs/**/*.md"], "docs/a/b.md", False),
        (["**/README.md"], "README.md", True),
        (["**/README.md"], "a/b/README.md", True),
    ],
)
def test_filter_patterns_follow_the_github_cheat_sheet(
    patterns: list[str], value: str, selected: bool
) -> None:
    assert globbing.filter_selects(patterns, value) is selected


def workflow(on: Any) -> workflows.Workflow:
    text = yaml.safe_dump(
        {"on": on, "jobs": {"a": {"runs-on": "x", "steps": [{"run": "true"}]}}}, sort_keys=False
    )
    return workflows.parse(text, path=Path("w.yml"))


def push(ref: str, files: tuple[str, ...] | None = None) -> events.Event:
    return events.Event(name="push", ref=ref, sha="0" * 40, changed_files=files)


@pytest.mark.parametrize(
    ("on", "event", "expected"),
    [
        ("push", push("refs/heads/any"), True),
        ({"push": {"branches": ["main"]}}, push("refs/heads/main"), True),
        ({"push": {"branches": ["main"]}}, push("refs/heads/dev"), False),
        ({"push": {"branches": ["main"]}}, push("refs/tags/v1"), False),
        ({"push": {"tags": ["v*"]}}, push("refs/tags/v1"), True),
        ({"push": {"tags": ["v*"]}}, push("refs/heads/main"), False),
        ({"push": {"branches-ignore": ["wip/**"]}}, push("refs/heads/wip/x"), False),
        ({"push": {"branches-ignore": ["wip/**"]}}, push("refs/heads/main"), True),
        ({"push": {"tags-ignore": ["nightly"]}}, push("refs/tags/nightly"), False),
        ({"push": {"paths": ["src/**"]}}, push("refs/heads/main", ("src/a.py",)), True),
        ({"push": {"paths": ["src/**"]}}, push("refs/heads/main", ("docs/a.md",)), False),
        ({"push": {"paths": ["src/**"]}}, push("refs/heads/main", None), True),
        ({"push": {"paths-ignore": ["**.md"]}}, push("refs/heads/main", ("a.md", "b.md")), False),
        ({"push": {"paths-ignore": ["**.md"]}}, push("refs/heads/main", ("a.md", "b.py")), True),
        (
            {"pull_request": {"branches": ["develop"]}},
            events.Event(name="pull_request", ref="refs/heads/f", sha="0", base_ref="develop"),
            True,
        ),
        (
            {"pull_request": {"branches": ["develop"]}},
            events.Event(name="pull_request", ref="refs/heads/f", sha="0", base_ref="main"),
            False,
        ),
        ({"pull_request": None}, push("refs/heads/main"), False),
        ({"workflow_dispatch": None}, events.Event("workflow_dispatch", "refs/heads/m", "0"), True),
    ],
)
def test_triggers_match_events_as_github_does(on: Any, event: events.Event, expected: bool) -> None:
    assert events.triggers(workflow(on), event) is expected


@pytest.mark.parametrize(
    ("cron", "moment", "expected"),
    [
        ("30 5 * * 1", dt.datetime(2024, 6, 17, 5, 30, tzinfo=dt.UTC), True),
        ("30 5 * * 1", dt.datetime(2024, 6, 18, 5, 30, tzinfo=dt.UTC), False),
        (
            "30 5 * * *",
            dt.datetime(2024, 6, 17, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=9))),
            True,
        ),
    ],
)
def test_schedules_are_evaluated_in_utc(cron: str, moment: dt.datetime, expected: bool) -> None:
    event = events.Event(name="schedule", ref="refs/heads/main", sha="0", time=moment)
    assert events.triggers(workflow({"schedule": [{"cron": cron}]}), event) is expected


DECLARED = {
    "name": {"type": "string", "required": True},
    "debug": {"type": "boolean", "default": False},
    "count": {"type": "number", "default": 2},
    "level": {"type": "choice", "options": ["info", "warn"], "default": "info"},
}


def test_dispatch_inputs_are_typed_and_defaulted() -> None:
    resolved = events.resolve_inputs(
        DECLARED, {"name": "x", "debug": "true", "count": "5"}, where="w"
    )
    assert resolved == {"name": "x", "debug": True, "count": 5, "level": "info"}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing required input 'name'"),
        ({"name": "x", "debug": "yes"}, "must be true or false"),
        ({"name": "x", "count": "many"}, "must be a number"),
        ({"name": "x", "level": "loud"}, "must be one of info, warn"),
        ({"name": "x", "other": "1"}, "unknown input 'other'"),
    ],
)
def test_bad_dispatch_inputs_are_rejected(given: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        events.resolve_inputs(DECLARED, given, where="w")
