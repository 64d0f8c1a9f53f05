"""``syrup/update-image@v1``: bumps a GitOps tag through the image updater's entry point.

The image updater (``syrup.updater``) is written beside the runner; the action calls
``syrup.updater.set_image_tag(directory, *, image, tag)`` when that exists, and otherwise the
updater's surgical editor. These tests pin both paths and the error when neither exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import syrup.updater
from syrup.ci.records import Conclusion
from tests.ci.conftest import RunFn, make_repo

WORKFLOW = """
    on: push
    jobs:
      bump:
        runs-on: ubuntu-latest
        steps:
          - uses: actions/checkout@v4
          - id: bump
            uses: syrup/update-image@v1
            with:
              image: registry.local/team/app
              tag: ${{ github.run_number }}
              path: gitops/apps/app
          - run: echo "changed=${{ steps.bump.outputs.changed }}"
"""


def test_the_action_passes_directory_image_and_tag_to_the_updater(
    tmp_path: Path, ci_run: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Path, str, str]] = []

    def set_image_tag(directory: Path, *, image: str, tag: str) -> list[Path]:
        calls.append((directory, image, tag))
        target = directory / "deployment.yaml"
        target.write_text(f"image: {image}:{tag}\n")
        return [target]

    monkeypatch.setattr(syrup.updater, "set_image_tag", set_image_tag, raising=False)
    repo = make_repo(
        tmp_path / "r",
        {".github/workflows/ci.yml": WORKFLOW, "gitops/apps/app/deployment.yaml": "image: x:0\n"},
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("bump")
    [(directory, image, tag)] = calls
    assert directory.parts[-3:] == ("gitops", "apps", "app")
    assert (image, tag) == ("registry.local/team/app", "1")
    assert "changed=true" in outcome.log("bump")


def test_without_the_entry_point_the_updaters_editor_bumps_only_the_tag(
    tmp_path: Path, ci_run: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(syrup.updater, "set_image_tag", raising=False)
    deployment = """\
# the app's deployment
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.local/team/app:0   # bumped by CI
        - name: sidecar
          image: registry.local/team/other:5
"""
    repo = make_repo(
        tmp_path / "r",
        {".github/workflows/ci.yml": WORKFLOW, "gitops/apps/app/deployment.yaml": deployment},
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("bump")
    assert "changed=true" in outcome.log("bump")
    work = tmp_path / "data" / "ci" / "work" / str(outcome.result.run_id) / "bump-0"
    edited = (work / "workspace" / "gitops" / "apps" / "app" / "deployment.yaml").read_text()
    assert edited == deployment.replace("team/app:0 ", "team/app:1 ")


def test_without_any_updater_code_the_action_fails_clearly(
    tmp_path: Path, ci_run: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(syrup.updater, "set_image_tag", raising=False)
    monkeypatch.setitem(sys.modules, "syrup.updater.edits", None)
    repo = make_repo(
        tmp_path / "r",
        {".github/workflows/ci.yml": WORKFLOW, "gitops/apps/app/deployment.yaml": "image: x:0\n"},
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    assert "syrup.updater has neither set_image_tag" in outcome.log("bump")
