"""Repository and cluster credentials: Secrets read, handed to real git and ssh, never shown."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from syrup.gitops import credentials
from syrup.kube import client as kclient

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotreallyakey\n-----END OPENSSH PRIVATE KEY-----\n"


def secret(kind: str, name: str = "s", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "labels": {credentials.SECRET_TYPE_LABEL: kind},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def git_credential_fill(env: dict[str, str], url: str) -> dict[str, str]:
    """Ask real git which credentials it would send for ``url``."""
    parsed = url.split("://", 1)
    proc = subprocess.run(
        ["git", "credential", "fill"],
        check=False,
        input=f"protocol={parsed[0]}\nhost={parsed[1].split('/')[0]}\n\n",
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", **env},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def test_https_credentials_reach_git_through_a_private_file_removed_afterwards() -> None:
    creds = credentials.repo_credentials(
        secret(
            "repository",
            url="https://git.example.com/acme/apps.git",
            username="bot",
            password="p@ss:w/rd",
        )
    )
    with credentials.git_env(creds, url=creds.url) as env:
        assert env["GIT_TERMINAL_PROMPT"] == "0"
        store = Path(env["GIT_CONFIG_VALUE_1"].split("--file=", 1)[1])
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
        answer = git_credential_fill(env, "https://git.example.com/acme/apps.git")
        assert (answer["username"], answer["password"]) == ("bot", "p@ss:w/rd")
        assert "p@ss" not in json.dumps(env)  # only a path, never the secret itself
    assert not store.exists() and not store.parent.exists()


def test_a_token_alone_is_sent_as_the_password() -> None:
    creds = credentials.repo_credentials(secret("repository", url="https://h/r", password="tok"))
    with credentials.git_env(creds, url=creds.url) as env:
        answer = git_credential_fill(env, "https://h/r")
    assert answer["password"] == "tok" and answer["username"]


def test_ssh_credentials_become_an_ssh_command_with_private_key_and_known_hosts() -> None:
    creds = credentials.repo_credentials(
        secret("repository", url="git@github.com:acme/apps.git", sshPrivateKey=KEY)
    )
    hosts = (
        "github.com ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    with credentials.git_env(creds, url=creds.url, known_hosts=hosts) as env:
        command = env["GIT_SSH_COMMAND"]
        # Real ssh reads the options back: the key and host checking are as configured.
        config = subprocess.run(
            [*command.split(), "-G", "github.com"], capture_output=True, text=True, check=True
        ).stdout
        settings = dict(line.split(" ", 1) for line in config.splitlines() if " " in line)
        key = Path(command.split("-i ", 1)[1].split(" ", 1)[0])
        known = Path(settings["userknownhostsfile"].split()[0])
        assert key.read_text() == KEY and known.read_text() == hosts
        assert {stat.S_IMODE(p.stat().st_mode) for p in (key, known)} == {0o600}
        assert settings["stricthostkeychecking"] == "true"
        assert settings["identitiesonly"] == "yes"
        assert KEY not in command
    assert not key.exists() and not known.exists()


def test_an_insecure_ssh_repository_skips_host_key_checks() -> None:
    creds = credentials.repo_credentials(
        secret("repository", url="ssh://git@h/r", sshPrivateKey=KEY, insecure="true")
    )
    with credentials.git_env(creds, url=creds.url) as env:
        assert "StrictHostKeyChecking=no" in env["GIT_SSH_COMMAND"]


def test_no_credentials_means_only_prompts_are_disabled() -> None:
    with credentials.git_env(None, url="https://h/r") as env:
        assert env == {"GIT_TERMINAL_PROMPT": "0"}


@pytest.mark.parametrize(
    ("url", "chosen"),
    [
        ("https://github.com/acme/apps", "exact"),
        ("https://github.com/acme/apps.git", "exact"),
        ("https://github.com/acme/other", "acme"),
        ("https://github.com/zed/x", "github"),
        ("https://gitlab.com/acme/x", None),
    ],
)
def test_a_repository_secret_wins_else_the_longest_repo_creds_prefix(
    url: str, chosen: str | None
) -> None:
    candidates = [
        credentials.repo_credentials(
            secret("repo-creds", url="https://github.com/", username="github", password="x")
        ),
        credentials.repo_credentials(
            secret("repo-creds", url="https://github.com/acme", username="acme", password="x")
        ),
        credentials.repo_credentials(
            secret("repository", url="https://github.com/acme/apps", username="exact", password="x")
        ),
    ]
    found = credentials.match(url, candidates)
    assert (found.username if found else None) == chosen


@pytest.mark.parametrize(
    ("sec", "fragment"),
    [
        (secret("repository", username="u"), "Secret argocd/s: data.url: url is required"),
        (secret("cluster", url="https://x"), "must be repository or repo-creds"),
        (
            secret("repository", url="https://x", sshPrivateKey="hunter2"),
            "data.sshPrivateKey: is not a PEM",
        ),
        ({**secret("repository"), "data": {"url": "!!!"}}, "data.url: is not base64"),
    ],
)
def test_bad_repository_secrets_are_errors_naming_the_secret_and_field(
    sec: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(credentials.InvalidCredentials) as info:
        credentials.repo_credentials(sec)
    assert fragment in str(info.value)
    assert "hunter2" not in str(info.value)


def test_secrets_never_appear_in_a_repr() -> None:
    creds = credentials.repo_credentials(
        secret("repository", url="https://h/r", username="u", password="hunter2")
    )
    target = credentials.cluster(
        secret(
            "cluster",
            server="https://k",
            config=json.dumps(
                {"bearerToken": "hunter2", "tlsClientConfig": {"keyData": "hunter2"}}
            ),
        )
    )
    assert "hunter2" not in repr(creds) and "hunter2" not in repr(target)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "x"}, "data.server: server is required"),
        ({"server": "https://k", "config": "{"}, "data.config: is not JSON"),
        ({"server": "https://k", "config": "[]"}, "data.config: expected a JSON object"),
        (
            {"server": "https://k", "config": '{"tlsClientConfig": 1}'},
            "tlsClientConfig: expected a map",
        ),
    ],
)
def test_bad_cluster_secrets_are_errors_naming_the_field(
    data: dict[str, str], fragment: str
) -> None:
    with pytest.raises(credentials.InvalidCredentials, match=fragment):
        credentials.cluster(secret("cluster", **data))


def test_a_cluster_secret_from_a_kubeconfig_context_reaches_that_cluster(
    cluster: Any, tmp_path: Path
) -> None:
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    context = doc["current-context"]
    made = credentials.cluster_secret(cluster.kubeconfig, context=context, namespace="argocd")
    assert made["metadata"]["labels"] == {credentials.SECRET_TYPE_LABEL: "cluster"}
    assert made["stringData"]["server"] == cluster.url

    # Stored through the real API server, read back, and used to talk to the cluster.
    made["metadata"]["namespace"] = cluster.namespace()
    proc = cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(made))
    target = credentials.cluster(json.loads(proc.stdout))
    assert target.name == context and target.server == cluster.url

    with credentials.kubeconfig_file(target) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = kclient.Client.from_kubeconfig(path)

        async def version() -> str:
            try:
                return (await client.discover()).server_version
            finally:
                await client.close()

        assert asyncio.run(version()).startswith("v1.")
    assert not path.exists()


def test_cluster_add_names_a_missing_context(cluster: Any) -> None:
    with pytest.raises(credentials.InvalidCredentials, match="no context named 'nope'"):
        credentials.cluster_secret(cluster.kubeconfig, context="nope")


def test_cluster_add_stores_a_context_as_a_cluster_secret(cluster: Any) -> None:
    namespace = cluster.namespace()
    context = yaml.safe_load(cluster.kubeconfig.read_text())["current-context"]
    client = kclient.Client.from_kubeconfig(cluster.kubeconfig)

    async def add() -> str:
        try:
            return await credentials.add_cluster(
                client, kubeconfig=cluster.kubeconfig, context=context, namespace=namespace
            )
        finally:
            await client.close()

    name = asyncio.run(add())
    stored = cluster.kubectl_json("get", "secret", name, "-n", namespace)
    assert stored["metadata"]["labels"][credentials.SECRET_TYPE_LABEL] == "cluster"
    target = credentials.cluster(stored)
    assert target.server == cluster.url and target.name == context
    assert target.bearer_token or target.tls.cert_data
