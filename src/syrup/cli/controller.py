"""``syrup controller``: run the GitOps controller against a cluster."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run the GitOps controller against a cluster.", no_args_is_help=True)
