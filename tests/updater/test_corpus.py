"""Acceptance: every real push event in the corpus produces exactly the files the team's bot
wrote, byte-for-byte, and changes no other file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syrup.updater import updating
from syrup.updater.store import EventState

from .conftest import IMAGE_EVENTS, git, log_messages

CASES = sorted(path.name for path in IMAGE_EVENTS.iterdir() if path.is_dir())
# The image commands in their own process, without the start-up cost of every other
# component's CLI; one corpus test goes through the `syrup` entry point itself.
SYRUP_IMAGE = [sys.executable, "-m", "syrup.cli.image"]
SYRUP = str(Path(sys.executable).with_name("syrup"))
WAFFLE_MESSAGE = "Automated commit by ECR push ({repository}:{tag})"


def _checkout(case: Path, tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(case / "before", repo)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "before", cwd=repo)
    return repo


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def test_the_corpus_has_the_sixty_recorded_events() -> None:
    assert len(CASES) == 60


@pytest.mark.parametrize("name", CASES)
def test_a_recorded_event_reproduces_the_bots_files_byte_for_byte(
    name: str, tmp_path: Path, make_updater
) -> None:
    case = IMAGE_EVENTS / name
    repo = _checkout(case, tmp_path)
    updater = make_updater({"message": WAFFLE_MESSAGE})

    [row] = updater.receive(
        (case / "event.json").read_bytes(),
        source="test",
        target=updating.RepoTarget(url=str(repo), push=False),
    )
    final = updater.process(row.id)

    expected = _files(case / "before") | (
        _files(case / "after") if (case / "after").is_dir() else {}
    )
    assert _files(repo) == expected
    detail = json.loads((case / "event.json").read_text())["detail"]
    if (case / "after").is_dir():
        assert final.state is EventState.COMMITTED
        assert set(final.files) == set(_files(case / "after"))
        subject = (
            f"Automated commit by ECR push ({detail['repository-name']}:{detail['image-tag']})"
        )
        assert log_messages(repo)[0] == f"{subject}\n\nSyrup-Image-Event: {row.id}"
    else:
        # Either the tag is already in Git (012) or nothing references the repository.
        assert final.state in (EventState.UNCHANGED, EventState.NO_MATCH)
        assert len(log_messages(repo)) == 1


@pytest.mark.parametrize(
    ("command", "name", "printed"),
    [
        ([SYRUP, "image"], "001", "apps/snutt-dev/snutt-core/snutt-core.yaml\n"),
        (SYRUP_IMAGE, "013", ""),
    ],
)
def test_the_update_command_prints_the_changed_files_and_exits_zero(
    command: list[str], name: str, printed: str, tmp_path: Path
) -> None:
    case = IMAGE_EVENTS / name
    repo = _checkout(case, tmp_path)
    result = subprocess.run(
        [
            *command,
            "update",
            "--repo",
            str(repo),
            "--event",
            str(case / "event.json"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed
    if printed:
        assert (repo / printed.strip()).read_bytes() == (
            case / "after" / printed.strip()
        ).read_bytes()
    else:
        assert "no_match" in result.stderr


def test_the_update_command_rejects_an_invalid_event_without_touching_the_repo(
    tmp_path: Path,
) -> None:
    case = IMAGE_EVENTS / "001"
    repo = _checkout(case, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"image": "nginx", "tag": "bad tag!"}')
    result = subprocess.run(
        [
            *SYRUP_IMAGE,
            "update",
            "--repo",
            str(repo),
            "--event",
            str(bad),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "event.tag" in result.stderr
    assert git("status", "--porcelain", cwd=repo) == ""
