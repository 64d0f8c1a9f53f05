"""Crash safety: a process killed between accepting an event and pushing its commit loses
nothing, and the commit is made exactly once when it runs again."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from syrup.updater import store

from .conftest import git, log_messages, make_remote, show

# The image commands in their own process, without the start-up cost of every other
# component's CLI (test_corpus runs one case through the `syrup` entry point itself).
SYRUP_IMAGE = [sys.executable, "-m", "syrup.cli.image"]
DEPLOY = "spec:\n  containers:\n  - image: registry.example.com/team/api:{tag}\n"
EVENT = {"image": "registry.example.com/team/api", "tag": "2", "id": "push-2"}


def _block_first_push(remote: Path, hook: str, tmp_path: Path) -> Path:
    """Install a hook that, the first time only, signals and then hangs, so the test can kill
    the updater while its push is in flight."""
    marker = tmp_path / f"{hook}-reached"
    script = remote / "hooks" / hook
    script.write_text(
        f"#!/bin/sh\ncat >/dev/null\nif [ ! -e {marker} ]; then touch {marker}; sleep 60; fi\n"
    )
    script.chmod(0o755)
    return marker


def _wait_for(path: Path, process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _kill(process: subprocess.Popen[bytes]) -> None:
    # The whole group: the updater, its git push and the hook the remote is running.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _events(data: Path) -> list[dict[str, object]]:
    # Read the queue the way `syrup image events` does, without paying for a process.
    queue = store.Store(data / "updater" / "events.sqlite3")
    try:
        return [
            {"id": row.id, "state": row.state.value, "shas": list(row.shas)}
            for row in queue.select()
        ]
    finally:
        queue.close()


@pytest.mark.parametrize(
    ("hook", "pushed_before_crash"),
    [("pre-receive", False), ("post-receive", True)],
)
def test_a_killed_update_is_committed_exactly_once_when_run_again(
    tmp_path: Path, hook: str, pushed_before_crash: bool
) -> None:
    remote = make_remote(tmp_path, {"deploy.yaml": DEPLOY.format(tag="1")})
    marker = _block_first_push(remote, hook, tmp_path)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(EVENT))
    data = tmp_path / "data"
    command = [
        *SYRUP_IMAGE,
        "update",
        "--repo",
        str(remote),
        "--event",
        str(event_file),
        "--push",
        "--data-dir",
        str(data),
    ]

    first = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE)
    _wait_for(marker, first)
    _kill(first)
    # The event was accepted (stored) before the crash and is still waiting.
    [stored] = _events(data)
    assert (stored["id"], stored["state"]) == ("push-2", "received")
    pushed = git("log", "--format=%s", "main", cwd=remote).count("Automated commit")
    assert pushed == (1 if pushed_before_crash else 0)

    again = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert again.returncode == 0, again.stderr

    trailers = [m for m in log_messages(remote) if "Syrup-Image-Event: push-2" in m]
    assert len(trailers) == 1
    assert show(remote, "deploy.yaml") == DEPLOY.format(tag="2").encode()
    [final] = _events(data)
    assert final["state"] == "committed"
    assert final["shas"] == [git("rev-parse", "main", cwd=remote).strip()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(config: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            *SYRUP_IMAGE,
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
            "--data-dir",
            str(data),
        ],
        start_new_session=True,
        stderr=subprocess.PIPE,
        env={**os.environ, "SYRUP_IMAGE_TOKEN": "s3cret-token"},
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server never came up"
        time.sleep(0.1)


def test_a_killed_server_finishes_an_accepted_event_exactly_once_on_restart(
    tmp_path: Path,
) -> None:
    remote = make_remote(tmp_path, {"deploy.yaml": DEPLOY.format(tag="1")})
    marker = _block_first_push(remote, "pre-receive", tmp_path)
    config = tmp_path / "updater.yaml"
    config.write_text(f"repos:\n- url: {remote}\n  branch: main\n")
    data, port = tmp_path / "data", _free_port()

    server = _serve(config, data, port)
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/image-events",
            json=EVENT,
            headers={"Authorization": "Bearer s3cret-token"},
        )
        assert response.status_code == 202
        _wait_for(marker, server)
    finally:
        _kill(server)
    assert "push-2" not in "".join(log_messages(remote))

    server = _serve(config, data, port)
    try:
        deadline = time.monotonic() + 30
        while _events(data)[0]["state"] != "committed":
            assert time.monotonic() < deadline, _events(data)
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert sum("Syrup-Image-Event: push-2" in m for m in log_messages(remote)) == 1
