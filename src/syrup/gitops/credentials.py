"""Repository and cluster credentials from Argo CD's labelled Secrets.

Argo CD keeps credentials in Secrets of its namespace (REFERENCE.md, "Declarative setup"),
told apart by the label ``argocd.argoproj.io/secret-type``:

* ``repository``: one repository (``url``, ``username``/``password`` or a token as the
  password, or ``sshPrivateKey``; ``insecure`` skips host key checks);
* ``repo-creds``: a credential template for every repository whose URL starts with ``url``
  (the longest matching prefix wins; a ``repository`` Secret for the exact URL wins over all);
* either with ``type: helm`` holds a Helm chart repository's username and password
  (``enableOCI: "true"`` for an OCI registry named without a scheme, and
  ``insecureOCIForceHttp: "true"`` for one that speaks plain HTTP);
* ``cluster``: a destination cluster (``name``, ``server``, and ``config``, JSON holding
  ``bearerToken``, ``username``/``password`` and ``tlsClientConfig`` with ``caData``,
  ``certData``, ``keyData``, ``insecure``, ``serverName``).

Secrets stay out of logs, status and reprs: the dataclasses hide their secret fields from
``repr``. Git gets them through :func:`git_env`, which writes them to files readable only by
the owner (0600, in a 0700 directory) for the length of one git call and removes them after,
and points git at them through its environment: ``credential.helper`` ``store`` for HTTPS, and
``GIT_SSH_COMMAND`` with the key and known-hosts files for SSH. Nothing is put on a command
line, where ``ps`` would show it.

:func:`cluster_secret` is the logic behind ``syrup cluster add --kubeconfig PATH --context
NAME``: it turns one kubeconfig context into a ``cluster`` Secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from syrup import errors
from syrup.kube import client as kclient

SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"


class SecretType(StrEnum):
    REPOSITORY = "repository"
    REPO_CREDS = "repo-creds"
    CLUSTER = "cluster"


class InvalidCredentials(errors.InvalidInput):
    """A credentials Secret (or kubeconfig) that cannot be used; the message names it."""


def _where(secret: Mapping[str, Any]) -> str:
    meta = secret.get("metadata") or {}
    return f"Secret {meta.get('namespace', '')}/{meta.get('name', '?')}".replace(" /", " ")


def secret_type(secret: Mapping[str, Any]) -> SecretType | None:
    labels = (secret.get("metadata") or {}).get("labels") or {}
    try:
        return SecretType(str(labels.get(SECRET_TYPE_LABEL, "")))
    except ValueError:
        return None


def _fields(secret: Mapping[str, Any]) -> dict[str, str]:
    """``data`` (base64) and ``stringData`` merged, as the API server would store them."""
    where = _where(secret)
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise InvalidCredentials("is not base64 text", where=f"{where}: data.{key}") from None
    for key, value in (secret.get("stringData") or {}).items():
        out[str(key)] = str(value)
    return out


# -- repositories ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoCredentials:
    url: str
    template: bool
    username: str = ""
    password: str = field(default="", repr=False)
    ssh_private_key: str = field(default="", repr=False)
    insecure: bool = False
    kind: str = "git"
    #: ``enableOCI``: a ``helm`` repository that is an OCI registry (its url has no scheme).
    oci: bool = False
    #: ``insecureOCIForceHttp``: talk to the OCI registry over plain HTTP.
    force_http: bool = False

    @property
    def ssh(self) -> bool:
        return bool(self.ssh_private_key)

    @property
    def helm(self) -> bool:
        return self.kind == "helm" or self.oci


def repo_credentials(secret: Mapping[str, Any]) -> RepoCredentials:
    """Read a ``repository`` or ``repo-creds`` Secret."""
    where = _where(secret)
    kind = secret_type(secret)
    if kind not in {SecretType.REPOSITORY, SecretType.REPO_CREDS}:
        raise InvalidCredentials(
            f"label {SECRET_TYPE_LABEL} must be repository or repo-creds", where=where
        )
    data = _fields(secret)
    url = data.get("url", "").strip()
    if not url:
        raise InvalidCredentials("url is required", where=f"{where}: data.url")
    creds = RepoCredentials(
        url=url,
        template=kind is SecretType.REPO_CREDS,
        username=data.get("username", ""),
        password=data.get("password", ""),
        ssh_private_key=data.get("sshPrivateKey", ""),
        insecure=data.get("insecure", "").lower() == "true",
        kind=data.get("type", "git") or "git",
        oci=data.get("enableOCI", "").lower() == "true",
        force_http=data.get("insecureOCIForceHttp", "").lower() == "true",
    )
    if creds.password and not creds.username and not creds.ssh:
        # A token alone: Git hosts accept any user name beside a token.
        creds = RepoCredentials(**{**creds.__dict__, "username": "git"})
    if creds.ssh and not creds.ssh_private_key.strip().startswith("-----BEGIN"):
        raise InvalidCredentials("is not a PEM private key", where=f"{where}: data.sshPrivateKey")
    return creds


def _norm(url: str) -> str:
    url = url.strip().rstrip("/")
    return (url[:-4] if url.endswith(".git") else url).lower()


def match(url: str, candidates: Iterable[RepoCredentials]) -> RepoCredentials | None:
    """The credentials for ``url``: its own ``repository`` Secret, else the longest prefix."""
    items = list(candidates)
    for creds in items:
        if not creds.template and _norm(creds.url) == _norm(url):
            return creds
    templates = [c for c in items if c.template and url.startswith(c.url)]
    return max(templates, key=lambda c: len(c.url), default=None)


def match_chart(url: str, candidates: Iterable[RepoCredentials]) -> RepoCredentials | None:
    """The ``helm`` credentials for a chart repository (``oci://`` or not, as Argo CD keeps
    OCI registries without the scheme)."""
    bare = url.removeprefix("oci://")
    helm_creds = [
        RepoCredentials(**{**c.__dict__, "url": c.url.removeprefix("oci://")})
        for c in candidates
        if c.helm
    ]
    return match(bare, helm_creds)


def git_candidates(candidates: Iterable[RepoCredentials]) -> list[RepoCredentials]:
    """The Secrets that may hold git credentials (not those of Helm repositories)."""
    return [c for c in candidates if not c.helm]


def _private_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@contextlib.contextmanager
def git_env(
    creds: RepoCredentials | None, *, url: str, known_hosts: str = ""
) -> Iterator[dict[str, str]]:
    """Environment variables that make one git call authenticate with ``creds``.

    The files behind them exist only inside the ``with`` block.
    """
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if creds is None:
        yield env
        return
    directory = Path(tempfile.mkdtemp(prefix="syrup-git-"))
    try:
        os.chmod(directory, 0o700)
        if creds.ssh:
            env["GIT_SSH_COMMAND"] = _ssh_command(directory, creds, known_hosts)
        elif creds.password:
            env.update(_https_helper(directory, creds, url))
        yield env
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _ssh_command(directory: Path, creds: RepoCredentials, known_hosts: str) -> str:
    key_text = (
        creds.ssh_private_key
        if creds.ssh_private_key.endswith("\n")
        else creds.ssh_private_key + "\n"
    )
    key = _private_file(directory, "key", key_text)
    parts = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    if creds.insecure:
        parts += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    else:
        hosts = _private_file(directory, "known_hosts", known_hosts)
        parts += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={hosts}"]
    return " ".join(shlex.quote(p) for p in parts)


def _https_helper(directory: Path, creds: RepoCredentials, url: str) -> dict[str, str]:
    parsed = urllib.parse.urlsplit(url)
    user = urllib.parse.quote(creds.username, safe="")
    password = urllib.parse.quote(creds.password, safe="")
    netloc = f"{user}:{password}@{parsed.hostname or ''}"
    if parsed.port:
        netloc += f":{parsed.port}"
    store = _private_file(directory, "credentials", f"{parsed.scheme}://{netloc}\n")
    # The empty helper first clears helpers from the user's config, so ours is the only one.
    env = {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": "credential.helper",
        "GIT_CONFIG_VALUE_1": f"store --file={shlex.quote(str(store))}",
    }
    if creds.insecure:
        env["GIT_SSL_NO_VERIFY"] = "true"
    return env


# -- clusters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    insecure: bool = False
    server_name: str = ""
    ca_data: str = ""  # base64 PEM, as in a kubeconfig
    cert_data: str = ""
    key_data: str = field(default="", repr=False)


@dataclass(frozen=True)
class Cluster:
    name: str
    server: str
    bearer_token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    tls: TLSConfig = TLSConfig()
    namespaces: tuple[str, ...] = ()

    def kubeconfig(self) -> dict[str, Any]:
        """A one-context kubeconfig for this cluster (what the kube client loads)."""
        cluster: dict[str, Any] = {"server": self.server}
        if self.tls.ca_data:
            cluster["certificate-authority-data"] = self.tls.ca_data
        if self.tls.insecure:
            cluster["insecure-skip-tls-verify"] = True
        if self.tls.server_name:
            cluster["tls-server-name"] = self.tls.server_name
        user: dict[str, Any] = {}
        if self.bearer_token:
            user["token"] = self.bearer_token
        if self.username:
            user["username"], user["password"] = self.username, self.password
        if self.tls.cert_data:
            user["client-certificate-data"] = self.tls.cert_data
            user["client-key-data"] = self.tls.key_data
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": self.name, "cluster": cluster}],
            "users": [{"name": self.name, "user": user}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": self.name}}],
            "current-context": self.name,
        }


def cluster(secret: Mapping[str, Any]) -> Cluster:
    """Read a ``cluster`` Secret."""
    where = _where(secret)
    if secret_type(secret) is not SecretType.CLUSTER:
        raise InvalidCredentials(f"label {SECRET_TYPE_LABEL} must be cluster", where=where)
    data = _fields(secret)
    server = data.get("server", "").strip()
    if not server:
        raise InvalidCredentials("server is required", where=f"{where}: data.server")
    try:
        config = json.loads(data.get("config") or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidCredentials(f"is not JSON: {exc.msg}", where=f"{where}: data.config") from None
    if not isinstance(config, Mapping):
        raise InvalidCredentials("expected a JSON object", where=f"{where}: data.config")
    tls = config.get("tlsClientConfig") or {}
    if not isinstance(tls, Mapping):
        raise InvalidCredentials("expected a map", where=f"{where}: data.config.tlsClientConfig")
    namespaces = tuple(n.strip() for n in data.get("namespaces", "").split(",") if n.strip())
    return Cluster(
        name=data.get("name", "") or server,
        server=server,
        bearer_token=str(config.get("bearerToken") or ""),
        username=str(config.get("username") or ""),
        password=str(config.get("password") or ""),
        tls=TLSConfig(
            insecure=bool(tls.get("insecure")),
            server_name=str(tls.get("serverName") or ""),
            ca_data=str(tls.get("caData") or ""),
            cert_data=str(tls.get("certData") or ""),
            key_data=str(tls.get("keyData") or ""),
        ),
        namespaces=namespaces,
    )


def cluster_identity(secret: Mapping[str, Any]) -> tuple[str, str]:
    """A ``cluster`` Secret's ``(server, name)``, read leniently.

    Apps find their cluster by these two fields even when the rest of the Secret is broken,
    so the condition they get can name the Secret and the field at fault.
    """
    out = []
    for key in ("server", "name"):
        value = (secret.get("stringData") or {}).get(key)
        if value is None:
            raw = (secret.get("data") or {}).get(key)
            try:
                value = base64.b64decode(str(raw or ""), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                value = ""
        out.append(str(value).strip())
    server, name = out
    return server, name or server


@contextlib.contextmanager
def kubeconfig_file(target: Cluster) -> Iterator[Path]:
    """The cluster's kubeconfig in a 0600 file that is removed after the ``with`` block."""
    directory = Path(tempfile.mkdtemp(prefix="syrup-kube-"))
    try:
        os.chmod(directory, 0o700)
        yield _private_file(directory, "kubeconfig", yaml.safe_dump(target.kubeconfig()))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _file_or_data(entry: Mapping[str, Any], key: str, base: Path, where: str) -> str:
    """A kubeconfig's ``<key>-data`` value, or its ``<key>`` file read and base64-encoded."""
    if entry.get(f"{key}-data"):
        return str(entry[f"{key}-data"])
    if entry.get(key):
        path = base / str(entry[key])
        try:
            return base64.b64encode(path.read_bytes()).decode()
        except OSError as exc:
            raise InvalidCredentials(f"cannot read {path}: {exc.strerror}", where=where) from None
    return ""


def cluster_secret(
    kubeconfig: Path, *, context: str, namespace: str = "argocd", name: str = ""
) -> dict[str, Any]:
    """A ``cluster`` Secret made from one kubeconfig context (``syrup cluster add``)."""
    where = f"{kubeconfig}"
    try:
        doc = yaml.safe_load(kubeconfig.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise errors.ConfigError(f"{where}: cannot read kubeconfig: {exc}") from exc

    def named(section: str, key: str) -> Mapping[str, Any]:
        for item in doc.get(section) or []:
            if isinstance(item, Mapping) and item.get("name") == key:
                return item.get(section[:-1]) or {}
        raise InvalidCredentials(f"no {section[:-1]} named {key!r}", where=f"{where}: {section}")

    ctx = named("contexts", context)
    cl = named("clusters", str(ctx.get("cluster", "")))
    user = named("users", str(ctx.get("user", "")))
    if "exec" in user or "auth-provider" in user:
        raise InvalidCredentials(
            "exec and auth-provider users cannot be stored in a cluster Secret; use a token "
            "or a client certificate",
            where=f"{where}: users[{ctx.get('user')}]",
        )
    base = kubeconfig.parent
    tls: dict[str, Any] = {}
    if cl.get("insecure-skip-tls-verify"):
        tls["insecure"] = True
    if cl.get("tls-server-name"):
        tls["serverName"] = cl["tls-server-name"]
    for src, dst, entry in (
        ("certificate-authority", "caData", cl),
        ("client-certificate", "certData", user),
        ("client-key", "keyData", user),
    ):
        value = _file_or_data(entry, src, base, f"{where}: {src}")
        if value:
            tls[dst] = value
    config: dict[str, Any] = {"tlsClientConfig": tls}
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        token = (base / str(user["tokenFile"])).read_text().strip()
    if token:
        config["bearerToken"] = token
    if user.get("username"):
        config["username"], config["password"] = user["username"], user.get("password", "")
    server = str(cl.get("server", ""))
    secret_name = name or f"cluster-{context}".lower().replace("_", "-")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": namespace,
            "labels": {SECRET_TYPE_LABEL: SecretType.CLUSTER.value},
        },
        "stringData": {"name": context, "server": server, "config": json.dumps(config)},
    }


async def add_cluster(
    client: kclient.Client,
    *,
    kubeconfig: Path,
    context: str,
    namespace: str = "argocd",
    name: str = "",
) -> str:
    """``syrup cluster add``: store one kubeconfig context as a ``cluster`` Secret.

    Returns the Secret's name. The Secret is server-side applied, so adding the same context
    again updates it in place.
    """
    secret = cluster_secret(kubeconfig, context=context, namespace=namespace, name=name)
    discovery = await client.discover()
    res = discovery.find("v1", "Secret")
    if res is None:
        raise errors.Unavailable("the cluster does not serve Secrets")
    await client.apply(res, secret, field_manager="syrup")
    return str(secret["metadata"]["name"])
