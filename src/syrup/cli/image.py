"""``syrup image ...``: the image updater's commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Write new image tags into a GitOps repository.", no_args_is_help=True)
