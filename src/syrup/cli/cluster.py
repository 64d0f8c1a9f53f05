"""``syrup cluster ...``: run and manage the local cluster."""

from __future__ import annotations

from pathlib import Path

import typer

from syrup import paths

app = typer.Typer(help="Run the local Kubernetes-compatible cluster.", no_args_is_help=True)


@app.command()
def serve(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", envvar=paths.ENV_DATA_DIR, help="State directory."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(6443, "--port", help="HTTPS port (0 picks a free one)."),
    watch_history: int = typer.Option(
        100_000,
        "--watch-history",
        min=1,
        help="Watch events kept for resuming watches; older resumes get 410 Gone.",
    ),
    nodes: int = typer.Option(1, "--nodes", min=0, help="Simulated Ready nodes."),
    speed: float | None = typer.Option(
        None,
        "--speed",
        help="Simulated seconds per real second (default: a Deployment is ready in ~1 s).",
    ),
    registry: list[str] = typer.Option(
        [],
        "--registry",
        help="HOST=URL: check image pulls from HOST against this Registry v2 URL (repeatable).",
    ),
    load_balancer: bool = typer.Option(
        True,
        "--load-balancer/--no-load-balancer",
        help="Give LoadBalancer Services and Ingresses an address.",
    ),
) -> None:
    """Start the local cluster's API server and write DATA_DIR/kubeconfig."""
    from syrup import errors
    from syrup.cluster import server, workloads

    try:
        simulation = workloads.from_flags(
            nodes=nodes, speed=speed, registries=registry, load_balancer=load_balancer
        )
    except errors.ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    server.run(
        server.ServeSettings(
            data_dir=paths.ensure_data_dir(data_dir),
            host=host,
            port=port,
            history_size=watch_history,
            workloads=simulation,
        )
    )


def _mount_destination_commands() -> None:
    """``syrup cluster add|list|rm`` manage destination clusters through the Syrup API.

    They live with the other Argo-CD-style commands; only their place in the CLI is here.
    """
    from syrup.cli import argocd

    for command in argocd.clusters_cmd.registered_commands:
        app.registered_commands.append(command)


_mount_destination_commands()
