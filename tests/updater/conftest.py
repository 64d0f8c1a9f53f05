"""Shared helpers for the image updater's tests: real git repositories in ``tmp_path``."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from syrup.updater import config, updating

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
IMAGE_EVENTS = CORPUS / "image-events"
ECR = "405906814034.dkr.ecr.ap-northeast-2.amazonaws.com"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path, files: Mapping[str, str | bytes]) -> Path:
    """A committed repository on ``main`` holding ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", "Test", cwd=path)
    git("config", "user.email", "test@example.invalid", cwd=path)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "initial", cwd=path)
    return path


def make_remote(tmp_path: Path, files: Mapping[str, str | bytes]) -> Path:
    """A bare repository (the 'GitHub' of the test) whose main branch holds ``files``."""
    seed = make_repo(tmp_path / "seed", files)
    bare = tmp_path / "remote.git"
    git("clone", "-q", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare


def log_messages(repo: Path, ref: str = "main") -> list[str]:
    out = git("log", "--format=%B%x00", ref, cwd=repo)
    return [message.strip() for message in out.split("\0") if message.strip()]


def show(repo: Path, path: str, ref: str = "main") -> bytes:
    return subprocess.run(
        ["git", "show", f"{ref}:{path}"], cwd=repo, check=True, capture_output=True
    ).stdout


@pytest.fixture
def make_updater(tmp_path: Path):  # type: ignore[no-untyped-def]
    created: list[updating.Updater] = []

    def build(
        raw: Mapping[str, object] | None = None,
        *,
        name: str = "data",
        on_pushed: updating.PushedHook | None = None,
    ) -> updating.Updater:
        settings = updating.UpdaterSettings(
            data_dir=tmp_path / name,
            config=config.parse(dict(raw or {})),
            on_pushed=on_pushed,
        )
        updater = updating.Updater(settings)
        created.append(updater)
        return updater

    yield build
    for updater in created:
        updater.close()
