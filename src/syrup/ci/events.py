"""Events that start workflows, and which workflows an event triggers.

Trigger rules follow GitHub's "Events that trigger workflows" and "Workflow syntax" pages:

* ``push``: ``branches``/``branches-ignore`` filter branch pushes and ``tags``/``tags-ignore``
  tag pushes; a workflow that filters only branches does not run for tags and the reverse;
  ``paths``/``paths-ignore`` need at least one changed file that is not ignored.
* ``pull_request``: the branch filters apply to the *base* branch.
* ``workflow_dispatch``: typed ``inputs`` (string, boolean, number, choice, environment),
  defaults filled in, a missing required input is an error.
* ``schedule``: a cron line matches the event's time, evaluated in UTC; an event without a
  time (``syrup ci run --event schedule``) runs every scheduled workflow now, as act does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from syrup.ci import globbing
from syrup.ci.workflows import Workflow
from syrup.errors import InvalidInput

EVENT_NAMES = ("push", "pull_request", "workflow_dispatch", "schedule", "workflow_call")


@dataclass(frozen=True)
class Event:
    """What happened: the event name, the ref and commit, and what the event carries."""

    name: str
    ref: str
    sha: str
    base_ref: str | None = None
    changed_files: tuple[str, ...] | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    time: dt.datetime | None = None

    @property
    def ref_name(self) -> str:
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")


def triggers(workflow: Workflow, event: Event) -> bool:
    """Whether ``event`` starts ``workflow``."""
    if event.name not in workflow.triggers:
        return False
    spec = workflow.triggers[event.name]
    if event.name == "push":
        return _push_matches(spec, event)
    if event.name in ("pull_request", "pull_request_target"):
        base = event.base_ref or "main"
        return _branch_filter(spec, base.removeprefix("refs/heads/")) and _paths_match(spec, event)
    if event.name == "schedule":
        entries = _as_list(workflow.raw["on"])
        if event.time is None:
            return bool(entries)
        moment = event.time
        return any(_cron_matches(entry, moment) for entry in entries)
    return True


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        schedule = value.get("schedule")
        return schedule if isinstance(schedule, list) else []
    return []


def _cron_matches(entry: Any, moment: dt.datetime) -> bool:
    if not isinstance(entry, dict) or "cron" not in entry:
        return False
    minute = moment.astimezone(dt.UTC).replace(second=0, microsecond=0, tzinfo=None)
    return bool(croniter.match(str(entry["cron"]), minute))


def _push_matches(spec: Mapping[str, Any], event: Event) -> bool:
    has_branches = "branches" in spec or "branches-ignore" in spec
    has_tags = "tags" in spec or "tags-ignore" in spec
    if event.is_tag:
        if has_branches and not has_tags:
            return False
        if not _filter(spec, "tags", event.ref_name):
            return False
    else:
        if has_tags and not has_branches:
            return False
        if not _branch_filter(spec, event.ref_name):
            return False
    return _paths_match(spec, event)


def _branch_filter(spec: Mapping[str, Any], branch: str) -> bool:
    return _filter(spec, "branches", branch)


def _filter(spec: Mapping[str, Any], kind: str, value: str) -> bool:
    include = spec.get(kind)
    exclude = spec.get(f"{kind}-ignore")
    if include is not None:
        return globbing.filter_selects([str(p) for p in _listify(include)], value)
    if exclude is not None:
        return not globbing.filter_selects([str(p) for p in _listify(exclude)], value)
    return True


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _paths_match(spec: Mapping[str, Any], event: Event) -> bool:
    # Without a list of changed files (a first push, a manual run) path filters pass, as
    # GitHub runs the workflow when it cannot compute a diff.
    if event.changed_files is None:
        return True
    if "paths" in spec:
        patterns = [str(p) for p in _listify(spec["paths"])]
        return any(globbing.filter_selects(patterns, path) for path in event.changed_files)
    if "paths-ignore" in spec:
        patterns = [str(p) for p in _listify(spec["paths-ignore"])]
        return not all(globbing.filter_selects(patterns, path) for path in event.changed_files)
    return True


def resolve_inputs(
    declared: Mapping[str, Any] | None, given: Mapping[str, Any], *, where: str
) -> dict[str, Any]:
    """Type ``workflow_dispatch``/``workflow_call`` inputs, filling defaults.

    Booleans and numbers become real booleans and numbers (GitHub's ``inputs`` context keeps
    the declared type); choices must be one of their options.
    """
    declared = declared or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise InvalidInput(f"unknown input {unknown[0]!r}", where=where)
    resolved: dict[str, Any] = {}
    for name, spec_value in declared.items():
        spec = spec_value if isinstance(spec_value, dict) else {}
        kind = str(spec.get("type", "string"))
        if name in given:
            value = given[name]
        elif "default" in spec:
            value = spec["default"]
        elif spec.get("required"):
            raise InvalidInput(f"missing required input {name!r}", where=where)
        else:
            value = False if kind == "boolean" else ("" if kind != "number" else None)
        resolved[name] = _coerce_input(name, kind, value, spec, where=where)
    return resolved


def _coerce_input(name: str, kind: str, value: Any, spec: Mapping[str, Any], *, where: str) -> Any:
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise InvalidInput(f"input {name!r} must be true or false, not {value!r}", where=where)
        return text == "true"
    if kind == "number":
        if value is None or isinstance(value, int | float):
            return value
        try:
            return float(value) if "." in str(value) else int(str(value))
        except ValueError as error:
            raise InvalidInput(
                f"input {name!r} must be a number, not {value!r}", where=where
            ) from error
    if kind == "choice":
        options = [str(option) for option in spec.get("options") or []]
        if str(value) not in options:
            raise InvalidInput(
                f"input {name!r} must be one of {', '.join(options)}, not {value!r}", where=where
            )
    return "" if value is None else str(value) if not isinstance(value, dict | list) else value
