"""``syrup ci ...``: run GitHub Actions workflows locally, like ``act``.

``run`` plans and runs the workflows an event triggers in a checkout, streaming job logs;
``runs`` and ``logs`` read the run database (``logs --follow`` tails a run another process is
running); ``cancel`` asks a run to stop; ``secret`` manages the encrypted secret store.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import typer

from syrup import paths
from syrup.ci import actions, planning, records, running
from syrup.ci import secrets as secret_store
from syrup.errors import SyrupError

app = typer.Typer(help="Run a repository's GitHub Actions workflows locally.", no_args_is_help=True)
secret_app = typer.Typer(help="Secrets given to CI runs (encrypted at rest).", no_args_is_help=True)
app.add_typer(secret_app, name="secret")

_DATA_DIR = typer.Option(None, "--data-dir", help="Syrup's data directory.")


def _fail(error: SyrupError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=2)


def _pairs(items: list[str], *, flag: str) -> dict[str, str]:
    return secret_store.parse_assignments(items, where=flag)


@app.command("run")
def run_command(
    path: Path = typer.Argument(Path("."), help="The checkout whose workflows to run."),
    workflow: str | None = typer.Option(None, "--workflow", "-W", help="Only this workflow file."),
    event: str = typer.Option(
        "push", "--event", "-e", help="push, pull_request, workflow_dispatch, schedule."
    ),
    ref: str | None = typer.Option(
        None, "--ref", help="Branch, tag or full ref (default: HEAD's branch)."
    ),
    base: str | None = typer.Option(None, "--base", help="Base branch of a pull_request event."),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="workflow_dispatch input NAME=VALUE."
    ),
    secrets: list[str] = typer.Option([], "--secret", "-s", help="Secret NAME=VALUE for this run."),
    secrets_file: Path | None = typer.Option(
        None, "--secrets-file", help="File of NAME=VALUE lines."
    ),
    variables: list[str] = typer.Option(
        [], "--var", help="Configuration variable NAME=VALUE (vars)."
    ),
    job: str | None = typer.Option(None, "--job", "-j", help="Only this job (and what it needs)."),
    list_only: bool = typer.Option(False, "--list", "-l", help="Print the plan and exit."),
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Plan and resolve actions; run nothing."
    ),
    labels: list[str] = typer.Option(
        [], "--runner-label", help="Extra runs-on label this host satisfies."
    ),
    max_parallel: int = typer.Option(2, "--max-parallel", help="Jobs running at once."),
    actions_dir: Path | None = typer.Option(
        None, "--actions-dir", help="Directory of owner/repo action clones."
    ),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Run the workflows an event triggers in a checkout."""
    try:
        repo = path.resolve()
        given_secrets = {}
        if secrets_file is not None:
            given_secrets.update(
                _pairs(
                    secrets_file.read_text(encoding="utf-8").splitlines(), flag=str(secrets_file)
                )
            )
        given_secrets.update(_pairs(secrets, flag="--secret"))
        the_event = running.make_event(
            repo, name=event, ref=ref, base_ref=base, inputs=_pairs(inputs, flag="--input")
        )
        request = running.RunRequest(
            repo=repo,
            event=the_event,
            workflow_file=workflow,
            job=job,
            secrets=given_secrets,
            vars=_pairs(variables, flag="--var"),
        )
        directory = paths.ensure_data_dir(data_dir)

        def show(key: str, line: str) -> None:
            typer.echo(f"[{key}] {line}")

        runner = running.open_runner(
            data_dir=directory,
            extra_labels=labels,
            max_parallel_jobs=max_parallel,
            actions_dir=actions_dir.resolve() if actions_dir else None,
            on_line=show,
        )
        plans = runner.plan(request)
        if list_only or dry_run:
            typer.echo(planning.render(plans), nl=False)
            if dry_run:
                _print_resolution(plans, actions_dir)
            return
        if not plans:
            typer.echo(planning.render(plans), nl=False)
            return
        failed = False
        for plan in plans:
            result = runner.run_plan(plan, request)
            typer.echo(
                f"run {result.run_id} (#{result.run_number}) {plan.workflow.name}: "
                f"{result.conclusion}"
            )
            failed = failed or result.conclusion is not records.Conclusion.SUCCESS
        runner.store.close()
    except (SyrupError, OSError) as error:
        raise _fail(error if isinstance(error, SyrupError) else SyrupError(str(error))) from error
    if failed:
        raise typer.Exit(code=1)


def _print_resolution(plans: list[planning.WorkflowPlan], actions_dir: Path | None) -> None:
    for plan in plans:
        for item in _walk(plan.jobs):
            for step in item.job.steps:
                if step.uses is None:
                    continue
                if step.uses.startswith("./"):
                    how = "local action"
                elif actions.is_builtin(step.uses):
                    how = "built in"
                else:
                    repo, _, _ = actions.split_uses(step.uses)
                    found = actions_dir is not None and (actions_dir / repo).exists()
                    how = f"from {actions_dir / repo}" if found and actions_dir else "NOT AVAILABLE"
                typer.echo(f"  {item.key}: {step.uses}: {how}")


def _walk(items: tuple[planning.PlannedJob, ...]) -> list[planning.PlannedJob]:
    result: list[planning.PlannedJob] = []
    for item in items:
        result.append(item)
        result.extend(_walk(item.children))
    return result


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("runs")
def runs_command(
    limit: int = typer.Option(20, "--limit", help="How many runs, newest first."),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """List recorded runs."""
    store = records.open_store(paths.ensure_data_dir(data_dir))
    typer.echo(
        f"{'RUN':>5} {'#':>4} {'WORKFLOW':<28} {'EVENT':<18} {'STATUS':<12} "
        f"{'CONCLUSION':<10} CREATED"
    )
    for run in store.runs(limit=limit):
        typer.echo(
            f"{run.id:>5} {run.run_number:>4} {run.workflow:<28} {run.event:<18} "
            f"{run.status:<12} {run.conclusion or '-':<10} {_time(run.created_at)}"
            + (f"  ({run.reason})" if run.reason else "")
        )


@app.command("logs")
def logs_command(
    run_id: int = typer.Argument(..., help="Run id (see `syrup ci runs`)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Print a run's logs with timestamps."""
    store = records.open_store(paths.ensure_data_dir(data_dir))
    try:
        run = store.run(run_id)
        names = {job.id: job.key for job in store.jobs(run_id)}
        lines = store.follow(run_id) if follow else iter(store.logs(run_id))
        for line in lines:
            if line.job_id not in names:
                names = {job.id: job.key for job in store.jobs(run_id)}
            stamp = dt.datetime.fromtimestamp(line.at, dt.UTC).strftime("%H:%M:%S.%f")[:-3]
            typer.echo(f"{stamp} [{names.get(line.job_id, line.job_id)}] {line.line}")
        run = store.run(run_id)
    except SyrupError as error:
        raise _fail(error) from error
    typer.echo(f"run {run.id}: {run.status} {run.conclusion or ''}".rstrip())


@app.command("cancel")
def cancel_command(run_id: int = typer.Argument(...), data_dir: Path | None = _DATA_DIR) -> None:
    """Ask a run to stop; its steps' process groups are killed."""
    store = records.open_store(paths.ensure_data_dir(data_dir))
    try:
        store.run(run_id)
    except SyrupError as error:
        raise _fail(error) from error
    store.request_cancel(run_id)
    typer.echo(f"cancellation requested for run {run_id}")


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(...),
    value: str | None = typer.Option(None, "--value", help="The value (default: read stdin)."),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Store a secret (read from stdin unless --value is given)."""
    text = value if value is not None else sys.stdin.read().rstrip("\n")
    try:
        secret_store.SecretStore(paths.ensure_data_dir(data_dir)).set(name, text)
    except SyrupError as error:
        raise _fail(error) from error
    typer.echo(f"secret {name} stored")


@secret_app.command("list")
def secret_list(data_dir: Path | None = _DATA_DIR) -> None:
    """List secret names (never values)."""
    for name in secret_store.SecretStore(paths.ensure_data_dir(data_dir)).names():
        typer.echo(name)


@secret_app.command("rm")
def secret_rm(name: str = typer.Argument(...), data_dir: Path | None = _DATA_DIR) -> None:
    """Delete a secret."""
    if not secret_store.SecretStore(paths.ensure_data_dir(data_dir)).delete(name):
        raise _fail(SyrupError(f"no secret {name!r}"))
    typer.echo(f"secret {name} deleted")
