"""Argo-CD-style commands: ``syrup login``, ``syrup app``, ``syrup repo``, ``syrup proj``.

They talk to a running ``syrup up`` over its REST API, with flags named as ``argocd`` names
them where the meaning is the same. The server and token come from ``--server`` /
``--auth-token`` (or ``SYRUP_SERVER`` / ``SYRUP_AUTH_TOKEN``), else from the current context
of ``~/.config/syrup/config`` (``SYRUP_CONFIG`` overrides the path), which ``syrup login``
writes, as ``argocd login`` writes ``~/.config/argocd/config``.

Output is a Rich table for people and ``-o json|yaml|wide|name`` for scripts; colour follows
the terminal (none when piped or when ``NO_COLOR`` is set). Exit codes: 0 success, 1 a failed
or timed-out sync/wait or a non-empty diff, 2 any error (bad flags, unreachable server, 4xx).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

app_cmd = typer.Typer(help="Manage applications.", no_args_is_help=True)
repo_cmd = typer.Typer(help="Manage repositories.", no_args_is_help=True)
proj_cmd = typer.Typer(help="Manage projects.", no_args_is_help=True)
account_cmd = typer.Typer(help="Manage accounts and API tokens.", no_args_is_help=True)
#: ``syrup cluster add|list|rm`` (Argo CD destination clusters); meant to be mounted under
#: the ``syrup cluster`` group beside ``serve``.
clusters_cmd = typer.Typer(help="Manage destination clusters.", no_args_is_help=True)

ERROR = 2
FAILED = 1

# Piped output is for scripts: never truncate a cell to fit an imaginary 80-column terminal.
# Markup is off: server messages quote Go types such as ``map[string]interface {}``, which
# Rich would otherwise read as style tags and swallow. Errors are not wrapped mid-word.
out = Console(
    highlight=False, markup=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4000
)
err = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    YAML = "yaml"
    NAME = "name"


OUTPUT = typer.Option(Output.TABLE, "--output", "-o", help="table, wide, json, yaml or name.")
SERVER = typer.Option(None, "--server", envvar="SYRUP_SERVER", help="Syrup API server URL.")
TOKEN = typer.Option(None, "--auth-token", envvar="SYRUP_AUTH_TOKEN", help="API token.")


# -- configuration and HTTP --------------------------------------------------------------


def config_path() -> Path:
    env = os.environ.get("SYRUP_CONFIG")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "syrup" / "config"


def _load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {"contexts": {}, "current-context": ""}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        fail(f"{path}: not valid YAML: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
        fail(f"{path}: expected a mapping with 'contexts'")
    data.setdefault("contexts", {})
    return data


def _save_config(data: dict[str, Any]) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)


def fail(message: str, code: int = ERROR) -> NoReturn:
    err.print(Text.assemble(("error:", "red" if err.is_terminal else ""), f" {message}"))
    raise typer.Exit(code)


@dataclass
class Api:
    """A small client over the REST API that turns error bodies into messages."""

    server: str
    token: str

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            with httpx.Client(base_url=self.server, timeout=60) as http:
                r = http.request(
                    method, path, headers={"Authorization": f"Bearer {self.token}"}, **kwargs
                )
        except httpx.HTTPError as exc:
            fail(f"cannot reach {self.server}: {exc}")
        if r.status_code >= 400:
            try:
                body = r.json()
                message = body.get("error") or r.text
            except ValueError:
                message = r.text[:300]
            if r.status_code == 401:
                message += " (run 'syrup login')"
            fail(f"{message} (HTTP {r.status_code})")
        return r.json() if r.content else {}

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)


def api(server: str | None, token: str | None) -> Api:
    if server and token:
        return Api(server.rstrip("/"), token)
    config = _load_config()
    name = config.get("current-context") or ""
    ctx = config["contexts"].get(name) if name else None
    if server and not ctx:
        ctx = next((c for c in config["contexts"].values() if c.get("server") == server), None)
    if not ctx:
        fail(f"not logged in: run 'syrup login SERVER' (config: {config_path()})")
    return Api((server or ctx["server"]).rstrip("/"), token or ctx["token"])


def emit(data: Any, output: Output, *, names: list[str] | None = None) -> bool:
    """Print ``data`` for scripts when asked; False means the caller prints a table."""
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    elif output is Output.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    elif output is Output.NAME:
        for name in names or []:
            sys.stdout.write(name + "\n")
    else:
        return False
    return True


# -- login -----------------------------------------------------------------------------


def login(
    server: str = typer.Argument(..., help="API server URL, e.g. http://127.0.0.1:8080."),
    username: str = typer.Option("admin", "--username", help="Account name."),
    password: str | None = typer.Option(
        None, "--password", envvar="SYRUP_PASSWORD", help="Password (prompted when omitted)."
    ),
    name: str | None = typer.Option(None, "--name", help="Context name (default: host:port)."),
) -> None:
    """Log in to a Syrup server and make it the current context."""
    if "://" not in server:
        server = f"http://{server}"
    if password is None:
        if not sys.stdin.isatty():
            fail("--password is required when stdin is not a terminal")
        password = typer.prompt("Password", hide_input=True)
    try:
        r = httpx.post(
            f"{server.rstrip('/')}/api/v1/session",
            json={"username": username, "password": password},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server}: {exc}")
    if r.status_code != 200:
        fail(f"login failed: {r.json().get('error', r.text)} (HTTP {r.status_code})")
    context = name or server.split("://", 1)[1].rstrip("/")
    config = _load_config()
    config["contexts"][context] = {
        "server": server.rstrip("/"),
        "user": username,
        "token": r.json()["token"],
    }
    config["current-context"] = context
    _save_config(config)
    out.print(f"'{username}' logged in successfully; context '{context}' is current")


# -- applications ----------------------------------------------------------------------


_MAPS = (
    ("metadata",),
    ("spec",),
    ("spec", "destination"),
    ("spec", "source"),
    ("spec", "syncPolicy"),
    ("status",),
    ("status", "sync"),
    ("status", "health"),
    ("status", "operationState"),
)
_LISTS = (("spec", "sources"), ("status", "conditions"), ("status", "resources"))


def _viewable(app: Any) -> dict[str, Any]:
    """A copy of an Application that is safe to show in a table.

    The API refuses malformed specs, but ``kubectl apply`` can still store one (a destination
    written as a list, say); such a field shows as empty here instead of crashing the command.
    """
    out: dict[str, Any] = copy.deepcopy(app) if isinstance(app, dict) else {}
    for path, empty in [*((p, dict) for p in _MAPS), *((p, list) for p in _LISTS)]:
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent.get(path[-1]), empty):
            parent[path[-1]] = empty()
    return out


def _status(app: dict[str, Any]) -> tuple[str, str]:
    status = app.get("status") or {}
    return (
        str((status.get("sync") or {}).get("status", "Unknown")),
        str((status.get("health") or {}).get("status", "Unknown")),
    )


_COLOURS = {
    "Synced": "green",
    "Healthy": "green",
    "OutOfSync": "yellow",
    "Progressing": "cyan",
    "Degraded": "red",
    "Missing": "yellow",
    "Suspended": "magenta",
    "Succeeded": "green",
    "Failed": "red",
    "Error": "red",
}


def _badge(text: str) -> Text:
    return Text(text, style=_COLOURS.get(text, ""))


@app_cmd.command("list")
def app_list(
    project: list[str] = typer.Option([], "--project", "-p", help="Only these projects."),
    selector: str = typer.Option("", "--selector", "-l", help="Label selector."),
    output: Output = OUTPUT,
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """List applications."""
    params: dict[str, Any] = {"selector": selector, "project": project}
    items = api(server, auth_token).get("/api/v1/applications", params=params)["items"]
    if emit(items, output, names=[a["metadata"]["name"] for a in items]):
        return
    items = [_viewable(a) for a in items]
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "CLUSTER", "NAMESPACE", "PROJECT", "STATUS", "HEALTH", "SYNCPOLICY"):
        table.add_column(col)
    if output is Output.WIDE:
        table.add_column("REPO")
        table.add_column("PATH")
        table.add_column("TARGET")
    for a in items:
        spec = a.get("spec") or {}
        dest = spec.get("destination") or {}
        sync_status, health = _status(a)
        policy = "Auto" if (spec.get("syncPolicy") or {}).get("automated") is not None else "Manual"
        row: list[Any] = [
            a["metadata"]["name"],
            dest.get("server") or dest.get("name", ""),
            dest.get("namespace", ""),
            spec.get("project") or "default",
            _badge(sync_status),
            _badge(health),
            policy,
        ]
        if output is Output.WIDE:
            src = _first_source(spec)
            row += [src.get("repoURL", ""), src.get("path", ""), src.get("targetRevision", "")]
        table.add_row(*row)
    out.print(table)


def _first_source(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec.sources[0]`` when the app has ``sources`` (they win over ``source``), else
    ``spec.source``: what Argo CD's CLI shows for a multi-source app."""
    many = spec.get("sources")
    if isinstance(many, list) and many and isinstance(many[0], dict):
        first: dict[str, Any] = many[0]
        return first
    one = spec.get("source")
    return one if isinstance(one, dict) else {}


@app_cmd.command("get")
def app_get(
    name: str,
    refresh: bool = typer.Option(False, "--refresh", help="Refresh before showing."),
    hard_refresh: bool = typer.Option(False, "--hard-refresh", help="Hard refresh first."),
    output: Output = OUTPUT,
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Show one application: source, destination, status, conditions and resources."""
    client = api(server, auth_token)
    params = {"refresh": "hard"} if hard_refresh else ({"refresh": "normal"} if refresh else {})
    a = client.get(f"/api/v1/applications/{name}", params=params)
    if emit(a, output, names=[name]):
        return
    a = _viewable(a)
    spec, status = a.get("spec") or {}, a.get("status") or {}
    src, dest = _first_source(spec), spec.get("destination") or {}
    sync_status, health = _status(a)
    rows = [
        ("Name:", f"{a['metadata']['namespace']}/{name}"),
        ("Project:", spec.get("project") or "default"),
        ("Server:", dest.get("server") or dest.get("name", "")),
        ("Namespace:", dest.get("namespace", "")),
        ("Repo:", src.get("repoURL", "")),
        ("Target:", src.get("targetRevision", "")),
        ("Path:", src.get("path", "")),
        (
            "Sync Policy:",
            "Automated"
            if (spec.get("syncPolicy") or {}).get("automated") is not None
            else "Manual",
        ),
        (
            "Sync Status:",
            f"{sync_status} to {((status.get('sync') or {}).get('revision') or '')[:7]}",
        ),
        ("Health Status:", health),
    ]
    for key, value in rows:
        out.print(f"{key:<15}{value}")
    for cond in status.get("conditions") or []:
        out.print(f"Condition:     {cond.get('type')}: {cond.get('message')}")
    op = status.get("operationState") or {}
    if op:
        out.print(f"Last Sync:     {op.get('phase')}: {op.get('message', '')}")
    out.print()
    _resources_table(status.get("resources") or [])


def _resources_table(rows: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH", "MESSAGE"):
        table.add_column(col)
    for r in rows:
        h = r.get("health") or {}
        table.add_row(
            r.get("group", ""),
            r.get("kind", ""),
            r.get("namespace", ""),
            r.get("name", ""),
            _badge(str(r.get("status", ""))),
            _badge(str(h.get("status", ""))),
            str(h.get("message", "")),
        )
    out.print(table)


def _source_flags(
    spec: dict[str, Any],
    *,
    repo: str | None,
    path: str | None,
    revision: str | None,
    dest_server: str | None,
    dest_name: str | None,
    dest_namespace: str | None,
    project: str | None,
    sync_policy: str | None,
    self_heal: bool | None,
    auto_prune: bool | None,
    sync_option: list[str],
    values: list[str],
    helm_set: list[str],
) -> None:
    # A multi-source app's first source is the one edited (Argo CD's CLI does the same).
    source = _first_source(spec) if spec.get("sources") else spec.setdefault("source", {})
    dest = spec.setdefault("destination", {})
    for key, value in (("repoURL", repo), ("path", path), ("targetRevision", revision)):
        if value is not None:
            source[key] = value
    if dest_server is not None:
        dest["server"] = dest_server
    if dest_name is not None:
        dest["name"] = dest_name
    if dest_namespace is not None:
        dest["namespace"] = dest_namespace
    if project is not None:
        spec["project"] = project
    policy = spec.setdefault("syncPolicy", {})
    if sync_policy is not None:
        if sync_policy in ("automated", "automatic", "auto"):
            policy.setdefault("automated", {})
        elif sync_policy in ("none", "manual"):
            policy.pop("automated", None)
        else:
            fail(f"--sync-policy: expected automated or none, not {sync_policy!r}")
    if self_heal is not None or auto_prune is not None:
        if "automated" not in policy:
            fail("--self-heal and --auto-prune need --sync-policy automated")
        if self_heal is not None:
            policy["automated"]["selfHeal"] = self_heal
        if auto_prune is not None:
            policy["automated"]["prune"] = auto_prune
    if sync_option:
        policy["syncOptions"] = sorted(set(policy.get("syncOptions") or []) | set(sync_option))
    if values:
        helm = source.setdefault("helm", {})
        helm["valueFiles"] = list(dict.fromkeys([*(helm.get("valueFiles") or []), *values]))
    for item in helm_set:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--helm-set: expected NAME=VALUE, not {item!r}")
        params = [
            p for p in source.setdefault("helm", {}).get("parameters") or [] if p.get("name") != key
        ]
        source["helm"]["parameters"] = [*params, {"name": key, "value": value}]


REPO = typer.Option(None, "--repo", help="Repository URL.")
PATH = typer.Option(None, "--path", help="Path in the repository.")
REVISION = typer.Option(None, "--revision", help="Target revision (branch, tag, commit).")
DEST_SERVER = typer.Option(None, "--dest-server", help="Destination cluster URL.")
DEST_NAME = typer.Option(None, "--dest-name", help="Destination cluster name.")
DEST_NS = typer.Option(None, "--dest-namespace", help="Destination namespace.")
PROJECT = typer.Option(None, "--project", help="Project.")
SYNC_POLICY = typer.Option(None, "--sync-policy", help="automated or none.")
SELF_HEAL = typer.Option(None, "--self-heal/--no-self-heal", help="Self-heal live drift.")
AUTO_PRUNE = typer.Option(None, "--auto-prune/--no-auto-prune", help="Prune automatically.")
SYNC_OPTION = typer.Option([], "--sync-option", help="Sync option, e.g. CreateNamespace=true.")
VALUES = typer.Option([], "--values", help="Helm value file in the repository.")
HELM_SET = typer.Option([], "--helm-set", help="Helm parameter NAME=VALUE.")


@app_cmd.command("create")
def app_create(
    name: str,
    repo: str | None = REPO,
    path: str | None = PATH,
    revision: str | None = typer.Option("HEAD", "--revision", help="Target revision."),
    dest_server: str | None = DEST_SERVER,
    dest_name: str | None = DEST_NAME,
    dest_namespace: str | None = DEST_NS,
    project: str | None = typer.Option("default", "--project", help="Project."),
    sync_policy: str | None = SYNC_POLICY,
    self_heal: bool | None = SELF_HEAL,
    auto_prune: bool | None = AUTO_PRUNE,
    sync_option: list[str] = SYNC_OPTION,
    values: list[str] = VALUES,
    helm_set: list[str] = HELM_SET,
    label: list[str] = typer.Option([], "--label", "-l", help="Label KEY=VALUE."),
    upsert: bool = typer.Option(False, "--upsert", help="Replace an existing app's spec."),
    output: Output = OUTPUT,
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Create an application."""
    spec: dict[str, Any] = {}
    _source_flags(
        spec, repo=repo, path=path, revision=revision, dest_server=dest_server,
        dest_name=dest_name, dest_namespace=dest_namespace, project=project,
        sync_policy=sync_policy, self_heal=self_heal, auto_prune=auto_prune,
        sync_option=sync_option, values=values, helm_set=helm_set,
    )  # fmt: skip
    labels = dict(item.split("=", 1) for item in label if "=" in item)
    body = {"metadata": {"name": name, "labels": labels}, "spec": spec}
    created = api(server, auth_token).post(
        "/api/v1/applications", json=body, params={"upsert": str(upsert).lower()}
    )
    if not emit(created, output, names=[name]):
        out.print(f"application '{name}' created")


@app_cmd.command("set")
def app_set(
    name: str,
    repo: str | None = REPO,
    path: str | None = PATH,
    revision: str | None = REVISION,
    dest_server: str | None = DEST_SERVER,
    dest_name: str | None = DEST_NAME,
    dest_namespace: str | None = DEST_NS,
    project: str | None = PROJECT,
    sync_policy: str | None = SYNC_POLICY,
    self_heal: bool | None = SELF_HEAL,
    auto_prune: bool | None = AUTO_PRUNE,
    sync_option: list[str] = SYNC_OPTION,
    values: list[str] = VALUES,
    helm_set: list[str] = HELM_SET,
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Change an application's source, destination or sync policy."""
    client = api(server, auth_token)
    current = client.get(f"/api/v1/applications/{name}")
    spec = current.get("spec") or {}
    _source_flags(
        spec, repo=repo, path=path, revision=revision, dest_server=dest_server,
        dest_name=dest_name, dest_namespace=dest_namespace, project=project,
        sync_policy=sync_policy, self_heal=self_heal, auto_prune=auto_prune,
        sync_option=sync_option, values=values, helm_set=helm_set,
    )  # fmt: skip
    body = {"metadata": current["metadata"], "spec": spec}
    client.request("PUT", f"/api/v1/applications/{name}", json=body)
    out.print(f"application '{name}' updated")


@app_cmd.command("unset")
def app_unset(
    name: str,
    values: list[str] = typer.Option([], "--values", help="Remove a Helm value file."),
    parameter: list[str] = typer.Option([], "--parameter", "-p", help="Remove a Helm parameter."),
    sync_option: list[str] = typer.Option([], "--sync-option", help="Remove a sync option."),
    nameprefix: bool = typer.Option(False, "--nameprefix", help="Remove the Kustomize prefix."),
    namesuffix: bool = typer.Option(False, "--namesuffix", help="Remove the Kustomize suffix."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Remove value files, parameters, sync options or Kustomize name affixes."""
    client = api(server, auth_token)
    current = client.get(f"/api/v1/applications/{name}")
    spec = current.get("spec") or {}
    source = _first_source(spec)
    helm = source.get("helm") or {}
    changed = False
    if values and helm.get("valueFiles"):
        helm["valueFiles"] = [v for v in helm["valueFiles"] if v not in values]
        changed = True
    if parameter and helm.get("parameters"):
        helm["parameters"] = [p for p in helm["parameters"] if p.get("name") not in parameter]
        changed = True
    policy = spec.get("syncPolicy") or {}
    if sync_option and policy.get("syncOptions"):
        policy["syncOptions"] = [o for o in policy["syncOptions"] if o not in sync_option]
        changed = True
    kustomize = source.get("kustomize") or {}
    for flag, key in ((nameprefix, "namePrefix"), (namesuffix, "nameSuffix")):
        if flag and key in kustomize:
            del kustomize[key]
            changed = True
    if not changed:
        out.print(f"application '{name}': nothing to unset")
        return
    client.request(
        "PUT", f"/api/v1/applications/{name}", json={"metadata": current["metadata"], "spec": spec}
    )
    out.print(f"application '{name}' updated")


@app_cmd.command("delete")
def app_delete(
    name: str,
    cascade: bool = typer.Option(True, "--cascade/--no-cascade", help="Delete its resources too."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Delete an application (and, with cascade, everything it deployed)."""
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete application '{name}'?"):
        raise typer.Exit(FAILED)
    api(server, auth_token).request(
        "DELETE", f"/api/v1/applications/{name}", params={"cascade": str(cascade).lower()}
    )
    out.print(f"application '{name}' deleted")


def _print_diff(text: str) -> None:
    for line in text.splitlines():
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "green"
        elif line.startswith("-") and not line.startswith("---"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        out.print(Text(line, style=style))


def _fail_if_not_comparable(app: dict[str, Any]) -> None:
    """Exit 2 with the reason when Git could not be rendered or the spec is invalid.

    The last good manifests are still held, but a diff or listing made from them would
    report success for a commit that cannot be deployed (a CI gate must see the error).
    """
    for cond in _viewable(app)["status"]["conditions"]:
        if isinstance(cond, dict) and cond.get("type") in ("ComparisonError", "InvalidSpecError"):
            fail(f"{cond['type']}: {cond.get('message', '')}")


@app_cmd.command("diff")
def app_diff(
    name: str,
    refresh: bool = typer.Option(False, "--refresh", help="Refresh from Git first."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Show what a sync would change; exit 1 when there are differences, 0 when none."""
    client = api(server, auth_token)
    params = {"refresh": "normal"} if refresh else {}
    _fail_if_not_comparable(client.get(f"/api/v1/applications/{name}", params=params))
    items = client.get(f"/api/v1/applications/{name}/managed-resources")["items"]
    differing = [i for i in items if i.get("diff") or i.get("liveState") is None]
    for item in differing:
        where = f"{item['namespace']}/" if item.get("namespace") else ""
        out.print(
            Text(
                f"===== {item.get('group') or 'core'}/{item['kind']} {where}{item['name']} ======",
                style="bold",
            )
        )
        if item.get("liveState") is None and not item.get("diff"):
            out.print(Text("(missing from the cluster)", style="yellow"))
        _print_diff(item.get("diff") or "")
    raise typer.Exit(FAILED if differing else 0)


def _wave(item: dict[str, Any]) -> int:
    meta = (item.get("targetState") or {}).get("metadata") or {}
    try:
        return int((meta.get("annotations") or {}).get("argocd.argoproj.io/sync-wave", 0))
    except ValueError:
        return 0


def _progress(
    app: dict[str, Any], waves: dict[tuple[str, str, str], int], *, previous: object = None
) -> str:
    """One progress line; ``previous`` is the startedAt of the operation before ours."""
    rows = [r for r in (app.get("status") or {}).get("resources") or [] if not r.get("hook")]
    done = [
        r
        for r in rows
        if r.get("status") == "Synced"
        and (r.get("health") or {}).get("status", "Healthy") == "Healthy"
    ]
    pending = [
        waves.get((r.get("kind", ""), r.get("namespace", ""), r.get("name", "")), 0)
        for r in rows
        if r not in done
    ]
    sync_status, health = _status(app)
    op = (app.get("status") or {}).get("operationState") or {}
    wave = f", wave {min(pending)}" if pending else ""
    phase = op.get("phase", "-")
    if previous is not None and (
        app.get("operation") is not None or op.get("startedAt") == previous
    ):
        phase = "Pending"  # ours has not started: the state shown is the previous operation's
    return (
        f"{sync_status}/{health}: {len(done)}/{len(rows)} resources done{wave}; operation {phase}"
    )


def _follow(
    client: Api,
    name: str,
    *,
    timeout: float,
    done: Any,
    previous: object = None,
) -> dict[str, Any]:
    """Poll until ``done(app)`` says True/False; print progress lines as they change."""
    items = client.get(f"/api/v1/applications/{name}/managed-resources")["items"]
    waves = {(i["kind"], i.get("namespace", ""), i["name"]): _wave(i) for i in items}
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        app = _viewable(client.get(f"/api/v1/applications/{name}"))
        line = _progress(app, waves, previous=previous)
        if line != last:
            out.print(line)
            last = line
        verdict = done(app)
        if verdict is not None:
            return dict(app, _ok=verdict)
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout:.0f}s waiting for '{name}'", FAILED)
        time.sleep(0.5)


@app_cmd.command("sync")
def app_sync(
    name: str,
    prune: bool = typer.Option(False, "--prune", help="Delete resources gone from Git."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Preview, change nothing."),
    revision: str = typer.Option("", "--revision", help="Sync to this revision."),
    resource: list[str] = typer.Option(
        [], "--resource", help="Only GROUP:KIND:[NAMESPACE/]NAME (repeatable)."
    ),
    apply_out_of_sync_only: bool = typer.Option(False, "--apply-out-of-sync-only"),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait."),
    is_async: bool = typer.Option(False, "--async", help="Do not wait for the result."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Sync an application and follow it until it is Synced and Healthy, or fails."""
    resources = []
    for spec in resource:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            fail(f"--resource: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME, not {spec!r}")
        namespace, _, res_name = parts[2].rpartition("/")
        item = {"group": parts[0], "kind": parts[1], "name": res_name}
        if namespace:
            item["namespace"] = namespace
        resources.append(item)
    client = api(server, auth_token)
    before = client.get(f"/api/v1/applications/{name}")
    started_before = ((before.get("status") or {}).get("operationState") or {}).get("startedAt")
    body = {
        "prune": prune,
        "dryRun": dry_run,
        "revision": revision,
        "resources": resources,
        "syncOptions": ["ApplyOutOfSyncOnly=true"] if apply_out_of_sync_only else [],
    }
    client.post(f"/api/v1/applications/{name}/sync", json=body)
    if is_async:
        out.print(f"sync of '{name}' requested")
        return

    def finished(app: dict[str, Any]) -> bool | None:
        op = (app.get("status") or {}).get("operationState") or {}
        if app.get("operation") is not None or op.get("startedAt") == started_before:
            return None
        if op.get("phase") in ("Failed", "Error"):
            return False
        if op.get("phase") != "Succeeded":
            return None
        if dry_run:
            return True
        sync_status, health = _status(app)
        if health != "Healthy":
            return None
        # Resources left for pruning (sync without --prune) keep the app OutOfSync; as in
        # Argo CD that ends the wait, with a note naming them.
        return True if sync_status == "Synced" or _prune_pending(app) else None

    result = _follow(client, name, timeout=timeout, done=finished, previous=started_before or "")
    op = (result.get("status") or {}).get("operationState") or {}
    for r in (op.get("syncResult") or {}).get("resources") or []:
        out.print(f"  {r.get('kind')}/{r.get('name')}: {r.get('status')} {r.get('message', '')}")
    if not result["_ok"]:
        fail(f"sync {op.get('phase')}: {op.get('message', '')}", FAILED)
    for r in _prune_pending(result):
        out.print(f"  {r.get('kind')}/{r.get('name')}: requires pruning (sync with --prune)")
    out.print(f"application '{name}' synced: {op.get('message', '')}")


def _prune_pending(app: dict[str, Any]) -> list[dict[str, Any]]:
    """Resources that are only out of sync because they wait to be pruned, when every other
    resource is synced."""
    rows = [r for r in _viewable(app)["status"]["resources"] if isinstance(r, dict)]
    pending = [r for r in rows if r.get("requiresPruning")]
    others = [r for r in rows if not r.get("requiresPruning") and not r.get("hook")]
    if pending and all(r.get("status") == "Synced" for r in others):
        return pending
    return []


@app_cmd.command("wait")
def app_wait(
    name: str,
    health: bool = typer.Option(False, "--health", help="Wait for Healthy."),
    sync: bool = typer.Option(False, "--sync", help="Wait for Synced."),
    operation: bool = typer.Option(False, "--operation", help="Wait for no running operation."),
    degraded: bool = typer.Option(False, "--degraded", help="Wait for Degraded."),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Wait until an application is Synced and/or Healthy (both when no flag is given)."""
    if not (health or sync or operation or degraded):
        health = sync = operation = True
    client = api(server, auth_token)

    def ready(app: dict[str, Any]) -> bool | None:
        sync_status, health_status = _status(app)
        op = (app.get("status") or {}).get("operationState") or {}
        if operation and (app.get("operation") is not None or op.get("phase") == "Running"):
            return None
        if degraded:
            return True if health_status == "Degraded" else None
        if health and health_status != "Healthy":
            return None
        if sync and sync_status != "Synced":
            return None
        return True

    _follow(client, name, timeout=timeout, done=ready)
    out.print(f"application '{name}' is ready")


@app_cmd.command("history")
def app_history(
    name: str, output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """Show the deploy history."""
    items = api(server, auth_token).get(f"/api/v1/applications/{name}/history")["items"]
    if emit(items, output, names=[str(h.get("id")) for h in items]):
        return
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "DATE", "REVISION"):
        table.add_column(col)
    for h in items:
        table.add_row(str(h.get("id")), str(h.get("deployedAt", "")), str(h.get("revision", "")))
    out.print(table)


@app_cmd.command("rollback")
def app_rollback(
    name: str,
    history_id: int | None = typer.Argument(
        None, help="History ID to roll back to (default: the deploy before the latest)."
    ),
    prune: bool = typer.Option(False, "--prune"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    timeout: float = typer.Option(300, "--timeout", help="Seconds to wait."),
    is_async: bool = typer.Option(False, "--async", help="Do not wait for the result."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Roll back to a previous deploy and follow it (the app must not have automated sync)."""
    client = api(server, auth_token)
    before = client.get(f"/api/v1/applications/{name}")
    if history_id is None:
        entries = (before.get("status") or {}).get("history") or []
        if len(entries) < 2:
            fail(f"application '{name}' has no earlier deploy to roll back to")
        history_id = int(entries[-2]["id"])
    started_before = ((before.get("status") or {}).get("operationState") or {}).get("startedAt")
    client.post(
        f"/api/v1/applications/{name}/rollback",
        json={"id": history_id, "prune": prune, "dryRun": dry_run},
    )
    if is_async:
        out.print(f"rollback of '{name}' to {history_id} requested")
        return

    def finished(app: dict[str, Any]) -> bool | None:
        op = app["status"]["operationState"]
        if app.get("operation") is not None or op.get("startedAt") == started_before:
            return None
        if op.get("phase") in ("Failed", "Error"):
            return False
        return True if op.get("phase") == "Succeeded" else None

    result = _follow(client, name, timeout=timeout, done=finished, previous=started_before or "")
    op = result["status"]["operationState"]
    if not result["_ok"]:
        fail(f"rollback {op.get('phase')}: {op.get('message', '')}", FAILED)
    out.print(f"application '{name}' rolled back to {history_id}: {op.get('message', '')}")


@app_cmd.command("manifests")
def app_manifests(name: str, server: str | None = SERVER, auth_token: str | None = TOKEN) -> None:
    """Print the manifests rendered from Git (Secrets masked)."""
    client = api(server, auth_token)
    _fail_if_not_comparable(client.get(f"/api/v1/applications/{name}"))
    items = client.get(f"/api/v1/applications/{name}/manifests")["manifests"]
    sys.stdout.write(yaml.safe_dump_all(items, sort_keys=False))


@app_cmd.command("resources")
def app_resources(
    name: str, output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """List the application's resources with sync and health status."""
    a = api(server, auth_token).get(f"/api/v1/applications/{name}")
    rows = (a.get("status") or {}).get("resources") or []
    if emit(rows, output, names=[f"{r['kind']}/{r['name']}" for r in rows]):
        return
    _resources_table(rows)


@app_cmd.command("refresh")
def app_refresh(
    name: str,
    hard: bool = typer.Option(False, "--hard", help="Re-resolve and re-render everything."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Compare the application with Git now."""
    api(server, auth_token).post(
        f"/api/v1/applications/{name}/refresh", params={"type": "hard" if hard else "normal"}
    )
    out.print(f"application '{name}' refresh requested")


@app_cmd.command("terminate-op")
def app_terminate(name: str, server: str | None = SERVER, auth_token: str | None = TOKEN) -> None:
    """Terminate the running operation."""
    api(server, auth_token).request("DELETE", f"/api/v1/applications/{name}/operation")
    out.print(f"operation of '{name}' terminated")


# -- repositories, projects, clusters, accounts ------------------------------------------


@repo_cmd.command("add")
def repo_add(
    url: str,
    username: str | None = typer.Option(None, "--username"),
    password: str | None = typer.Option(None, "--password", envvar="SYRUP_REPO_PASSWORD"),
    ssh_private_key_path: Path | None = typer.Option(None, "--ssh-private-key-path"),
    upsert: bool = typer.Option(False, "--upsert"),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Add a Git repository (its connection is tested first)."""
    body: dict[str, Any] = {"repo": url, "username": username, "password": password}
    if ssh_private_key_path is not None:
        body["sshPrivateKey"] = ssh_private_key_path.read_text()
    api(server, auth_token).post(
        "/api/v1/repositories", json=body, params={"upsert": str(upsert).lower()}
    )
    out.print(f"repository '{url}' added")


@repo_cmd.command("list")
def repo_list(
    output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """List repositories."""
    items = api(server, auth_token).get("/api/v1/repositories")["items"]
    if emit(items, output, names=[r["repo"] for r in items]):
        return
    table = Table(box=None, pad_edge=False)
    for col in ("TYPE", "REPO", "USER", "CREDS", "STATUS"):
        table.add_column(col)
    for r in items:
        table.add_row(
            r["type"],
            r["repo"],
            r.get("username", ""),
            "yes" if r["hasCredentials"] else "no",
            r["connectionState"]["status"],
        )
    out.print(table)


@repo_cmd.command("rm")
def repo_rm(url: str, server: str | None = SERVER, auth_token: str | None = TOKEN) -> None:
    """Remove a repository."""
    api(server, auth_token).request("DELETE", "/api/v1/repositories", params={"repo": url})
    out.print(f"repository '{url}' removed")


@proj_cmd.command("create")
def proj_create(
    name: str,
    description: str = typer.Option("", "--description", "-d"),
    src: list[str] = typer.Option([], "--src", "-s", help="Permitted source repo (glob)."),
    dest: list[str] = typer.Option([], "--dest", help="Permitted SERVER,NAMESPACE (globs)."),
    upsert: bool = typer.Option(False, "--upsert"),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Create a project."""
    destinations = []
    for d in dest:
        target, sep, namespace = d.partition(",")
        if not sep:
            fail(f"--dest: expected SERVER,NAMESPACE, not {d!r}")
        destinations.append({"server": target, "namespace": namespace})
    body = {
        "metadata": {"name": name},
        "spec": {"description": description, "sourceRepos": src, "destinations": destinations},
    }
    api(server, auth_token).post(
        "/api/v1/projects", json=body, params={"upsert": str(upsert).lower()}
    )
    out.print(f"project '{name}' created")


@proj_cmd.command("list")
def proj_list(
    output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """List projects."""
    items = api(server, auth_token).get("/api/v1/projects")["items"]
    if emit(items, output, names=[p["metadata"]["name"] for p in items]):
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "DESCRIPTION", "DESTINATIONS", "SOURCES"):
        table.add_column(col)
    for p in items:
        spec = p.get("spec") or {}
        dests = ", ".join(
            f"{d.get('server') or d.get('name')},{d.get('namespace')}"
            for d in spec.get("destinations") or []
        )
        table.add_row(
            p["metadata"]["name"],
            spec.get("description", ""),
            dests,
            ", ".join(spec.get("sourceRepos") or []),
        )
    out.print(table)


@proj_cmd.command("get")
def proj_get(
    name: str, output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """Show a project."""
    p = api(server, auth_token).get(f"/api/v1/projects/{name}")
    if emit(p, output, names=[name]):
        return
    spec = p.get("spec") or {}
    out.print(f"{'Name:':<15}{name}")
    out.print(f"{'Description:':<15}{spec.get('description', '')}")
    for d in spec.get("destinations") or []:
        out.print(f"{'Destination:':<15}{d.get('server') or d.get('name')},{d.get('namespace')}")
    for s in spec.get("sourceRepos") or []:
        out.print(f"{'Source repo:':<15}{s}")


@clusters_cmd.command("add")
def cluster_add(
    server_url: str | None = typer.Argument(
        None, help="The cluster's API URL (not needed with --kubeconfig)."
    ),
    name: str | None = typer.Option(None, "--name", help="Default: the kubeconfig context."),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Take the server and credentials from this kubeconfig."
    ),
    context: str | None = typer.Option(None, "--context", help="The kubeconfig context."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Register a destination cluster (stored as an Argo CD cluster Secret)."""
    body: dict[str, Any] = {"server": server_url, "name": name}
    if kubeconfig is not None:
        from syrup import errors
        from syrup.gitops import credentials

        if not context:
            fail("--context is required with --kubeconfig")
        try:
            secret = credentials.cluster_secret(kubeconfig, context=context)
        except errors.SyrupError as exc:
            fail(str(exc))
        data = secret["stringData"]
        body = {
            "server": server_url or data["server"],
            "name": name or context,
            "config": json.loads(data["config"]),
        }
    elif not server_url or not name:
        fail("give SERVER_URL and --name, or --kubeconfig and --context")
    api(server, auth_token).post("/api/v1/clusters", json=body)
    out.print(f"cluster '{body['server']}' added")


@clusters_cmd.command("list")
def cluster_list(
    output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """List destination clusters."""
    items = api(server, auth_token).get("/api/v1/clusters")["items"]
    if emit(items, output, names=[c["server"] for c in items]):
        return
    table = Table(box=None, pad_edge=False)
    for col in ("SERVER", "NAME", "STATUS"):
        table.add_column(col)
    for c in items:
        table.add_row(c["server"], c["name"], c["connectionState"]["status"])
    out.print(table)


@clusters_cmd.command("rm")
def cluster_rm(
    server_url: str, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """Remove a destination cluster."""
    api(server, auth_token).request("DELETE", "/api/v1/clusters", params={"server": server_url})
    out.print(f"cluster '{server_url}' removed")


@account_cmd.command("generate-token")
def account_generate_token(
    account: str | None = typer.Option(None, "--account", "-a", help="Default: yourself."),
    expires_in: str | None = typer.Option(None, "--expires-in", "-e", help="e.g. 30m, 12h, 7d."),
    token_id: str = typer.Option("", "--id", help="A description for the token."),
    server: str | None = SERVER,
    auth_token: str | None = TOKEN,
) -> None:
    """Generate an API token and print it (only once)."""
    client = api(server, auth_token)
    name = account or client.get("/api/v1/session/userinfo")["username"]
    body: dict[str, Any] = {"description": token_id}
    if expires_in:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            body["expiresIn"] = float(expires_in[:-1]) * units[expires_in[-1]]
        except (KeyError, ValueError):
            fail(f"--expires-in: expected a number and s/m/h/d, not {expires_in!r}")
    sys.stdout.write(client.post(f"/api/v1/account/{name}/token", json=body)["token"] + "\n")


@account_cmd.command("list")
def account_list(
    output: Output = OUTPUT, server: str | None = SERVER, auth_token: str | None = TOKEN
) -> None:
    """List accounts."""
    items = api(server, auth_token).get("/api/v1/account")["items"]
    if emit(items, output, names=[a["name"] for a in items]):
        return
    table = Table(box=None, pad_edge=False)
    for col in ("NAME", "ENABLED", "TOKENS"):
        table.add_column(col)
    for a in items:
        table.add_row(a["name"], str(a["enabled"]).lower(), str(len(a["tokens"])))
    out.print(table)
