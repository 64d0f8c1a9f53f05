"""Executing one job instance: its workspace, clean environment, steps and outputs.

A job gets its own directory under the data dir (``workspace/``, ``temp/``, ``home/`` and a
``bin/`` with the ``docker`` command), and an environment built from nothing: a fixed system
``PATH``, ``HOME``, ``LANG``, ``CI`` and the ``GITHUB_*``/``RUNNER_*`` variables GitHub sets.
Nothing of Syrup's own environment reaches a step.

Steps follow GitHub's rules: an ``if`` without a status function means ``success() && ...``;
``continue-on-error`` makes a failed step's *conclusion* success while its *outcome* stays
failure; ``timeout-minutes`` (step and job) kill the step's process group; the default shell
is ``bash -e {0}`` and an explicit ``bash`` is ``bash --noprofile --norc -eo pipefail {0}``.
"""

from __future__ import annotations

import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrup import logs
from syrup.ci import commands, expressions, processes
from syrup.ci.records import Conclusion, Store
from syrup.ci.workflows import Job, Step, Workflow
from syrup.errors import InvalidInput, SyrupError

_log = logs.get(__name__)

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SHELLS: dict[str, tuple[str, str]] = {
    "bash": ("bash --noprofile --norc -eo pipefail {0}", ".sh"),
    "sh": ("sh -e {0}", ".sh"),
    "python": ("python {0}", ".py"),
}


class StepFailed(SyrupError):
    """A built-in action or a step setup failed; the message goes to the step's log."""


@dataclass
class RunContext:
    """What every job of one run shares."""

    run_id: int
    store: Store
    masker: commands.Masker
    cancel: threading.Event
    data_dir: Path
    repo_path: Path
    on_line: Callable[[str, str], None]
    python: str
    debug: bool = False
    actions_dir: Path | None = None


@dataclass
class StepResult:
    outcome: Conclusion
    conclusion: Conclusion
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    """The result a ``needs`` context reports for a job."""

    result: Conclusion
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobState:
    """Mutable state of one running job instance; actions receive it to act on the job."""

    run: RunContext
    job: Job
    workflow: Workflow
    key: str
    record_id: int
    root: Path
    contexts: dict[str, Any]
    env: dict[str, str]
    deadline: float
    cancel: threading.Event
    default_shell: str | None = None
    default_directory: str | None = None
    path_additions: list[str] = field(default_factory=list)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: set[int] = field(default_factory=set)
    post_steps: list[tuple[str, Callable[[JobState], None]]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    failed: bool = False
    current_step: int | None = None

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def temp(self) -> Path:
        return self.root / "temp"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def cancelled(self) -> bool:
        return self.cancel.is_set() or self.run.cancel.is_set()

    def log(self, line: str) -> None:
        masked = self.run.masker.mask(line)
        self.run.store.append_log(
            run_id=self.run.run_id, job_id=self.record_id, step=self.current_step, line=masked
        )
        self.run.on_line(self.key, masked)

    def scope(self, *, extra_env: Mapping[str, str] | None = None) -> expressions.Scope:
        contexts = dict(self.contexts)
        contexts["env"] = {**self.env, **(extra_env or {})}
        contexts["steps"] = self.steps
        contexts["job"] = {"status": self.status_name(), "container": {}, "services": {}}
        return expressions.Scope(
            contexts=contexts,
            status=expressions.Status(failed=self.failed, cancelled=self.cancelled()),
            workspace=self.workspace,
        )

    def status_name(self) -> str:
        if self.cancelled():
            return "cancelled"
        return "failure" if self.failed else "success"

    def process_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """The environment of a step process: clean base, job env, step env, PATH."""
        env = {**self.env, **extra}
        path = [*reversed(self.path_additions), str(self.bin), SYSTEM_PATH]
        env["PATH"] = ":".join(path)
        return env

    def run_process(
        self,
        argv: list[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        deadline: float | None = None,
        stdin: bytes | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> processes.Outcome:
        """Run a helper process for a built-in action with the job's env and limits."""
        return processes.run(
            argv,
            cwd=cwd or self.workspace,
            env=self.process_env(env or {}),
            on_line=on_line or self.log,
            deadline=min(deadline or self.deadline, self.deadline),
            cancelled=self.cancelled,
            groups=self.groups,
            stdin=stdin,
        )


def prepare(state: JobState) -> None:
    """Create the job's directories and its ``docker`` command."""
    for directory in (state.workspace, state.temp, state.home, state.bin):
        directory.mkdir(parents=True, exist_ok=True)
    from syrup.ci import docker_shim

    docker_shim.install(state.bin / "docker", data_dir=state.run.data_dir, python=state.run.python)


def run_steps(
    state: JobState,
    *,
    execute_uses: Callable[[JobState, Step, dict[str, str], dict[str, Any]], StepResult],
) -> Conclusion:
    """Run every step in order, then post steps; return the job's conclusion."""
    conclusion = Conclusion.SUCCESS
    for step in state.job.steps:
        state.current_step = step.index + 1
        result = _run_step(state, step, execute_uses=execute_uses)
        if step.id:
            state.steps[step.id] = {
                "outputs": result.outputs,
                "outcome": str(result.outcome),
                "conclusion": str(result.conclusion),
            }
        if result.conclusion is Conclusion.FAILURE:
            state.failed = True
    for name, post in reversed(state.post_steps):
        state.current_step = None
        state.log(f"Post {name}")
        try:
            post(state)
        except (SyrupError, OSError) as error:
            state.log(f"##[warning]post step {name} failed: {error}")
    state.current_step = None
    if state.cancelled():
        conclusion = Conclusion.CANCELLED
    elif state.failed:
        conclusion = Conclusion.FAILURE
    if time.monotonic() >= state.deadline:
        conclusion = Conclusion.FAILURE
    return conclusion


def kill_leftovers(state: JobState) -> None:
    """Kill processes a job's steps left in the background (GitHub's orphan clean-up)."""
    for pgid in list(state.groups):
        processes.kill_group(pgid)
    state.groups.clear()


def _run_step(
    state: JobState,
    step: Step,
    *,
    execute_uses: Callable[[JobState, Step, dict[str, str], dict[str, Any]], StepResult],
) -> StepResult:
    store = state.run.store
    record = store.create_step(
        job_id=state.record_id, number=step.index + 1, name=step.display_name
    )
    annotations: list[Mapping[str, Any]] = []
    started = time.monotonic()

    try:
        step_env = _evaluate_env(state, step.raw.get("env"))
        scope = state.scope(extra_env=step_env)
        run_it = expressions.evaluate_condition(step.raw.get("if"), scope)
    except InvalidInput as error:
        state.log(f"##[error]{step.display_name}: {error}")
        result = StepResult(Conclusion.FAILURE, Conclusion.FAILURE)
        store.finish_step(
            record, conclusion=result.conclusion, outcome=result.outcome, outputs={}, annotations=[]
        )
        return result
    if not run_it or (state.cancelled() and not _is_always(step)):
        result = StepResult(Conclusion.SKIPPED, Conclusion.SKIPPED)
        store.finish_step(
            record, conclusion=result.conclusion, outcome=result.outcome, outputs={}, annotations=[]
        )
        return result

    state.log(f"##[group]{step.display_name}")
    try:
        timeout = _minutes(
            step.raw.get("timeout-minutes"), scope, where=f"step {step.display_name}"
        )
        step_deadline = (
            state.deadline if timeout is None else min(state.deadline, started + timeout * 60)
        )
        if step.uses is not None:
            inputs = {
                str(key): expressions.to_string(expressions.interpolate(str(value), scope))
                if isinstance(value, str)
                else expressions.to_string(value)
                for key, value in (step.raw.get("with") or {}).items()
            }
            result = execute_uses(
                state,
                step,
                step_env,
                {"inputs": inputs, "deadline": step_deadline, "annotations": annotations},
            )
        else:
            result = _run_script(
                state, step, step_env, scope, deadline=step_deadline, annotations=annotations
            )
    except (SyrupError, OSError) as error:
        state.log(f"##[error]{error}")
        result = StepResult(Conclusion.FAILURE, Conclusion.FAILURE)

    if result.outcome is Conclusion.FAILURE and _truthy_setting(
        step.raw.get("continue-on-error"), state, step_env
    ):
        result = StepResult(Conclusion.FAILURE, Conclusion.SUCCESS, result.outputs)
    masked = {key: state.run.masker.mask(value) for key, value in result.outputs.items()}
    store.finish_step(
        record,
        conclusion=result.conclusion,
        outcome=result.outcome,
        outputs=masked,
        annotations=annotations,
    )
    state.log("##[endgroup]")
    return result


def _is_always(step: Step) -> bool:
    condition = str(step.raw.get("if") or "")
    return bool(re.search(r"\b(always|cancelled)\s*\(", condition))


def _truthy_setting(value: Any, state: JobState, step_env: Mapping[str, str]) -> bool:
    if isinstance(value, str):
        return expressions.truthy(expressions.interpolate(value, state.scope(extra_env=step_env)))
    return bool(value)


def _minutes(value: Any, scope: expressions.Scope, *, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = expressions.interpolate(value, scope)
    number = expressions.to_number(value)
    if math.isnan(number) or number <= 0:
        raise InvalidInput(f"timeout-minutes must be a positive number, not {value!r}", where=where)
    return number


def _evaluate_env(state: JobState, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        if isinstance(raw, str):
            value = expressions.interpolate(raw, state.scope())
            if isinstance(value, dict):
                return {str(k): expressions.to_string(v) for k, v in value.items()}
        return {}
    result: dict[str, str] = {}
    for name, value in raw.items():
        scope = state.scope(extra_env=result)
        evaluated = expressions.interpolate(value, scope) if isinstance(value, str) else value
        result[str(name)] = expressions.to_string(evaluated)
    return result


def _shell_command(state: JobState, step: Step, scope: expressions.Scope) -> tuple[list[str], str]:
    shell = step.raw.get("shell") or state.default_shell
    if isinstance(shell, str) and "${{" in shell:
        shell = expressions.to_string(expressions.interpolate(shell, scope))
    if not shell:
        return (
            (["bash", "-e", "{0}"], ".sh")
            if shutil.which("bash", path=SYSTEM_PATH)
            else (["sh", "-e", "{0}"], ".sh")
        )
    if shell in _SHELLS:
        template, suffix = _SHELLS[shell]
        return template.split(), suffix
    if "{0}" not in shell:
        raise InvalidInput(f"custom shell {shell!r} must contain {{0}} for the script path")
    return shell.split(), ".sh"


def _run_script(
    state: JobState,
    step: Step,
    step_env: dict[str, str],
    scope: expressions.Scope,
    *,
    deadline: float,
    annotations: list[Mapping[str, Any]],
) -> StepResult:
    script = expressions.to_string(expressions.interpolate(step.run or "", scope))
    argv_template, suffix = _shell_command(state, step, scope)
    script_path = state.temp / f"step-{step.index + 1}{suffix}"
    script_path.write_text(script, encoding="utf-8")
    argv = [str(script_path) if part == "{0}" else part for part in argv_template]
    if argv[0] == "python" and not shutil.which("python", path=SYSTEM_PATH):
        argv[0] = shutil.which("python3", path=SYSTEM_PATH) or "python3"

    directory = step.raw.get("working-directory") or state.default_directory
    cwd = state.workspace
    if directory:
        cwd = state.workspace / expressions.to_string(
            expressions.interpolate(str(directory), scope)
        )
        if not cwd.is_dir():
            raise StepFailed(f"working-directory {directory} does not exist")
    return run_with_files(
        state, argv, env=step_env, cwd=cwd, deadline=deadline, annotations=annotations
    )


def run_with_files(
    state: JobState,
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    deadline: float,
    annotations: list[Mapping[str, Any]],
    state_values: Mapping[str, str] | None = None,
) -> StepResult:
    """Run a step process with fresh GITHUB_* command files, then apply what it wrote."""
    number = state.current_step or 0
    files = {
        "GITHUB_ENV": state.temp / f"env-{number}",
        "GITHUB_OUTPUT": state.temp / f"output-{number}",
        "GITHUB_PATH": state.temp / f"path-{number}",
        "GITHUB_STEP_SUMMARY": state.temp / f"summary-{number}",
        "GITHUB_STATE": state.temp / f"state-{number}",
    }
    for path in files.values():
        path.write_text("", encoding="utf-8")
    outputs: dict[str, str] = {}
    stop_token: list[str] = []

    def on_line(line: str) -> None:
        _handle_line(state, line, outputs=outputs, annotations=annotations, stop_token=stop_token)

    process_env = {**env, **{name: str(path) for name, path in files.items()}}
    for name, value in (state_values or {}).items():
        process_env[f"STATE_{name}"] = value
    outcome = state.run_process(argv, cwd=cwd, env=process_env, deadline=deadline, on_line=on_line)

    where = f"step {number}"
    for name, value in commands.read_key_values(
        files["GITHUB_ENV"], where=f"{where} GITHUB_ENV"
    ).items():
        state.env[name] = value
    outputs.update(commands.read_key_values(files["GITHUB_OUTPUT"], where=f"{where} GITHUB_OUTPUT"))
    state.path_additions.extend(commands.read_paths(files["GITHUB_PATH"]))
    summary = files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")
    if summary:
        state.summary.append(state.run.masker.mask(summary))
    state_file = commands.read_key_values(files["GITHUB_STATE"], where=f"{where} GITHUB_STATE")
    if state_file:
        state.contexts.setdefault("_state", {}).update(state_file)

    if outcome.ending is processes.Ending.TIMED_OUT:
        state.log(
            "##[error]The step exceeded its timeout and its processes were killed "
            f"(exit {outcome.code})"
        )
        return StepResult(Conclusion.FAILURE, Conclusion.FAILURE, outputs)
    if outcome.ending is processes.Ending.CANCELLED:
        state.log("##[error]The operation was cancelled")
        return StepResult(Conclusion.CANCELLED, Conclusion.CANCELLED, outputs)
    if outcome.code != 0:
        state.log(f"##[error]Process completed with exit code {outcome.code}.")
        return StepResult(Conclusion.FAILURE, Conclusion.FAILURE, outputs)
    return StepResult(Conclusion.SUCCESS, Conclusion.SUCCESS, outputs)


def _handle_line(
    state: JobState,
    line: str,
    *,
    outputs: dict[str, str],
    annotations: list[Mapping[str, Any]],
    stop_token: list[str],
) -> None:
    if stop_token:
        if line.strip() == f"::{stop_token[0]}::":
            stop_token.clear()
        else:
            state.log(line)
        return
    command = commands.parse_command(line)
    if command is None:
        state.log(line)
        return
    name = command.name
    if name == "add-mask":
        state.run.masker.add(command.message)
    elif name == "group":
        state.log(f"##[group]{command.message}")
    elif name == "endgroup":
        state.log("##[endgroup]")
    elif name in ("error", "warning", "notice"):
        annotation = {
            "level": name,
            "message": state.run.masker.mask(command.message),
            **command.properties,
        }
        annotations.append(annotation)
        place = ""
        if "file" in command.properties:
            place = f" {command.properties['file']}"
            if "line" in command.properties:
                place += f":{command.properties['line']}"
        state.log(f"##[{name}]{place.strip()}{': ' if place else ''}{command.message}")
    elif name == "debug":
        if state.run.debug:
            state.log(f"##[debug]{command.message}")
    elif name == "set-output":
        outputs[command.properties.get("name", "")] = command.message
        state.log(
            "##[warning]The `set-output` command is deprecated; write to $GITHUB_OUTPUT instead"
        )
    elif name == "save-state":
        state.contexts.setdefault("_state", {})[command.properties.get("name", "")] = (
            command.message
        )
        state.log(
            "##[warning]The `save-state` command is deprecated; write to $GITHUB_STATE instead"
        )
    elif name == "stop-commands":
        stop_token.append(command.message)
    elif name in ("set-env", "add-path"):
        state.log(
            f"##[error]The `{name}` command is disabled; use the GITHUB_ENV / GITHUB_PATH files"
        )
    else:
        state.log(line)


def job_env(
    state_env: Mapping[str, str],
    *,
    github: Mapping[str, Any],
    runner: Mapping[str, str],
    home: Path,
    workspace: Path,
) -> dict[str, str]:
    """The base environment GitHub gives every step (before workflow/job env)."""
    event_path = runner["event_path"]
    env = {
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_EVENT_PATH": event_path,
        "GITHUB_SERVER_URL": str(github.get("server_url", "")),
        "GITHUB_API_URL": str(github.get("api_url", "")),
        "RUNNER_OS": runner["os"],
        "RUNNER_ARCH": runner["arch"],
        "RUNNER_NAME": runner["name"],
        "RUNNER_TEMP": runner["temp"],
        "RUNNER_TOOL_CACHE": runner["tool_cache"],
    }
    for key in (
        "sha",
        "ref",
        "ref_name",
        "ref_type",
        "repository",
        "repository_owner",
        "run_id",
        "run_number",
        "run_attempt",
        "actor",
        "triggering_actor",
        "event_name",
        "workflow",
        "job",
        "base_ref",
        "head_ref",
    ):
        env[f"GITHUB_{key.upper()}"] = expressions.to_string(github.get(key))
    env.update(state_env)
    return env
