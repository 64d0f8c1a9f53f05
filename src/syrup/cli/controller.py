"""``syrup controller``: run the GitOps controller against any cluster through a kubeconfig."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

from syrup import errors
from syrup.gitops import controller

app = typer.Typer(help="Run the GitOps controller against a cluster.", invoke_without_command=True)


@app.callback()
def run(
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Kubeconfig of the cluster (default: $KUBECONFIG)."
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context to use."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where clones are cached."),
    namespace: list[str] = typer.Option(
        ["argocd"], "--namespace", "-n", help="Namespaces to watch for Applications."
    ),
    workers: int = typer.Option(8, "--workers", help="Applications reconciled in parallel."),
    refresh_seconds: float = typer.Option(120.0, "--refresh-seconds", help="Refresh period."),
    jitter_seconds: float = typer.Option(60.0, "--jitter-seconds", help="Refresh jitter."),
    tracking_method: str = typer.Option(
        "label",
        "--tracking-method",
        help="How apps mark their objects: label, annotation or annotation+label.",
    ),
) -> None:
    """Keep the cluster equal to what its Applications' Git sources say."""
    # lightkube's HTTP client (httpx2) logs every request at INFO: far too loud for watches.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    settings = controller.Settings(
        kubeconfig=kubeconfig,
        context=context,
        data_dir=data_dir,
        namespaces=tuple(namespace),
        workers=workers,
        refresh_seconds=refresh_seconds,
        jitter_seconds=jitter_seconds,
        tracking_method=tracking_method,
    )
    try:
        asyncio.run(controller.run(settings))
    except KeyboardInterrupt:
        pass
    except errors.SyrupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
