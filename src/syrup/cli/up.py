"""``syrup up``: the whole platform in one process tree."""

from __future__ import annotations

import typer

app = typer.Typer(help="Start Syrup: local cluster, GitOps controller, API and web UI.")
