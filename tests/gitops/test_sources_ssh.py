"""SSH repository credentials reach git: a repository behind a real ``sshd`` on loopback.

The server is OpenSSH's ``sshd`` with its own host key, accepting one client key, serving the
test's bare repository to ``git``'s ssh transport. The controller gets the client key from a
repository Secret and the host key from Argo CD's ``argocd-ssh-known-hosts-cm``: without the
known host the fetch fails on host key verification; with it the app syncs. The private key
appears in no status, log or leftover file.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from syrup.gitops.controller import KNOWN_HOSTS_CM
from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import EXAMPLES, Repo

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    url: str
    client_key: str
    known_hosts: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True
    )


@pytest.fixture
def ssh_server(make_repo: Callable[..., Repo], tmp_path: Path) -> Iterator[SshServer]:
    """The example apps in a bare repository that ``sshd`` serves to one client key."""
    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} is missing: scripts/bootstrap --test installs openssh-server")
    repo = make_repo(EXAMPLES)
    home = tmp_path / "sshd"
    home.mkdir()
    _keygen(home / "host_key")
    _keygen(home / "client_key")
    shutil.copy(home / "client_key.pub", home / "authorized_keys")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    port = _free_port()
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {home / 'host_key'}",
                f"PidFile {home / 'sshd.pid'}",
                f"AuthorizedKeysFile {home / 'authorized_keys'}",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "",
            ]
        )
    )
    log = (home / "sshd.log").open("w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"sshd did not start: {(home / 'sshd.log').read_text()}")
                time.sleep(0.1)
        host_key = (home / "host_key.pub").read_text().split()
        yield SshServer(
            url=f"ssh://{getpass.getuser()}@127.0.0.1:{port}{repo.bare}",
            client_key=(home / "client_key").read_text(),
            known_hosts=f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_an_ssh_repository_needs_its_known_host_then_syncs_with_the_secrets_key(
    cluster: Cluster,
    ns: str,
    ssh_server: SshServer,
    private_tmp: Path,
    private_running: harness.Running,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = f"{ns}-ssh"
    with cluster.client() as client:
        secret = harness.repo_secret(
            ns, "ssh-repo", "repository", url=ssh_server.url, sshPrivateKey=ssh_server.client_key
        )
        harness.apply(client, secret, f"/api/v1/namespaces/{ns}/secrets")
        app = harness.application(
            name, ns, repo=ssh_server.url, path="guestbook", dest=name, automated={}
        )
        harness.apply_app(client, app)

        # The key is right but the host is unknown: strict host key checking refuses it.
        message = harness.wait_condition(client, ns, name, "ComparisonError")["message"]
        assert "Host key verification failed" in message, message

        known_hosts = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": KNOWN_HOSTS_CM, "namespace": ns},
            "data": {"ssh_known_hosts": ssh_server.known_hosts},
        }
        harness.apply(client, known_hosts, f"/api/v1/namespaces/{ns}/configmaps")
        harness.wait_for(
            "the known hosts in the controller's cache",
            lambda: private_running.controller._known_hosts() == ssh_server.known_hosts,
        )
        private_running.run(lambda: private_running.controller.refresh(ns, name))
        app = harness.wait_synced_healthy(client, ns, name)

    assert not app["status"].get("conditions")
    assert len(app["status"]["sync"]["revision"]) == 40
    cluster.kubectl_json("get", "deployment", "guestbook-ui", "-n", name)
    key_body = ssh_server.client_key.splitlines()[1]
    out, err = capfd.readouterr()
    for text in (str(app), caplog.text, out, err):
        assert key_body not in text
    assert list(private_tmp.iterdir()) == []
