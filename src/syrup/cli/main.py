"""The ``syrup`` command: one Typer application with a sub-command per component.

Global options (``--log-format``, ``--log-level``, ``--version``) live here; each component's
commands live in their own module and are mounted below, so the CLI's shape mirrors the
package's layers.

Sub-commands load lazily: ``syrup image update`` should not pay for importing the API server,
FastAPI and the controller (seconds on a busy machine). Help listings use the short help kept
here; the module is imported only when its command actually runs.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

# NB: Typer vendors its own click; commands and contexts must be of that copy's types.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

from syrup import __version__, logs

#: name -> (module, attribute, short help). The attribute is a Typer app or a function.
_LAZY: dict[str, tuple[str, str, str]] = {
    "up": ("syrup.cli.up", "app", "Start Syrup: local cluster, GitOps controller, API and web UI."),
    "login": ("syrup.cli.argocd", "login", "Log in to a Syrup API server."),
    "app": ("syrup.cli.argocd", "app_cmd", "Manage applications."),
    "repo": ("syrup.cli.argocd", "repo_cmd", "Manage repositories."),
    "proj": ("syrup.cli.argocd", "proj_cmd", "Manage projects."),
    "account": ("syrup.cli.argocd", "account_cmd", "Manage accounts and API tokens."),
    "cluster": ("syrup.cli.cluster", "app", "Run the local Kubernetes-compatible cluster."),
    "controller": ("syrup.cli.controller", "app", "Run the GitOps controller against a cluster."),
    "image": ("syrup.cli.image", "app", "Write new image tags into a GitOps repository."),
    "ci": ("syrup.cli.ci", "app", "Run a repository's GitHub Actions workflows locally."),
}


def load_command(name: str) -> click.Command:
    """Import a sub-command's module and turn its Typer app or function into a click command."""
    module_name, attr, _ = _LAZY[name]
    target: Any = getattr(importlib.import_module(module_name), attr)
    command: click.Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY:
            if ctx.resilient_parsing or ctx.invoked_subcommand is None:
                # Listing (help, completion): a stub that carries only the short help.
                short = _LAZY[cmd_name][2]
                return TyperCommand(cmd_name, help=short, short_help=short)
            return load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] in _LAZY:
            return args[0], load_command(args[0]), args[1:]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="syrup",
    cls=_LazyGroup,
    help="Syrup: GitOps delivery from git push to running software, on one machine.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
