"""The ``syrup image`` commands: manual bumps, the event log and retries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import git, log_messages, make_remote, make_repo

# The image commands in their own process, without the start-up cost of every other
# component's CLI (test_corpus runs one case through the `syrup` entry point itself).
SYRUP_IMAGE = [sys.executable, "-m", "syrup.cli.image"]
DEPLOY = "spec:\n  containers:\n  - image: ghcr.io/acme/web:{tag}\n"


def syrup(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SYRUP_IMAGE, *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_set_bumps_a_tag_by_hand_and_events_lists_it(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"apps/web.yaml": DEPLOY.format(tag="1.0.0")})
    data = tmp_path / "data"
    result = syrup("set", "ghcr.io/acme/web:1.1.0", "--repo", str(repo), data=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "apps/web.yaml\n"
    assert (repo / "apps/web.yaml").read_text() == DEPLOY.format(tag="1.1.0")
    assert log_messages(repo)[0].startswith("Automated commit by image push (acme/web:1.1.0)")

    listed = syrup("events", "--json", data=data)
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["state"] == "committed"
    assert row["shas"] == [git("rev-parse", "HEAD", cwd=repo).strip()]


def test_set_with_no_commit_only_changes_the_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"web.yaml": DEPLOY.format(tag="1.0.0")})
    result = syrup(
        "set", "ghcr.io/acme/web:1.1.0", "--repo", str(repo), "--no-commit", data=tmp_path / "data"
    )
    assert result.returncode == 0, result.stderr
    assert git("status", "--porcelain", cwd=repo) == " M web.yaml\n"
    assert len(log_messages(repo)) == 1


def test_a_failed_event_is_listed_with_its_reason_and_can_be_retried(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"web.yaml": DEPLOY.format(tag="1.0.0")})
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'remote is read-only today' >&2\nexit 1\n")
    hook.chmod(0o755)
    config = tmp_path / "updater.yaml"
    config.write_text("push: {attempts: 1, backoff_seconds: 0}\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"image": "ghcr.io/acme/web", "tag": "1.1.0", "id": "e-1"}))
    data = tmp_path / "data"

    result = syrup(
        "update",
        "--repo",
        str(remote),
        "--event",
        str(event),
        "--push",
        "--config",
        str(config),
        data=data,
    )
    assert result.returncode == 1
    assert "e-1: failed" in result.stderr
    failed = syrup("events", "--failed", data=data)
    assert failed.stdout.startswith("e-1\tghcr.io/acme/web:1.1.0\tfailed\t-\t")
    assert "remote is read-only today" in failed.stdout

    hook.unlink()
    retried = syrup("retry", "e-1", "--config", str(config), data=data)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith("e-1: committed ")
    assert syrup("events", "--failed", data=data).stdout == ""
    assert syrup("retry", "nope", data=data).returncode == 1


def test_poll_applies_the_newest_tag_from_the_registry(tmp_path: Path) -> None:
    from .fake_registry import FakeRegistry
    from .servers import serving

    fake = FakeRegistry(repositories={"acme/web": ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]})
    with serving(fake.app()) as base:
        fake.base = base
        host = base.removeprefix("http://")
        remote = make_remote(tmp_path, {"web.yaml": f"image: {host}/acme/web:1.0.0\n"})
        (tmp_path / "password").write_text(fake.password)
        config = tmp_path / "updater.yaml"
        config.write_text(
            f"repos: [{{url: {remote}}}]\n"
            f"registries: [{{host: '{host}', insecure: true, username: robot,"
            f" password: {{file: {tmp_path / 'password'}}}}}]\n"
            f"images: [{{image: '{host}/acme/web', poll: true,"
            " policy: {ordering: semver, range: '^1.0'}}]\n"
        )
        result = syrup("poll", "--config", str(config), data=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert " 1.2.0 committed" in result.stdout
    assert git("show", "main:web.yaml", cwd=remote) == f"image: {host}/acme/web:1.2.0\n"
