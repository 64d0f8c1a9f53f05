"""Argo-CD-style commands: ``syrup login``, ``syrup app``, ``syrup repo``, ``syrup proj``."""

from __future__ import annotations

import typer

app_cmd = typer.Typer(help="Manage applications.", no_args_is_help=True)
repo_cmd = typer.Typer(help="Manage repositories.", no_args_is_help=True)
proj_cmd = typer.Typer(help="Manage projects.", no_args_is_help=True)
account_cmd = typer.Typer(help="Manage accounts and API tokens.", no_args_is_help=True)
