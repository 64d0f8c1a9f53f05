"""The plan of a run: which workflows an event starts, their jobs, matrices and order.

Planning needs no process and no network, so ``syrup ci run --list`` and ``--dry-run`` show
exactly what would run. It follows GitHub's documented behaviour for:

* reusable workflows: a job with ``uses: ./.github/workflows/x.yml`` is replaced by the
  callee's jobs, keyed ``caller/callee`` (as GitHub names them ``caller / callee``), and jobs
  that need the caller wait for all of them;
* ``strategy.matrix``: the cartesian product of the keys, then ``exclude`` (an entry removes
  every combination it matches partially), then ``include`` (an entry extends each combination
  whose original values it does not overwrite, else becomes a new combination); a matrix
  computed from ``needs`` outputs is expanded when its job starts;
* ``runs-on``: labels must be satisfied by this host, otherwise the job carries a problem that
  fails it with a clear message instead of running it on the wrong machine.
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrup.ci import events, expressions, workflows
from syrup.ci.workflows import Job, Workflow
from syrup.errors import InvalidInput

MAX_MATRIX = 256


@dataclass(frozen=True)
class Host:
    """The labels this machine satisfies (``runs-on`` must be a subset)."""

    labels: frozenset[str]

    @classmethod
    def detect(cls, *, extra: Sequence[str] = ()) -> Host:
        arch = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x64"
        labels = {"self-hosted", "linux", arch, "ubuntu-latest"}
        for version in ("20.04", "22.04", "24.04"):
            labels.add(f"ubuntu-{version}" + ("-arm" if arch == "arm64" else ""))
        if arch == "arm64":
            labels.add("ubuntu-latest-arm")
        return cls(labels=frozenset(label.lower() for label in (*labels, *extra)))

    def missing(self, runs_on: Any) -> list[str]:
        """The labels of a ``runs-on`` value this host does not have."""
        wanted = runs_on.get("labels") or [] if isinstance(runs_on, dict) else runs_on
        labels = wanted if isinstance(wanted, list) else [wanted]
        return [str(label) for label in labels if str(label).lower() not in self.labels]


@dataclass(frozen=True)
class PlannedJob:
    """One job of a plan (a reusable-workflow call has the callee's jobs as ``children``)."""

    key: str
    job: Job
    workflow: Workflow
    needs: tuple[str, ...]
    matrix: tuple[Mapping[str, Any], ...] | None = None
    matrix_deferred: bool = False
    children: tuple[PlannedJob, ...] = ()
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.job.display_name


@dataclass(frozen=True)
class WorkflowPlan:
    """The jobs of one triggered workflow, in an order that respects ``needs``."""

    workflow: Workflow
    jobs: tuple[PlannedJob, ...]
    stages: tuple[tuple[str, ...], ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)


def plan_checkout(
    root: Path,
    event: events.Event,
    *,
    host: Host,
    workflow_file: str | None = None,
    job: str | None = None,
    contexts: Mapping[str, Any] | None = None,
) -> list[WorkflowPlan]:
    """Plan every workflow of a checkout that ``event`` triggers (or the one named)."""
    paths = workflows.discover(root)
    if workflow_file is not None:
        paths = [path for path in paths if path.name == workflow_file or str(path) == workflow_file]
        if not paths:
            candidate = root / workflow_file
            if not candidate.is_file():
                raise InvalidInput(
                    f"no workflow {workflow_file!r} in {root / workflows.WORKFLOW_DIR}"
                )
            paths = [candidate]
    plans: list[WorkflowPlan] = []
    for path in paths:
        workflow = workflows.load(path)
        if not events.triggers(workflow, event):
            continue
        plans.append(
            plan_workflow(workflow, root=root, event=event, host=host, job=job, contexts=contexts)
        )
    return plans


def plan_workflow(
    workflow: Workflow,
    *,
    root: Path,
    event: events.Event,
    host: Host,
    job: str | None = None,
    contexts: Mapping[str, Any] | None = None,
) -> WorkflowPlan:
    """Plan one workflow: typed inputs, reusable calls expanded, matrices expanded, stages."""
    inputs: dict[str, Any] = {}
    if event.name == "workflow_dispatch":
        spec = workflow.triggers.get("workflow_dispatch", {})
        inputs = events.resolve_inputs(
            spec.get("inputs"), event.inputs, where=workflow.where(("on", "workflow_dispatch"))
        )
    scope = expressions.Scope(contexts={**(contexts or {}), "inputs": inputs})
    planned = _plan_jobs(workflow, root=root, host=host, scope=scope, prefix="", depth=0)
    if job is not None:
        planned = _select(planned, job)
    return WorkflowPlan(
        workflow=workflow, jobs=tuple(planned), stages=_stages(planned), inputs=inputs
    )


def _select(planned: list[PlannedJob], job: str) -> list[PlannedJob]:
    """Keep ``job`` and what it needs (``--job``), as act does."""
    by_key = {item.key: item for item in planned}
    if job not in by_key:
        raise InvalidInput(f"no job {job!r}; jobs are: {', '.join(by_key)}")
    keep: set[str] = set()
    pending = [job]
    while pending:
        key = pending.pop()
        if key not in keep:
            keep.add(key)
            pending.extend(by_key[key].needs)
    return [item for item in planned if item.key in keep]


def _plan_jobs(
    workflow: Workflow,
    *,
    root: Path,
    host: Host,
    scope: expressions.Scope,
    prefix: str,
    depth: int,
) -> list[PlannedJob]:
    planned: list[PlannedJob] = []
    for job in workflow.jobs.values():
        key = f"{prefix}{job.id}"
        needs = tuple(f"{prefix}{need}" for need in job.needs)
        matrix, deferred = _plan_matrix(job, workflow, scope)
        if job.uses is not None:
            callee, children, problem = _plan_call(
                job, workflow, root=root, host=host, scope=scope, prefix=f"{key}/", depth=depth
            )
            planned.append(
                PlannedJob(
                    key=key,
                    job=job,
                    workflow=callee or workflow,
                    needs=needs,
                    matrix=matrix,
                    matrix_deferred=deferred,
                    children=tuple(children),
                    problem=problem,
                )
            )
            continue
        planned.append(
            PlannedJob(
                key=key,
                job=job,
                workflow=workflow,
                needs=needs,
                matrix=matrix,
                matrix_deferred=deferred,
                problem=_job_problem(job, host),
            )
        )
    return planned


def _job_problem(job: Job, host: Host) -> str | None:
    runs_on = job.raw.get("runs-on")
    if isinstance(runs_on, str) and "${{" in runs_on:
        return None
    missing = host.missing(runs_on)
    if missing:
        return (
            f"runs-on {', '.join(missing)} cannot run on this host (it provides "
            f"{', '.join(sorted(host.labels))}); pass --runner-label to claim a label"
        )
    for unsupported in ("container", "services"):
        if job.raw.get(unsupported):
            return (
                f"job {job.id!r} uses {unsupported!r}, which is not supported here: "
                "no container engine is configured for jobs"
            )
    return None


def _plan_call(
    job: Job,
    caller: Workflow,
    *,
    root: Path,
    host: Host,
    scope: expressions.Scope,
    prefix: str,
    depth: int,
) -> tuple[Workflow | None, list[PlannedJob], str | None]:
    uses = job.uses or ""
    if not uses.startswith("./"):
        return (
            None,
            [],
            f"reusable workflow {uses!r} is not local; only ./.github/workflows/ calls run here",
        )
    if depth >= 4:
        raise InvalidInput(
            "reusable workflows nest deeper than 4 levels",
            where=caller.where(("jobs", job.id, "uses")),
        )
    path = root / uses[2:]
    if not path.is_file():
        raise InvalidInput(
            f"reusable workflow {uses} does not exist", where=caller.where(("jobs", job.id, "uses"))
        )
    callee = workflows.load(path)
    if "workflow_call" not in callee.triggers:
        raise InvalidInput(
            f"{uses} is not a reusable workflow (no on.workflow_call)",
            where=caller.where(("jobs", job.id, "uses")),
        )
    _check_call_inputs(job, caller, callee)
    children = _plan_jobs(callee, root=root, host=host, scope=scope, prefix=prefix, depth=depth + 1)
    return callee, children, None


def _check_call_inputs(job: Job, caller: Workflow, callee: Workflow) -> None:
    spec = callee.triggers["workflow_call"]
    given = job.raw.get("with") or {}
    declared = spec.get("inputs") or {}
    for name in given:
        if name not in declared:
            raise InvalidInput(
                f"{callee.path.name} has no input {name!r}",
                where=caller.where(("jobs", job.id, "with", name)),
            )
    for name, item in declared.items():
        if (
            isinstance(item, dict)
            and item.get("required")
            and "default" not in item
            and name not in given
        ):
            raise InvalidInput(
                f"{callee.path.name} requires input {name!r}", where=caller.where(("jobs", job.id))
            )
    secrets = job.raw.get("secrets")
    declared_secrets = spec.get("secrets") or {}
    if isinstance(secrets, dict):
        for name, item in declared_secrets.items():
            if isinstance(item, dict) and item.get("required") and name not in secrets:
                raise InvalidInput(
                    f"{callee.path.name} requires secret {name!r}",
                    where=caller.where(("jobs", job.id, "secrets")),
                )


def _plan_matrix(
    job: Job, workflow: Workflow, scope: expressions.Scope
) -> tuple[tuple[Mapping[str, Any], ...] | None, bool]:
    strategy = job.raw.get("strategy")
    if not isinstance(strategy, dict) or "matrix" not in strategy:
        return None, False
    raw = strategy["matrix"]
    if _mentions_needs(raw):
        return None, True
    try:
        value = expressions.interpolate_data(raw, scope)
    except InvalidInput as error:
        raise InvalidInput(
            str(error), where=workflow.where(("jobs", job.id, "strategy", "matrix"))
        ) from error
    return tuple(
        expand_matrix(value, where=workflow.where(("jobs", job.id, "strategy", "matrix")))
    ), False


def _mentions_needs(value: Any) -> bool:
    return any("needs." in text or "needs[" in text for text in workflows.iter_expressions(value))


def expand_matrix(matrix: Any, *, where: str) -> list[dict[str, Any]]:
    """Expand a ``strategy.matrix`` value into its combinations, in GitHub's order."""
    if not isinstance(matrix, dict):
        raise InvalidInput("strategy.matrix must be a mapping", where=where)
    include = matrix.get("include") or []
    exclude = matrix.get("exclude") or []
    if not isinstance(include, list) or not isinstance(exclude, list):
        raise InvalidInput("matrix include and exclude must be lists", where=where)
    axes = {key: value for key, value in matrix.items() if key not in ("include", "exclude")}
    for key, values in axes.items():
        if not isinstance(values, list):
            raise InvalidInput(f"matrix axis {key!r} must be a list", where=where)
        if not values:
            raise InvalidInput(f"matrix axis {key!r} is empty", where=where)

    originals: list[dict[str, Any]] = []
    if axes:
        for values in itertools.product(*axes.values()):
            originals.append(dict(zip(axes, values, strict=True)))
    originals = [
        combo for combo in originals if not any(_matches(combo, entry) for entry in exclude)
    ]

    combos = [dict(combo) for combo in originals]
    # Combinations an include adds are never extended by later includes (GitHub's example).
    added: list[dict[str, Any]] = []
    for entry in include:
        if not isinstance(entry, dict):
            raise InvalidInput("matrix include entries must be mappings", where=where)
        merged = False
        for original, combo in zip(originals, combos, strict=True):
            if all(
                expressions.loose_equal(original[key], value)
                for key, value in entry.items()
                if key in original
            ):
                combo.update(entry)
                merged = True
        if not merged:
            added.append(dict(entry))
    combos.extend(added)
    if len(combos) > MAX_MATRIX:
        raise InvalidInput(
            f"matrix has {len(combos)} combinations (limit {MAX_MATRIX})", where=where
        )
    if not combos:
        raise InvalidInput("matrix has no combinations after exclude", where=where)
    return combos


def _matches(combo: Mapping[str, Any], entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    return all(key in combo and _deep_equal(combo[key], value) for key, value in entry.items())


def _deep_equal(left: Any, right: Any) -> bool:
    if isinstance(left, dict) and isinstance(right, dict):
        return all(key in left and _deep_equal(left[key], value) for key, value in right.items())
    return (
        expressions.loose_equal(left, right) if not isinstance(left, list | dict) else left == right
    )


def _stages(planned: Sequence[PlannedJob]) -> tuple[tuple[str, ...], ...]:
    remaining = {item.key: set(item.needs) for item in planned}
    stages: list[tuple[str, ...]] = []
    done: set[str] = set()
    while remaining:
        ready = tuple(key for key, needs in remaining.items() if needs <= done)
        if not ready:
            raise InvalidInput("needs cycle among " + ", ".join(sorted(remaining)))
        stages.append(ready)
        done.update(ready)
        for key in ready:
            del remaining[key]
    return tuple(stages)


def matrix_label(combo: Mapping[str, Any]) -> str:
    """GitHub's job-name suffix for a matrix combination: its values in parentheses."""
    return "(" + ", ".join(expressions.to_string(value) for value in combo.values()) + ")"


def render(plans: Sequence[WorkflowPlan]) -> str:
    """The ``--list`` text: per workflow, each stage's jobs with matrix and problems."""
    lines: list[str] = []
    if not plans:
        return "no workflow is triggered by this event\n"
    for plan in plans:
        lines.append(f"workflow {plan.workflow.name} ({plan.workflow.path.name})")
        for number, stage in enumerate(plan.stages, start=1):
            for key in stage:
                item = next(job for job in plan.jobs if job.key == key)
                lines.extend(_render_job(item, stage=number, indent="  "))
    return "\n".join(lines) + "\n"


def _render_job(item: PlannedJob, *, stage: int, indent: str) -> list[str]:
    needs = f" needs {', '.join(item.needs)}" if item.needs else ""
    head = f"{indent}stage {stage}: {item.key} [{item.name}]{needs}"
    if item.job.uses:
        head += f" uses {item.job.uses}"
    lines = [head]
    if item.matrix_deferred:
        lines.append(f"{indent}  matrix: computed from needs when the job starts")
    elif item.matrix is not None:
        for combo in item.matrix:
            lines.append(f"{indent}  matrix {matrix_label(combo)}")
    if item.problem:
        lines.append(f"{indent}  problem: {item.problem}")
    for child_stage, keys in enumerate(_stages(item.children), start=1):
        for key in keys:
            child = next(job for job in item.children if job.key == key)
            lines.extend(_render_job(child, stage=child_stage, indent=indent + "  "))
    return lines
