"""Repository credentials reach git: a repository behind HTTP basic auth on loopback.

The server is ``git http-backend`` (git's own smart-HTTP CGI program) behind a small
``http.server`` that demands Basic credentials, the way a private Git host answers.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.gitops import harness
from tests.gitops.conftest import EXAMPLES, Repo

USER, PASSWORD, WRONG = "deploy-bot", "s3cret-Passw0rd", "not-the-Passw0rd-42"


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": USER,
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
            }
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            proc = subprocess.run(
                ["git", "http-backend"],
                check=False,
                input=body,
                env=env,
                capture_output=True,
                timeout=60,
            )
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def private_url(make_repo: Callable[..., Repo]) -> Iterator[str]:
    """The guestbook example in a repository that answers only with the right password."""
    repo = make_repo(EXAMPLES)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(repo.bare.parent))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{repo.bare.name}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_private_repository_fails_clearly_without_its_secret_and_syncs_with_it(
    cluster: Cluster,
    ns: str,
    private_url: str,
    private_tmp: Path,
    private_running: harness.Running,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = f"{ns}-private"
    with cluster.client() as client:
        app = harness.application(
            name, ns, repo=private_url, path="guestbook", dest=name, automated={}
        )
        harness.apply_app(client, app)

        message = harness.wait_condition(client, ns, name, "ComparisonError")["message"]
        assert private_url in message and "Authentication failed" in message

        # A credential template for the host and a repository Secret for this URL: the exact
        # repository wins over the prefix, whose password is wrong.
        for kind, secret_name, url, password in (
            ("repo-creds", "host", private_url.rsplit("/", 1)[0], WRONG),
            ("repository", "private", private_url, PASSWORD),
        ):
            secret = harness.repo_secret(
                ns, secret_name, kind, url=url, username=USER, password=password
            )
            harness.apply(client, secret, f"/api/v1/namespaces/{ns}/secrets")
        private_running.run(lambda: private_running.controller.refresh(ns, name))
        app = harness.wait_synced_healthy(client, ns, name)

    assert not app["status"].get("conditions")
    assert len(app["status"]["sync"]["revision"]) == 40
    cluster.kubectl_json("get", "deployment", "guestbook-ui", "-n", name)
    out, err = capfd.readouterr()
    for text in (str(app), caplog.text, out, err):
        assert PASSWORD not in text and WRONG not in text
    assert list(private_tmp.iterdir()) == []
