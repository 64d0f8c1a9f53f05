"""The ``syrup`` command: one Typer application with a sub-command per component.

Global options (``--log-format``, ``--log-level``, ``--version``) live here; each component's
commands live in their own module and are mounted below, so the CLI's shape mirrors the
package's layers.
"""

from __future__ import annotations

import typer

from syrup import __version__, logs
from syrup.cli import argocd as argocd_cli
from syrup.cli import ci as ci_cli
from syrup.cli import cluster as cluster_cli
from syrup.cli import controller as controller_cli
from syrup.cli import image as image_cli
from syrup.cli import up as up_cli

app = typer.Typer(
    name="syrup",
    help="Syrup: GitOps delivery from git push to running software, on one machine.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cluster_cli.app, name="cluster")
app.add_typer(image_cli.app, name="image")
app.add_typer(ci_cli.app, name="ci")
app.add_typer(controller_cli.app, name="controller")
app.add_typer(up_cli.app, name="up")
app.add_typer(argocd_cli.app_cmd, name="app")
app.add_typer(argocd_cli.repo_cmd, name="repo")
app.add_typer(argocd_cli.proj_cmd, name="proj")
app.add_typer(argocd_cli.account_cmd, name="account")
app.command("login")(argocd_cli.login)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"syrup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    log_format: logs.LogFormat = typer.Option(
        "plain", "--log-format", help="Log output: plain text, or one JSON object per line."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Syrup: GitOps delivery from git push to running software, on one machine."""
    logs.configure(fmt=log_format, level=log_level)


def main() -> None:
    """Console-script entry point."""
    app()
