"""``syrup up``: the whole platform in one process tree."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import typer

from syrup import errors, up
from syrup.gitops import tracking

app = typer.Typer(
    help="Start Syrup: local cluster, GitOps controller, API and web UI.",
    invoke_without_command=True,
)


def _print_banner(banner: up.Banner) -> None:
    lines = [
        "",
        f"Syrup is up: {banner.url}",
        f"  login:       {banner.username}",
    ]
    if banner.password is not None:
        if os.environ.get("SYRUP_ADMIN_PASSWORD") and not banner.password_reset:
            lines.append("  password:    (from SYRUP_ADMIN_PASSWORD)")
        else:
            lines.append(f"  password:    {banner.password}   (shown once: keep it)")
    else:
        lines.append(
            "  password:    as printed on first start (lost? syrup up --reset-admin-password)"
        )
    lines += [
        f"  CLI:         syrup login {banner.url} --username {banner.username}",
        f"  KUBECONFIG={banner.kubeconfig}",
    ]
    if banner.demo_repo:
        lines.append(f"  demo repo:   git clone {banner.demo_repo}   (push to deploy)")
    lines += [
        f"  webhooks:    POST {banner.url}/api/webhook (secret in {banner.webhook_secret_path})"
    ]
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


@app.callback()
def run(
    port: int = typer.Option(8080, "--port", help="Port of the API and web UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="State directory (default ~/.local/share/syrup)."
    ),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Use this cluster instead of starting the local one."
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context."),
    demo: bool | None = typer.Option(
        None,
        "--demo/--no-demo",
        help="Install the demo GitOps repo and apps (default: only on a new data dir).",
    ),
    refresh_seconds: float = typer.Option(
        120.0, "--refresh-seconds", help="How often apps are compared with Git."
    ),
    reset_admin_password: bool = typer.Option(
        False, "--reset-admin-password", help="Generate and print a new admin password."
    ),
    tracking_method: str = typer.Option(
        "label",
        "--tracking-method",
        help="How apps mark their objects: label, annotation or annotation+label.",
    ),
) -> None:
    """Start the local cluster, the GitOps controller and the API/UI; Ctrl-C stops them."""
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if kubeconfig is not None and not kubeconfig.exists():
        typer.echo(f"error: --kubeconfig {kubeconfig}: no such file", err=True)
        raise typer.Exit(2)
    settings = up.Settings(
        data_dir=data_dir,
        host=host,
        port=port,
        kubeconfig=kubeconfig,
        context=context,
        demo=demo,
        refresh_seconds=refresh_seconds,
        reset_admin_password=reset_admin_password,
        tracking_method=tracking_method,
    )
    try:
        tracking.parse_method(tracking_method)
        asyncio.run(up.serve(settings, on_ready=_print_banner))
    except KeyboardInterrupt:
        pass
    except errors.SyrupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    sys.stdout.flush()
