"""Workflow files: loading, validation and the typed model the planner works on.

A workflow is checked in three passes, each error naming the file, line and key:

1. YAML syntax (PyYAML, keeping each key's line; ``on`` stays a string key as GitHub reads
   it, not YAML 1.1's boolean);
2. the published GitHub workflow JSON schema that ``check-jsonschema`` vendors
   (``github-workflows.json``);
3. the rules the schema cannot express: ``needs`` naming existing jobs without cycles, steps
   with exactly one of ``run``/``uses``, unique step ids, expressions that parse, and a
   ``workflow_call`` caller passing the inputs its callee requires.

The model keeps the raw mappings for values that are evaluated late (``with``, ``env``,
``strategy``) and types the structure the planner walks.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from syrup.ci import expressions
from syrup.errors import ConfigError, InvalidInput

WORKFLOW_DIR = Path(".github") / "workflows"

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Step:
    """One entry of a job's ``steps`` list."""

    index: int
    raw: Mapping[str, Any]

    @property
    def id(self) -> str | None:
        value = self.raw.get("id")
        return str(value) if value is not None else None

    @property
    def uses(self) -> str | None:
        value = self.raw.get("uses")
        return str(value) if value is not None else None

    @property
    def run(self) -> str | None:
        value = self.raw.get("run")
        return str(value) if value is not None else None

    @property
    def display_name(self) -> str:
        if self.raw.get("name"):
            return str(self.raw["name"])
        if self.uses:
            return f"Run {self.uses}"
        first = (self.run or "").strip().splitlines()
        return f"Run {first[0]}" if first else f"step {self.index + 1}"


@dataclass(frozen=True)
class Job:
    """One entry of ``jobs``: a normal job with steps, or a call to a reusable workflow."""

    id: str
    raw: Mapping[str, Any]
    steps: tuple[Step, ...]
    needs: tuple[str, ...]

    @property
    def uses(self) -> str | None:
        value = self.raw.get("uses")
        return str(value) if value is not None else None

    @property
    def display_name(self) -> str:
        return str(self.raw.get("name") or self.id)


@dataclass(frozen=True)
class Workflow:
    """A loaded, validated workflow file."""

    path: Path
    raw: Mapping[str, Any]
    triggers: Mapping[str, Mapping[str, Any]]
    jobs: Mapping[str, Job]
    lines: Mapping[JsonPath, int] = field(repr=False)
    text: str = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or self.path.name)

    def where(self, path: JsonPath) -> str:
        """``file:line: key.path`` for an error about the value at ``path``."""
        return _where(self.path, self.lines, path)


def discover(root: Path) -> list[Path]:
    """Workflow files of a checkout (``.github/workflows/*.yml|yaml``), sorted by name."""
    directory = root / WORKFLOW_DIR
    if not directory.is_dir():
        return []
    return sorted(
        path for path in directory.iterdir() if path.suffix in (".yml", ".yaml") and path.is_file()
    )


def load(path: Path) -> Workflow:
    """Load and validate one workflow file; raises :class:`InvalidInput` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read workflow: {error}", where=str(path)) from error
    return parse(text, path=path)


def parse(text: str, *, path: Path) -> Workflow:
    """Validate workflow text read from ``path`` (the path only names errors)."""
    data, lines = _load_yaml(text, path=path)
    if not isinstance(data, dict):
        raise InvalidInput("a workflow must be a YAML mapping", where=f"{path}:1")
    _check_schema(data, path=path, lines=lines)
    workflow = _build(data, path=path, lines=lines, text=text)
    _check_rules(workflow)
    return workflow


# ---- YAML with line numbers ------------------------------------------------------------------

# libyaml's parser is ~10x faster than the pure-Python one and keeps the same node marks.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str, *, path: Path) -> tuple[Any, dict[JsonPath, int]]:
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[JsonPath, int] = {(): node.start_mark.line + 1}
        return _construct(loader, node, (), lines), lines
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidInput(f"not valid YAML: {problem}", where=f"{path}{line}") from error
    finally:
        loader.dispose()


def _construct(
    loader: yaml.SafeLoader, node: yaml.Node, at: JsonPath, lines: dict[JsonPath, int]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Keys are read as plain strings: GitHub reads `on:` as the key "on", not True.
            key = str(key_node.value)
            lines[(*at, key)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, (*at, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*at, index)] = item.start_mark.line + 1
            items.append(_construct(loader, item, (*at, index), lines))
        return items
    return loader.construct_object(node, deep=True)


def _where(path: Path, lines: Mapping[JsonPath, int], at: JsonPath) -> str:
    probe = at
    while probe not in lines and probe:
        probe = probe[:-1]
    line = lines.get(probe, 1)
    key = ".".join(str(part) for part in at)
    return f"{path}:{line}: {key}" if key else f"{path}:{line}"


# ---- schema ----------------------------------------------------------------------------------


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(_schema_path().read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    return validator_class(schema)


def _schema_path() -> Path:
    # Locate the vendored schema without importing check_jsonschema (its import pulls in an
    # HTTP client and a CLI framework: seconds of start-up for one JSON file).
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("check-jsonschema is not installed; it provides the workflow schema")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "builtin_schemas" / "vendor" / "github-workflows.json"


@functools.cache
def _fast_check() -> Callable[[Any], Any] | None:
    """A compiled validator for the common case (a valid file), cached as code on disk.

    ``fastjsonschema`` turns the schema into Python code that checks a workflow about ten
    times faster than ``jsonschema``; compiling takes a fraction of a second, so the code is
    kept in the user's cache directory keyed by the schema's hash. Errors are still reported
    by ``jsonschema``, whose messages name the failing key.
    """
    try:
        import fastjsonschema
    except ImportError:
        return None
    text = _schema_path().read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cached = Path(cache_home) / "syrup" / f"workflow_schema_{digest}.py"
    namespace: dict[str, Any] = {}
    try:
        code = cached.read_text(encoding="utf-8")
    except OSError:
        code = fastjsonschema.compile_to_code(json.loads(text))
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary = cached.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(code, encoding="utf-8")
            temporary.replace(cached)
        except OSError:
            pass  # NB: a read-only home only costs the compile time again next process
    exec(compile(code, str(cached), "exec"), namespace)
    # The entry point is the first function; its name comes from the schema's $id.
    entry = re.search(r"^def (validate\w*)\(", code, re.MULTILINE)
    function = namespace.get(entry.group(1)) if entry else None
    return function if callable(function) else None


def _check_schema(data: dict[str, Any], *, path: Path, lines: Mapping[JsonPath, int]) -> None:
    fast = _fast_check()
    if fast is not None:
        try:
            fast(data)
            return
        except Exception:  # fastjsonschema's error type; jsonschema below explains it
            pass
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    error = _narrow(jsonschema.exceptions.best_match(errors))
    at: JsonPath = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        unknown = [
            key
            for key in error.instance
            if key not in allowed and not any(re.search(p, key) for p in patterns)
        ]
        if unknown:
            at = (*at, unknown[0])
            message = f"unknown key {unknown[0]!r}"
            if allowed:
                message += f" (allowed: {', '.join(sorted(allowed))})"
    elif error.validator == "oneOf" and "is valid under each of" in message:
        forms = [
            " and ".join(branch.get("required", [])) or "?"
            for branch in error.validator_value
            if isinstance(branch, dict)
        ]
        message = f"give exactly one of {', '.join(forms)}"
    elif len(message) > 300:
        message = message[:300] + "..."
    raise InvalidInput(message, where=_where(path, lines, at))


def _narrow(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Descend a ``oneOf``/``anyOf`` failure into the branch the document came closest to.

    A job is either a normal job or a reusable-workflow call; the branch with the fewest
    errors is the one the author meant, and its error names the offending key.
    """
    while error.context:
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        closest = min(branches.values(), key=len)
        error = max(closest, key=lambda item: len(item.absolute_path))
    return error


# ---- model -----------------------------------------------------------------------------------


def _normalise_triggers(value: Any) -> dict[str, dict[str, Any]]:
    if isinstance(value, str):
        return {value: {}}
    if isinstance(value, list):
        return {str(item): {} for item in value}
    if isinstance(value, dict):
        return {str(key): (item if isinstance(item, dict) else {}) for key, item in value.items()}
    return {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _build(
    data: dict[str, Any], *, path: Path, lines: Mapping[JsonPath, int], text: str
) -> Workflow:
    jobs: dict[str, Job] = {}
    for job_id, raw in data["jobs"].items():
        steps = tuple(Step(index=i, raw=step) for i, step in enumerate(raw.get("steps") or []))
        needs = tuple(str(need) for need in _as_list(raw.get("needs")))
        jobs[job_id] = Job(id=job_id, raw=raw, steps=steps, needs=needs)
    return Workflow(
        path=path,
        raw=data,
        triggers=_normalise_triggers(data.get("on")),
        jobs=jobs,
        lines=lines,
        text=text,
    )


# ---- rules beyond the schema -----------------------------------------------------------------


def _check_rules(workflow: Workflow) -> None:
    for job in workflow.jobs.values():
        for need in job.needs:
            if need not in workflow.jobs:
                raise InvalidInput(
                    f"job {job.id!r} needs unknown job {need!r}",
                    where=workflow.where(("jobs", job.id, "needs")),
                )
        if job.uses is None and not job.steps:
            raise InvalidInput(
                f"job {job.id!r} has neither steps nor uses", where=workflow.where(("jobs", job.id))
            )
        _check_steps(workflow, job)
    cycle = _find_cycle(workflow)
    if cycle:
        raise InvalidInput(
            "needs cycle: " + " -> ".join(cycle),
            where=workflow.where(("jobs", cycle[0], "needs")),
        )
    _check_expressions(workflow, workflow.raw, ())


def _check_steps(workflow: Workflow, job: Job) -> None:
    seen: set[str] = set()
    for step in job.steps:
        at: JsonPath = ("jobs", job.id, "steps", step.index)
        if (step.run is None) == (step.uses is None):
            raise InvalidInput("a step needs exactly one of run or uses", where=workflow.where(at))
        if step.id is not None:
            if step.id in seen:
                raise InvalidInput(f"duplicate step id {step.id!r}", where=workflow.where(at))
            seen.add(step.id)


def _find_cycle(workflow: Workflow) -> list[str]:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(job_id: str) -> list[str]:
        state[job_id] = 1
        stack.append(job_id)
        for need in workflow.jobs[job_id].needs:
            if state.get(need) == 1:
                return [*stack[stack.index(need) :], need]
            if need not in state:
                found = visit(need)
                if found:
                    return found
        stack.pop()
        state[job_id] = 2
        return []

    for job_id in workflow.jobs:
        if job_id not in state:
            found = visit(job_id)
            if found:
                return found
    return []


_CONDITION_KEYS = frozenset({"if"})


def _check_expressions(workflow: Workflow, value: Any, at: JsonPath) -> None:
    """Parse every expression once now, so a typo fails at load time with its line."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _CONDITION_KEYS and isinstance(item, str) and "${{" not in item:
                _parse_at(workflow, item, (*at, key))
            else:
                _check_expressions(workflow, item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_expressions(workflow, item, (*at, index))
    elif isinstance(value, str) and "${{" in value:
        for expression in expressions.template_parts(value):
            _parse_at(workflow, expression, at)


def _parse_at(workflow: Workflow, expression: str, at: JsonPath) -> None:
    try:
        expressions.parse(expression)
    except InvalidInput as error:
        raise InvalidInput(str(error), where=workflow.where(at)) from error


def iter_expressions(value: Any) -> Iterator[str]:
    """Every expression text inside a nested value (used to find the secrets a run needs)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from iter_expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_expressions(item)
    elif isinstance(value, str):
        yield from expressions.template_parts(value)
