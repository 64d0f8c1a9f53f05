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
) -> None:
    """Start the local cluster's API server and write DATA_DIR/kubeconfig."""
    from syrup.cluster import server

    server.run(
        server.ServeSettings(
            data_dir=paths.ensure_data_dir(data_dir),
            host=host,
            port=port,
            history_size=watch_history,
        )
    )
