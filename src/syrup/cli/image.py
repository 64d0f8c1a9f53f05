"""``syrup image ...``: the image updater's commands.

``update`` and ``set`` apply one event to a checkout (or a cached clone of a URL) through the
same durable queue the server uses, so a crash in the middle is finished by running the same
command again (or by ``retry``). ``events`` and ``retry`` read and act on that queue;
``serve`` runs the HTTP intake with its worker; ``poll`` polls the configured registries.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer

from syrup import logs, paths
from syrup.errors import ConfigError, InvalidInput, NotFound, SyrupError

if TYPE_CHECKING:
    from syrup.updater.updating import Updater

app = typer.Typer(help="Write new image tags into a GitOps repository.", no_args_is_help=True)

_DATA_DIR = typer.Option(None, "--data-dir", envvar=paths.ENV_DATA_DIR, help="State directory.")
_CONFIG = typer.Option(None, "--config", "-c", help="Updater configuration file (YAML).")
_REPO = typer.Option(..., "--repo", help="A Git checkout (edited in place) or a repository URL.")
_PATHS = typer.Option([], "--path", help="Only files under this directory or glob (repeatable).")
_BRANCH = typer.Option(None, "--branch", help="Branch to commit to (default: current / main).")
_NO_COMMIT = typer.Option(False, "--no-commit", help="Change the files, do not commit.")
_PUSH = typer.Option(False, "--push", help="Push the commit to the remote branch.")


def _updater(data_dir: Path | None, config_path: Path | None) -> Updater:
    from syrup.updater import config, updating

    loaded = config.load(config_path) if config_path else config.UpdaterConfig()
    settings = updating.UpdaterSettings(data_dir=paths.ensure_data_dir(data_dir), config=loaded)
    return updating.Updater(settings)


def _fail(error: SyrupError, *, code: int) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code)


def _apply(
    payload: bytes,
    *,
    source: str,
    data_dir: Path | None,
    config_path: Path | None,
    repo: str,
    branch: str | None,
    path: list[str],
    no_commit: bool,
    push: bool,
) -> None:
    from syrup.updater import gitrepo, updating

    try:
        updater = _updater(data_dir, config_path)
    except ConfigError as error:
        raise _fail(error, code=2) from error
    local = Path(repo).expanduser()
    target = updating.RepoTarget(
        url=str(local.resolve()) if gitrepo.is_work_tree(local) else repo,
        branch=branch,
        paths=tuple(path),
        commit=not no_commit,
        push=push,
    )
    failed = False
    try:
        received = updater.receive(payload, source=source, target=target)

        # Finish events for the same target left by an earlier crash first: order matters.
        ours = {row.id for row in received}
        for row in updater.store.pending():
            if row.target == target.to_json() or row.id in ours:
                updater.process(row.id)
        for row in received:
            final = updater.store.get(row.id)
            for file in final.files:
                typer.echo(file)
            typer.echo(
                f"{final.id}: {final.state.value}"
                + (f" {' '.join(final.shas)}" if final.shas else "")
                + (f" ({final.detail})" if final.detail else ""),
                err=True,
            )
            for outcome in final.outcomes:
                for warning in outcome.warnings:
                    typer.echo(f"warning: {warning}", err=True)
            failed = failed or final.state.value == "failed"
    except InvalidInput as error:
        raise _fail(error, code=2) from error
    finally:
        updater.close()
    if failed:
        # Kept in the queue: `syrup image retry ID` (or the server) tries it again.
        raise typer.Exit(1)


@app.command()
def update(
    repo: str = _REPO,
    event: str = typer.Option(..., "--event", help="Event JSON file, or - for standard input."),
    path: list[str] = _PATHS,
    branch: str | None = _BRANCH,
    no_commit: bool = _NO_COMMIT,
    push: bool = _PUSH,
    config_path: Path | None = _CONFIG,
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Apply one registry event to a repository and print the files it changed.

    Exits 0 whether or not a file changed, 2 on an invalid event, 1 when the event failed
    (for example a push the remote refused); a failed event stays queued for 'syrup image retry'.
    """
    try:
        payload = sys.stdin.buffer.read() if event == "-" else Path(event).read_bytes()
    except OSError as error:
        raise _fail(InvalidInput(error.strerror or "cannot read", where=event), code=2) from error
    _apply(
        payload,
        source="cli",
        data_dir=data_dir,
        config_path=config_path,
        repo=repo,
        branch=branch,
        path=path,
        no_commit=no_commit,
        push=push,
    )


@app.command("set")
def set_image(
    image: str = typer.Argument(..., help="IMAGE:TAG (or IMAGE:TAG@sha256:...)."),
    repo: str = _REPO,
    path: list[str] = _PATHS,
    branch: str | None = _BRANCH,
    no_commit: bool = _NO_COMMIT,
    push: bool = _PUSH,
    config_path: Path | None = _CONFIG,
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Write a tag by hand, as if the registry had announced it."""
    from syrup.updater import refs

    try:
        ref = refs.parse_reference(image, where="IMAGE")
    except InvalidInput as error:
        raise _fail(error, code=2) from error
    if ref.tag is None:
        raise _fail(InvalidInput("needs a tag (IMAGE:TAG)", where="IMAGE"), code=2)
    body = {"image": ref.name, "tag": ref.tag, "id": f"manual-{uuid.uuid4().hex[:16]}"}
    if ref.digest:
        body["digest"] = ref.digest
    _apply(
        orjson.dumps(body),
        source="manual",
        data_dir=data_dir,
        config_path=config_path,
        repo=repo,
        branch=branch,
        path=path,
        no_commit=no_commit,
        push=push,
    )


@app.command("events")
def list_events(
    failed: bool = typer.Option(False, "--failed", help="Only events that failed."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """List the events received and what became of each (matched, committed SHA, failed)."""
    from syrup.updater import store as store_module

    store = store_module.Store(paths.ensure_data_dir(data_dir) / "updater" / "events.sqlite3")
    try:
        states = [store_module.EventState.FAILED] if failed else []
        for row in store.select(states=states):
            record = {
                "id": row.id,
                "image": str(row.event.repository),
                "tag": row.event.tag,
                "state": row.state.value,
                "shas": list(row.shas),
                "files": list(row.files),
                "detail": row.detail,
                "attempts": row.attempts,
                "source": row.source,
            }
            if as_json:
                typer.echo(orjson.dumps(record).decode())
            else:
                sha = ",".join(sha[:12] for sha in row.shas) or "-"
                typer.echo(
                    f"{row.id}\t{row.event.repository}:{row.event.tag}\t{row.state.value}"
                    f"\t{sha}\t{row.detail}"
                )
    finally:
        store.close()


@app.command()
def retry(
    event_id: str = typer.Argument(..., metavar="ID", help="The event to apply again."),
    config_path: Path | None = _CONFIG,
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Apply a stored (typically failed) event again."""

    try:
        updater = _updater(data_dir, config_path)
    except ConfigError as error:
        raise _fail(error, code=2) from error
    try:
        row = updater.retry(event_id)
    except NotFound as error:
        raise _fail(error, code=1) from error
    finally:
        updater.close()
    typer.echo(f"{row.id}: {row.state.value} {' '.join(row.shas)} {row.detail}".rstrip())
    if row.state.value == "failed":
        raise typer.Exit(1)


@app.command()
def poll(
    config_path: Path = typer.Option(..., "--config", "-c", help="Updater configuration."),
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Poll the registries of the images marked 'poll: true' once and apply what is new."""
    from syrup.updater import polling

    try:
        updater = _updater(data_dir, config_path)
    except ConfigError as error:
        raise _fail(error, code=2) from error
    try:
        for row in polling.poll_once(updater):
            final = updater.process(row.id)
            typer.echo(f"{final.id}: {final.event.tag} {final.state.value} {final.detail}")
    finally:
        updater.close()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8090, "--port", help="Port (0 picks a free one)."),
    config_path: Path | None = _CONFIG,
    data_dir: Path | None = _DATA_DIR,
) -> None:
    """Serve POST /api/v1/image-events and apply events as they arrive.

    The token comes from the configuration's ``server.token`` or the SYRUP_IMAGE_TOKEN
    environment variable.
    """
    import uvicorn

    from syrup.updater import config, http, updating

    try:
        loaded = config.load(config_path) if config_path else config.UpdaterConfig()
        token = os.environ.get("SYRUP_IMAGE_TOKEN") or (
            loaded.server.token.resolve() if loaded.server.token else None
        )
        secrets = {name: src.hmac_secret.resolve() for name, src in loaded.server.sources.items()}
        settings = http.ServeSettings(
            updater=updating.UpdaterSettings(
                data_dir=paths.ensure_data_dir(data_dir), config=loaded
            ),
            token=token,
            source_secrets=secrets,
        )
        application = http.create_app(settings)
    except (ConfigError, InvalidInput) as error:
        raise _fail(error, code=2) from error
    uvicorn.run(application, host=host, port=port, log_config=None)


def main() -> None:
    """Run the image commands alone (``python -m syrup.cli.image ...``), the same commands as
    ``syrup image ...`` without importing every other component's CLI first."""
    logs.configure()
    app(prog_name="syrup image")


if __name__ == "__main__":
    main()
