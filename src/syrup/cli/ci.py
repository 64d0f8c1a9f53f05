"""``syrup ci ...``: run GitHub Actions workflows locally."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run a repository's GitHub Actions workflows locally.", no_args_is_help=True)
