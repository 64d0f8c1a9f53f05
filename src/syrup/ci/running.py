"""Running workflows: one recorded run per triggered workflow, jobs scheduled by ``needs``.

Scheduling follows GitHub's documented rules:

* a job starts when every job it ``needs`` has finished; a failed, cancelled or skipped need
  skips it unless its ``if`` calls a status function (``always()``, ``failure()``...);
* each matrix combination is a job instance; ``fail-fast`` (default on) cancels the other
  instances when one fails; ``max-parallel`` bounds the instances of one job, and the runner's
  ``max_parallel_jobs`` bounds all instances at once;
* a reusable-workflow call runs the callee's jobs with the caller's ``with`` as ``inputs``,
  only the secrets it passes (or all with ``secrets: inherit``), and maps the callee's
  ``on.workflow_call.outputs`` to the calling job's outputs;
* ``concurrency`` (workflow level, across processes through the run database; job level,
  within this process): a new run waits for older runs of its group, or cancels them with
  ``cancel-in-progress: true``;
* job ``continue-on-error`` keeps a failed job from failing the run and its dependents.

Cancellation (``syrup ci cancel``, a concurrency group, fail-fast) is cooperative at step
boundaries and forced inside a step by killing the step's process group.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import secrets as random_secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syrup import logs
from syrup.ci import actions, commands, events, expressions, jobs, planning, records, workflows
from syrup.ci import secrets as secret_store
from syrup.ci.jobs import JobResult, JobState, RunContext
from syrup.ci.records import Conclusion, Store
from syrup.errors import InvalidInput, SyrupError

_log = logs.get(__name__)

DEFAULT_JOB_TIMEOUT_MINUTES = 360.0


@dataclass(frozen=True)
class Settings:
    """How this machine runs jobs."""

    data_dir: Path
    host: planning.Host
    max_parallel_jobs: int = 2
    actions_dir: Path | None = None
    python: str = sys.executable
    debug: bool = False


@dataclass(frozen=True)
class RunRequest:
    """What to run: a checkout, an event, optional filters and run-time secrets."""

    repo: Path
    event: events.Event
    workflow_file: str | None = None
    job: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """The outcome of one workflow run."""

    run_id: int
    run_number: int
    workflow: str
    conclusion: Conclusion
    jobs: Mapping[str, JobResult]


def git_output(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise InvalidInput(
            f"git {' '.join(args)} failed: {completed.stderr.strip()}", where=str(repo)
        )
    return completed.stdout.strip()


def _require_commit(repo: Path) -> None:
    """Workflows run on a commit: say so plainly when ``repo`` has none to offer."""
    inside = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise InvalidInput(
            "is not a git checkout; workflows run on a commit "
            "(git init && git add -A && git commit -m init)",
            where=str(repo),
        )
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "-q", "HEAD^{commit}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if head.returncode != 0:
        raise InvalidInput("has no commit yet; commit the workflows first", where=str(repo))


def make_event(
    repo: Path,
    *,
    name: str = "push",
    ref: str | None = None,
    base_ref: str | None = None,
    inputs: Mapping[str, str] | None = None,
) -> events.Event:
    """Describe an event on a local checkout: resolve the ref, sha and changed files."""
    if name not in events.EVENT_NAMES:
        raise InvalidInput(f"unknown event {name!r}; use one of {', '.join(events.EVENT_NAMES)}")
    _require_commit(repo)
    if ref is None:
        ref = git_output(repo, "symbolic-ref", "-q", "HEAD")
    elif not ref.startswith("refs/"):
        tags = git_output(repo, "tag", "--list", ref)
        ref = f"refs/tags/{ref}" if tags else f"refs/heads/{ref}"
    sha = git_output(repo, "rev-parse", f"{ref}^{{commit}}")
    changed: tuple[str, ...] | None = None
    if name == "pull_request" and base_ref:
        base = base_ref if base_ref.startswith("refs/") else f"refs/heads/{base_ref}"
        diff = git_output(repo, "diff", "--name-only", f"{base}...{sha}")
        changed = tuple(line for line in diff.splitlines() if line)
    elif name == "push":
        parents = git_output(repo, "rev-list", "--parents", "-n", "1", sha).split()
        if len(parents) > 1:
            diff = git_output(repo, "diff", "--name-only", parents[1], sha)
            changed = tuple(line for line in diff.splitlines() if line)
    return events.Event(
        name=name,
        ref=ref,
        sha=sha,
        base_ref=base_ref,
        changed_files=changed,
        inputs=dict(inputs or {}),
    )


def repository_name(repo: Path) -> str:
    """``owner/name`` from the ``origin`` remote, else ``local/<directory>``."""
    completed = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"[:/]([^/:]+)/([^/]+?)(?:\.git)?/?$", completed.stdout.strip())
    if completed.returncode == 0 and match:
        return f"{match.group(1)}/{match.group(2)}"
    return f"local/{repo.resolve().name}"


class _JobGroups:
    """Job-level ``concurrency`` within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, list[threading.Event]] = {}

    def acquire(self, group: str, *, cancel_others: bool, mine: threading.Event) -> None:
        with self._lock:
            holders = self._holders.setdefault(group, [])
            waiting_for = list(holders)
            holders.append(mine)
        if cancel_others:
            for other in waiting_for:
                other.set()
        while True:
            with self._lock:
                ahead = [event for event in self._holders[group] if event in waiting_for]
            if not ahead or mine.is_set():
                return
            time.sleep(0.1)

    def release(self, group: str, mine: threading.Event) -> None:
        with self._lock:
            holders = self._holders.get(group, [])
            if mine in holders:
                holders.remove(mine)


_JOB_GROUPS = _JobGroups()


@dataclass
class _Level:
    """One workflow's jobs being run (the top workflow, or a reusable callee)."""

    workflow: workflows.Workflow
    contexts: dict[str, Any]
    prefix: str


class Runner:
    """Runs workflows of local checkouts and records them."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        on_line: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_line = on_line or (lambda _key, _line: None)
        self._slots = threading.Semaphore(max(1, settings.max_parallel_jobs))

    # ---- public -----------------------------------------------------------------------

    def plan(self, request: RunRequest) -> list[planning.WorkflowPlan]:
        return planning.plan_checkout(
            request.repo,
            request.event,
            host=self.settings.host,
            workflow_file=request.workflow_file,
            job=request.job,
            contexts=self._plan_contexts(request),
        )

    def run(self, request: RunRequest) -> list[RunResult]:
        """Plan, then run each triggered workflow in turn."""
        return [self.run_plan(plan, request) for plan in self.plan(request)]

    def run_plan(self, plan: planning.WorkflowPlan, request: RunRequest) -> RunResult:
        workflow = plan.workflow
        repo_name = repository_name(request.repo)
        run_number = self.store.next_run_number(
            repo=str(request.repo.resolve()), workflow=workflow.path.name
        )
        contexts = self._plan_contexts(request)
        contexts["inputs"] = dict(plan.inputs)
        group, cancel_others = _concurrency(
            workflow.raw.get("concurrency"), contexts, where=workflow.where(("concurrency",))
        )
        run_id = self.store.create_run(
            repo=repo_name,
            workflow=workflow.path.name,
            workflow_name=workflow.name,
            event=request.event.name,
            ref=request.event.ref,
            sha=request.event.sha,
            run_number=run_number,
            concurrency_group=group,
        )
        log = _log.bind(run=run_id, workflow=workflow.path.name)
        masker = commands.Masker()
        token = random_secrets.token_hex(20)
        masker.add(token)
        run_secrets = self._secrets_for(workflow, request, plan)
        for value in run_secrets.values():
            masker.add(value)
        cancel = threading.Event()
        run_ctx = RunContext(
            run_id=run_id,
            store=self.store,
            masker=masker,
            cancel=cancel,
            data_dir=self.settings.data_dir,
            repo_path=request.repo.resolve(),
            on_line=self.on_line,
            python=self.settings.python,
            debug=self.settings.debug or run_secrets.get("ACTIONS_STEP_DEBUG") == "true",
            actions_dir=self.settings.actions_dir,
        )
        contexts["github"].update(
            run_id=str(run_id),
            run_number=str(run_number),
            token=token,
            repository=repo_name,
            repository_owner=repo_name.split("/")[0],
            workflow=workflow.name,
            workflow_ref=f"{repo_name}/.github/workflows/{workflow.path.name}@{request.event.ref}",
        )
        contexts["secrets"] = {**run_secrets, "GITHUB_TOKEN": token}

        stop_monitor = threading.Event()
        monitor = threading.Thread(
            target=self._monitor, args=(run_id, cancel, stop_monitor), daemon=True
        )
        monitor.start()
        try:
            if group is not None:
                self._wait_for_group(run_id, group, cancel_others=cancel_others, cancel=cancel)
            self.store.start_run(run_id)
            log.info("run started", run_number=run_number)
            level = _Level(workflow=workflow, contexts=contexts, prefix="")
            results = self._run_graph(list(plan.jobs), level, run_ctx)
            conclusion = _overall(results.values(), cancelled=cancel.is_set())
            reason = "cancelled" if conclusion is Conclusion.CANCELLED else None
        except SyrupError as error:
            log.error("run failed", error=str(error))
            conclusion, reason, results = Conclusion.FAILURE, str(error), {}
        finally:
            stop_monitor.set()
        self.store.finish_run(run_id, conclusion=conclusion, reason=reason)
        log.info("run finished", conclusion=str(conclusion))
        return RunResult(
            run_id=run_id,
            run_number=run_number,
            workflow=workflow.path.name,
            conclusion=conclusion,
            jobs=results,
        )

    # ---- contexts and secrets ---------------------------------------------------------

    def _plan_contexts(self, request: RunRequest) -> dict[str, Any]:
        event = request.event
        github: dict[str, Any] = {
            "event_name": event.name,
            "event": _payload(event),
            "sha": event.sha,
            "ref": event.ref,
            "ref_name": event.ref_name,
            "ref_type": "tag" if event.is_tag else "branch",
            "ref_protected": False,
            "base_ref": event.base_ref or "",
            "head_ref": event.ref_name if event.name == "pull_request" else "",
            "repository": f"local/{request.repo.resolve().name}",
            "repository_owner": "local",
            "run_id": "0",
            "run_number": "0",
            "run_attempt": "1",
            "actor": _actor(),
            "triggering_actor": _actor(),
            "server_url": "https://github.com",
            "api_url": "https://api.github.com",
            "graphql_url": "https://api.github.com/graphql",
            "retention_days": "90",
            "secret_source": "Actions",
            "action": "",
            "workspace": "",
            "job": "",
            "token": "",
        }
        return {
            "github": github,
            "inputs": dict(event.inputs),
            "vars": dict(request.vars),
            "secrets": {},
            "env": {},
        }

    def _secrets_for(
        self, workflow: workflows.Workflow, request: RunRequest, plan: planning.WorkflowPlan
    ) -> dict[str, str]:
        """Only the secrets the workflow (and its local callees) name; unknown ones are ''."""
        texts = list(workflows.iter_expressions(workflow.raw))
        inherit = False
        for item in plan.jobs:
            if item.children:
                texts.extend(workflows.iter_expressions(item.workflow.raw))
                inherit = inherit or item.job.raw.get("secrets") == "inherit"
        stored = secret_store.SecretStore(self.settings.data_dir).all()
        available = {**stored, **request.secrets}
        if inherit:
            return dict(available)
        names = secret_store.referenced(texts)
        names.discard("GITHUB_TOKEN")
        return {name: available.get(name, "") for name in names}

    # ---- cancellation and concurrency -------------------------------------------------

    def _monitor(self, run_id: int, cancel: threading.Event, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            if self.store.cancel_requested(run_id):
                cancel.set()
                return

    def _wait_for_group(
        self, run_id: int, group: str, *, cancel_others: bool, cancel: threading.Event
    ) -> None:
        while True:
            others = [
                other
                for other in self.store.active_in_group(group, exclude_run=run_id)
                if other < run_id
            ]
            if not others or cancel.is_set():
                return
            if cancel_others:
                for other in others:
                    self.store.request_cancel(other)
            time.sleep(0.2)

    # ---- the job graph ----------------------------------------------------------------

    def _run_graph(
        self, nodes: list[planning.PlannedJob], level: _Level, run: RunContext
    ) -> dict[str, JobResult]:
        results: dict[str, JobResult] = {}
        pending = list(nodes)
        threads: list[threading.Thread] = []
        condition = threading.Condition()

        def finish(key: str, result: JobResult) -> None:
            with condition:
                results[key] = result
                condition.notify_all()

        def launch(node: planning.PlannedJob) -> None:
            def target() -> None:
                try:
                    result = self._run_node(node, level, run, results)
                except SyrupError as error:
                    _log.error("job failed", run=run.run_id, job=node.key, error=str(error))
                    result = JobResult(Conclusion.FAILURE)
                except Exception:  # a bug must not hang the graph waiting for this job
                    _log.exception("job crashed", run=run.run_id, job=node.key)
                    result = JobResult(Conclusion.FAILURE)
                finish(node.key, result)

            thread = threading.Thread(target=target, name=f"job-{node.key}", daemon=True)
            threads.append(thread)
            thread.start()

        with condition:
            while pending or len(results) < len(nodes):
                ready = [node for node in pending if all(need in results for need in node.needs)]
                for node in ready:
                    pending.remove(node)
                    launch(node)
                condition.wait(0.5)
        for thread in threads:
            thread.join()
        return {
            key[len(level.prefix) :] if key.startswith(level.prefix) else key: value
            for key, value in results.items()
        }

    def _run_node(
        self,
        node: planning.PlannedJob,
        level: _Level,
        run: RunContext,
        results: Mapping[str, JobResult],
    ) -> JobResult:
        local_id = node.job.id
        needs_ctx = {
            need[len(level.prefix) :]: {
                "result": str(results[need].result),
                "outputs": results[need].outputs,
            }
            for need in node.needs
        }
        needs_bad = any(results[need].result is not Conclusion.SUCCESS for need in node.needs)
        contexts = {**level.contexts, "needs": needs_ctx}
        contexts["env"] = _evaluate_mapping(level.workflow.raw.get("env"), contexts)
        scope = expressions.Scope(
            contexts=contexts,
            status=expressions.Status(failed=needs_bad, cancelled=run.cancel.is_set()),
        )
        try:
            should_run = expressions.evaluate_condition(node.job.raw.get("if"), scope)
        except InvalidInput as error:
            return self._record_only(run, node, Conclusion.FAILURE, reason=f"if: {error}")
        if not should_run:
            return self._record_only(
                run,
                node,
                Conclusion.SKIPPED,
                reason="condition false or a needed job did not succeed",
            )
        if node.problem:
            return self._record_only(run, node, Conclusion.FAILURE, reason=node.problem)
        if node.job.uses is not None:
            return self._run_call(node, level, run, contexts)

        strategy = node.job.raw.get("strategy") or {}
        combos: list[Mapping[str, Any] | None]
        if node.matrix_deferred:
            value = expressions.interpolate_data(strategy.get("matrix"), scope)
            combos = list(
                planning.expand_matrix(
                    value, where=node.workflow.where(("jobs", local_id, "strategy", "matrix"))
                )
            )
        elif node.matrix is not None:
            combos = list(node.matrix)
        else:
            combos = [None]
        fail_fast = expressions.truthy(
            expressions.interpolate_data(strategy.get("fail-fast", True), scope)
        )
        max_parallel = int(
            expressions.to_number(
                expressions.interpolate_data(strategy.get("max-parallel", len(combos)), scope)
            )
            or len(combos)
        )
        node_cancel = threading.Event()

        def one(index: int) -> JobResult:
            combo = combos[index]
            strategy_ctx = {
                "fail-fast": fail_fast,
                "job-index": index,
                "job-total": len(combos),
                "max-parallel": max_parallel,
            }
            result = self._run_instance(
                node,
                level,
                run,
                contexts,
                combo=combo,
                index=index,
                strategy=strategy_ctx,
                node_cancel=node_cancel,
            )
            if result.result is Conclusion.FAILURE and fail_fast and combo is not None:
                node_cancel.set()
            return result

        with ThreadPoolExecutor(
            max_workers=max(1, max_parallel), thread_name_prefix=f"matrix-{local_id}"
        ) as pool:
            instance_results = list(pool.map(one, range(len(combos))))
        outputs: dict[str, str] = {}
        for item in instance_results:
            outputs.update(item.outputs)
        return JobResult(_overall(instance_results, cancelled=False), outputs)

    def _record_only(
        self, run: RunContext, node: planning.PlannedJob, conclusion: Conclusion, *, reason: str
    ) -> JobResult:
        record = self.store.create_job(run_id=run.run_id, key=node.key, name=node.name)
        if conclusion is Conclusion.FAILURE:
            line = run.masker.mask(f"##[error]{reason}")
            self.store.append_log(run_id=run.run_id, job_id=record, step=None, line=line)
            run.on_line(node.key, line)
        self.store.finish_job(record, conclusion=conclusion, reason=reason)
        return JobResult(conclusion)

    def _run_call(
        self, node: planning.PlannedJob, level: _Level, run: RunContext, contexts: dict[str, Any]
    ) -> JobResult:
        callee = node.workflow
        scope = expressions.Scope(contexts=contexts)
        spec = callee.triggers["workflow_call"]
        given = {
            str(k): expressions.interpolate_data(v, scope)
            for k, v in (node.job.raw.get("with") or {}).items()
        }
        inputs = events.resolve_inputs(
            spec.get("inputs"), given, where=level.workflow.where(("jobs", node.job.id, "with"))
        )
        raw_secrets = node.job.raw.get("secrets")
        if raw_secrets == "inherit":
            passed = dict(contexts["secrets"])
        else:
            passed = {
                str(k): expressions.to_string(expressions.interpolate_data(v, scope))
                for k, v in (raw_secrets or {}).items()
            }
        passed["GITHUB_TOKEN"] = contexts["secrets"].get("GITHUB_TOKEN", "")
        child_contexts = {**level.contexts, "inputs": inputs, "secrets": passed}
        child = _Level(workflow=callee, contexts=child_contexts, prefix=f"{node.key}/")
        results = self._run_graph(list(node.children), child, run)
        jobs_ctx = {
            key: {"result": str(value.result), "outputs": value.outputs}
            for key, value in results.items()
        }
        out_scope = expressions.Scope(contexts={**child_contexts, "jobs": jobs_ctx})
        outputs: dict[str, str] = {}
        for name, item in (spec.get("outputs") or {}).items():
            value = item.get("value") if isinstance(item, dict) else None
            outputs[str(name)] = expressions.to_string(
                expressions.interpolate(str(value or ""), out_scope)
            )
        return JobResult(_overall(results.values(), cancelled=run.cancel.is_set()), outputs)

    def _run_instance(
        self,
        node: planning.PlannedJob,
        level: _Level,
        run: RunContext,
        contexts: dict[str, Any],
        *,
        combo: Mapping[str, Any] | None,
        index: int,
        strategy: dict[str, Any],
        node_cancel: threading.Event,
    ) -> JobResult:
        job = node.job
        instance_contexts = {**contexts, "matrix": dict(combo or {}), "strategy": strategy}
        scope = expressions.Scope(contexts=instance_contexts)
        raw_name = job.raw.get("name")
        name = (
            expressions.to_string(expressions.interpolate(str(raw_name), scope))
            if raw_name
            else job.id
        )
        if combo and not (isinstance(raw_name, str) and "matrix." in raw_name):
            name = f"{name} {planning.matrix_label(combo)}"
        key = node.key if combo is None else f"{node.key} {planning.matrix_label(combo)}"
        record = self.store.create_job(run_id=run.run_id, key=key, name=name)
        cancel = threading.Event()
        group: str | None = None
        with self._slots:
            if node_cancel.is_set() or run.cancel.is_set():
                self.store.finish_job(
                    record, conclusion=Conclusion.CANCELLED, reason="cancelled before it started"
                )
                return JobResult(Conclusion.CANCELLED)
            self.store.start_job(record)
            root = (
                self.settings.data_dir
                / "ci"
                / "work"
                / str(run.run_id)
                / f"{_safe(node.key)}-{index}"
            )
            github = {
                **instance_contexts["github"],
                "job": job.id,
                "workspace": str(root / "workspace"),
            }
            runner_ctx = {
                "os": "Linux",
                "arch": "ARM64" if "arm64" in self.settings.host.labels else "X64",
                "name": "syrup",
                "temp": str(root / "temp"),
                "tool_cache": str(self.settings.data_dir / "ci" / "toolcache"),
                "debug": "1" if run.debug else "",
                "event_path": str(root / "temp" / "event.json"),
                "environment": "self-hosted",
            }
            instance_contexts.update(github=github, runner=runner_ctx)
            try:
                problem = self._runs_on_problem(job.raw.get("runs-on"), scope)
                if problem is not None:
                    raise InvalidInput(
                        problem, where=node.workflow.where(("jobs", job.id, "runs-on"))
                    )
                group, cancel_others = _concurrency(
                    job.raw.get("concurrency"),
                    instance_contexts,
                    where=node.workflow.where(("jobs", job.id, "concurrency")),
                )
                if group is not None:
                    _JOB_GROUPS.acquire(group, cancel_others=cancel_others, mine=cancel)
                base_env = jobs.job_env(
                    {},
                    github=github,
                    runner=runner_ctx,
                    home=root / "home",
                    workspace=root / "workspace",
                )
                workflow_env = _evaluate_mapping(level.workflow.raw.get("env"), instance_contexts)
                job_env = _evaluate_mapping(
                    job.raw.get("env"), {**instance_contexts, "env": workflow_env}
                )
                timeout = job.raw.get("timeout-minutes", DEFAULT_JOB_TIMEOUT_MINUTES)
                minutes = expressions.to_number(expressions.interpolate_data(timeout, scope))
                defaults = {
                    **((level.workflow.raw.get("defaults") or {}).get("run") or {}),
                    **((job.raw.get("defaults") or {}).get("run") or {}),
                }
            except InvalidInput as error:
                line = run.masker.mask(f"##[error]{error}")
                self.store.append_log(run_id=run.run_id, job_id=record, step=None, line=line)
                run.on_line(key, line)
                self.store.finish_job(record, conclusion=Conclusion.FAILURE, reason=str(error))
                return JobResult(Conclusion.FAILURE)

            linked_cancel = _LinkedEvent(cancel, node_cancel)
            state = JobState(
                run=run,
                job=job,
                workflow=node.workflow,
                key=key,
                record_id=record,
                root=root,
                contexts=instance_contexts,
                env={**base_env, **workflow_env, **job_env},
                deadline=time.monotonic() + minutes * 60,
                cancel=linked_cancel,
                default_shell=defaults.get("shell"),
                default_directory=defaults.get("working-directory"),
            )
            try:
                jobs.prepare(state)
                (root / "temp" / "event.json").write_text(
                    json.dumps(github["event"]), encoding="utf-8"
                )
                conclusion = jobs.run_steps(state, execute_uses=actions.execute)
                if time.monotonic() >= state.deadline:
                    state.log(f"##[error]The job exceeded its timeout of {minutes:g} minutes")
                outputs = self._job_outputs(state)
            finally:
                jobs.kill_leftovers(state)
                if group is not None:
                    _JOB_GROUPS.release(group, cancel)
            continue_on_error = expressions.truthy(
                expressions.interpolate_data(job.raw.get("continue-on-error", False), scope)
            )
            reason = None
            if conclusion is Conclusion.FAILURE and continue_on_error:
                reason = "failed; continue-on-error lets the run go on"
            self.store.finish_job(
                record,
                conclusion=conclusion,
                outputs=outputs,
                summary="\n".join(state.summary),
                reason=reason,
            )
            if reason is not None:
                return JobResult(Conclusion.SUCCESS, outputs)
            return JobResult(conclusion, outputs)

    def _runs_on_problem(self, runs_on: Any, scope: expressions.Scope) -> str | None:
        """Check a ``runs-on`` computed from the matrix or inputs once its value is known."""
        if not (isinstance(runs_on, str) and "${{" in runs_on):
            return None
        value = expressions.interpolate(runs_on, scope)
        missing = self.settings.host.missing(value)
        if missing:
            return f"runs-on {', '.join(missing)} cannot run on this host"
        return None

    def _job_outputs(self, state: JobState) -> dict[str, str]:
        scope = state.scope()
        outputs: dict[str, str] = {}
        for name, value in (state.job.raw.get("outputs") or {}).items():
            text = expressions.to_string(
                expressions.interpolate(value, scope) if isinstance(value, str) else value
            )
            if state.run.masker.mask(text) != text:
                state.log(f"##[warning]Skip output '{name}' since it may contain secret.")
                continue
            outputs[str(name)] = text
        return outputs


class _LinkedEvent(threading.Event):
    """An event that also reads as set when a second (parent) event is set."""

    def __init__(self, own: threading.Event, parent: threading.Event) -> None:
        super().__init__()
        self._own = own
        self._parent = parent

    def is_set(self) -> bool:
        return self._own.is_set() or self._parent.is_set()

    def set(self) -> None:
        self._own.set()


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "syrup"


def _payload(event: events.Event) -> dict[str, Any]:
    repository = {"default_branch": "main"}
    if event.name == "push":
        return {
            "ref": event.ref,
            "after": event.sha,
            "head_commit": {"id": event.sha},
            "repository": repository,
        }
    if event.name == "pull_request":
        return {
            "number": 1,
            "pull_request": {
                "head": {"ref": event.ref_name, "sha": event.sha},
                "base": {"ref": (event.base_ref or "main").removeprefix("refs/heads/")},
            },
            "repository": repository,
        }
    if event.name == "workflow_dispatch":
        return {"inputs": dict(event.inputs), "ref": event.ref, "repository": repository}
    if event.name == "schedule":
        moment = event.time or dt.datetime.now(dt.UTC)
        return {"schedule": moment.strftime("%M %H * * *"), "repository": repository}
    return {"repository": repository}


def _evaluate_mapping(raw: Any, contexts: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    result: dict[str, str] = {}
    base_env = dict(contexts.get("env") or {})
    for name, value in raw.items():
        scope = expressions.Scope(contexts={**contexts, "env": {**base_env, **result}})
        evaluated = expressions.interpolate(value, scope) if isinstance(value, str) else value
        result[str(name)] = expressions.to_string(evaluated)
    return result


def _concurrency(raw: Any, contexts: Mapping[str, Any], *, where: str) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    scope = expressions.Scope(contexts=dict(contexts))
    if isinstance(raw, str):
        return expressions.to_string(expressions.interpolate(raw, scope)), False
    if isinstance(raw, dict):
        group = expressions.to_string(expressions.interpolate_data(raw.get("group"), scope))
        cancel = expressions.truthy(
            expressions.interpolate_data(raw.get("cancel-in-progress", False), scope)
        )
        if not group:
            raise InvalidInput("concurrency.group is empty", where=where)
        return group, cancel
    raise InvalidInput("concurrency must be a string or a mapping", where=where)


def _overall(results: Any, *, cancelled: bool) -> Conclusion:
    values = [item.result for item in results]
    if cancelled or Conclusion.CANCELLED in values:
        return (
            Conclusion.CANCELLED
            if cancelled or Conclusion.FAILURE not in values
            else Conclusion.FAILURE
        )
    if Conclusion.FAILURE in values:
        return Conclusion.FAILURE
    return Conclusion.SUCCESS


def open_runner(
    *,
    data_dir: Path,
    extra_labels: Sequence[str] = (),
    max_parallel_jobs: int = 2,
    actions_dir: Path | None = None,
    on_line: Callable[[str, str], None] | None = None,
) -> Runner:
    """A runner over the data dir's run database (recovering runs a restart orphaned)."""
    store = records.open_store(data_dir)
    settings = Settings(
        data_dir=data_dir,
        host=planning.Host.detect(extra=extra_labels),
        max_parallel_jobs=max_parallel_jobs,
        actions_dir=actions_dir,
    )
    return Runner(settings, store=store, on_line=on_line)
