"""Plans: matrix expansion, reusable workflows, runs-on labels, and --list over the corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syrup.ci import events, planning, workflows
from syrup.cli import main
from syrup.errors import InvalidInput
from tests.ci.conftest import CORPUS_WORKFLOWS, commit, make_repo

SYRUP = str(Path(sys.executable).parent / "syrup")


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        ({"os": ["a", "b"]}, [{"os": "a"}, {"os": "b"}]),
        (
            {"os": ["a", "b"], "py": [1, 2]},
            [
                {"os": "a", "py": 1},
                {"os": "a", "py": 2},
                {"os": "b", "py": 1},
                {"os": "b", "py": 2},
            ],
        ),
        (
            {"os": ["a", "b"], "py": [1, 2], "exclude": [{"os": "a", "py": 2}]},
            [{"os": "a", "py": 1}, {"os": "b", "py": 1}, {"os": "b", "py": 2}],
        ),
        (
            {"os": ["a", "b"], "py": [1, 2], "exclude": [{"os": "b"}]},
            [{"os": "a", "py": 1}, {"os": "a", "py": 2}],
        ),
        # include extends every combination it does not overwrite...
        (
            {"os": ["a", "b"], "include": [{"os": "b", "extra": "x"}]},
            [{"os": "a"}, {"os": "b", "extra": "x"}],
        ),
        (
            {"os": ["a", "b"], "include": [{"color": "green"}]},
            [{"os": "a", "color": "green"}, {"os": "b", "color": "green"}],
        ),
        # ...and becomes a new combination when it would overwrite an original value.
        (
            {"os": ["a"], "py": [1], "include": [{"os": "c", "py": 9}]},
            [{"os": "a", "py": 1}, {"os": "c", "py": 9}],
        ),
        # GitHub's documented example: added values can be overwritten by later includes.
        (
            {
                "fruit": ["apple", "pear"],
                "animal": ["cat", "dog"],
                "include": [
                    {"color": "green"},
                    {"color": "pink", "animal": "cat"},
                    {"fruit": "apple", "shape": "circle"},
                    {"fruit": "banana"},
                    {"fruit": "banana", "animal": "cat"},
                ],
            },
            [
                {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
                {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
                {"fruit": "pear", "animal": "cat", "color": "pink"},
                {"fruit": "pear", "animal": "dog", "color": "green"},
                {"fruit": "banana"},
                {"fruit": "banana", "animal": "cat"},
            ],
        ),
        ({"include": [{"a": 1}, {"a": 2}]}, [{"a": 1}, {"a": 2}]),
    ],
)
def test_matrix_expands_with_include_and_exclude_as_github_documents(
    matrix: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    assert planning.expand_matrix(matrix, where="w") == expected


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ({"os": "a"}, "must be a list"),
        ({"os": []}, "is empty"),
        ({"os": ["a"], "exclude": [{"os": "a"}]}, "no combinations"),
        ({"n": list(range(300))}, "limit 256"),
    ],
)
def test_bad_matrices_are_rejected(matrix: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        planning.expand_matrix(matrix, where="w")


def test_host_labels_reject_what_this_machine_cannot_run() -> None:
    host = planning.Host(labels=frozenset({"ubuntu-latest", "linux", "x64", "self-hosted"}))
    assert host.missing("ubuntu-latest") == []
    assert host.missing(["self-hosted", "linux"]) == []
    assert host.missing("windows-latest") == ["windows-latest"]
    assert host.missing({"labels": ["ubuntu-24.04-arm"]}) == ["ubuntu-24.04-arm"]


def corpus_checkout(name: str, tmp_path: Path, *, branch: str = "develop") -> Path:
    repo = tmp_path / name
    shutil.copytree(CORPUS_WORKFLOWS / name, repo)
    return make_repo(repo, {}, branch=branch)


def test_plan_expands_reusable_workflows_of_the_corpus(tmp_path: Path) -> None:
    repo = corpus_checkout("snutt", tmp_path, branch="main")
    event = events.Event(name="push", ref="refs/heads/main", sha="0" * 40)
    host = planning.Host.detect(extra=["ubuntu-24.04-arm"])
    plans = planning.plan_checkout(repo, event, host=host, workflow_file="deploy-api-prod.yml")

    [plan] = plans
    assert plan.stages == (("deploy",), ("notify",))
    deploy = plan.jobs[0]
    assert deploy.job.uses == "./.github/workflows/_deploy.yml"
    assert [child.key for child in deploy.children] == ["deploy/deploy"]
    assert deploy.children[0].problem is None
    assert plan.jobs[1].needs == ("deploy",)


def test_plan_reports_an_unsatisfiable_runs_on_label(tmp_path: Path) -> None:
    repo = corpus_checkout("snutt", tmp_path, branch="main")
    event = events.Event(name="push", ref="refs/heads/main", sha="0" * 40)
    host = planning.Host(labels=frozenset({"ubuntu-latest", "linux", "x64"}))
    [plan] = planning.plan_checkout(repo, event, host=host, workflow_file="ci.yml")
    assert plan.jobs[0].problem is not None
    assert "ubuntu-24.04-arm" in plan.jobs[0].problem


def test_a_missing_required_input_of_a_reusable_workflow_is_an_error(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/callee.yml": """
                on:
                  workflow_call:
                    inputs:
                      image: {type: string, required: true}
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    steps: [{run: echo}]
            """,
            ".github/workflows/caller.yml": """
                on: push
                jobs:
                  call:
                    uses: ./.github/workflows/callee.yml
            """,
        },
    )
    event = events.Event(name="push", ref="refs/heads/main", sha="0" * 40)
    with pytest.raises(
        InvalidInput, match=r"caller\.yml:\d+: jobs\.call: callee\.yml requires input 'image'"
    ):
        planning.plan_checkout(repo, event, host=planning.Host.detect(), workflow_file="caller.yml")


def test_a_matrix_from_needs_is_deferred_until_the_job_starts(tmp_path: Path) -> None:
    text = """
on: push
jobs:
  list:
    runs-on: ubuntu-latest
    outputs: {items: "${{ steps.s.outputs.items }}"}
    steps: [{id: s, run: echo}]
  each:
    needs: list
    runs-on: ubuntu-latest
    strategy:
      matrix:
        item: ${{ fromJSON(needs.list.outputs.items) }}
    steps: [{run: echo}]
"""
    workflow = workflows.parse(text, path=tmp_path / "w.yml")
    event = events.Event(name="push", ref="refs/heads/main", sha="0" * 40)
    plan = planning.plan_workflow(workflow, root=tmp_path, event=event, host=planning.Host.detect())
    assert plan.jobs[1].matrix_deferred
    assert "computed from needs" in planning.render([plan])


CORPUS_REPOS = sorted(path.name for path in CORPUS_WORKFLOWS.iterdir() if path.is_dir())


@pytest.mark.parametrize("name", CORPUS_REPOS)
def test_syrup_ci_run_list_prints_the_plan_of_every_corpus_workflow(
    name: str, tmp_path: Path
) -> None:
    repo = corpus_checkout(name, tmp_path, branch="trunk")
    printed = ""
    for path in sorted((repo / ".github" / "workflows").glob("*.y*ml")):
        workflow = workflows.load(path)
        event = next(iter(workflow.triggers))
        if event == "workflow_call":
            continue  # runs only through its callers, which are listed themselves
        args = ["ci", "run", str(repo), "--list", "--workflow", path.name]
        args += ["--event", event, "--data-dir", str(tmp_path / "data")]
        spec = workflow.triggers[event]
        for input_name in (spec.get("inputs") or {}) if event == "workflow_dispatch" else {}:
            args += ["--input", f"{input_name}=value"]
        if event == "pull_request":
            # A pull request from trunk into develop that touches the filtered paths.
            subprocess.run(["git", "-C", str(repo), "branch", "-f", "develop"], check=True)
            commit(repo, {"wacruit/touched.py": "x = 1\n"})
            args += ["--base", "develop"]
        branches = spec.get("branches") or ["develop"]
        tags = spec.get("tags")
        if tags:
            subprocess.run(["git", "-C", str(repo), "tag", "-f", "v.250930"], check=True)
            args += ["--ref", "refs/tags/v.250930"]
        elif event == "push":
            branch = str(branches[0])
            subprocess.run(["git", "-C", str(repo), "branch", "-f", branch], check=True)
            args += ["--ref", branch]
        completed = CliRunner().invoke(main.app, args)
        assert completed.exit_code == 0, completed.output
        assert f"workflow {workflow.name} ({path.name})" in completed.stdout, completed.stdout
        for job in workflow.jobs.values():
            assert f": {job.id} [" in completed.stdout
            if job.uses:
                assert f"{job.id}/" in completed.stdout  # the callee's jobs are expanded
        printed += completed.stdout
    assert "stage 1:" in printed


def test_the_installed_syrup_command_lists_a_plan(tmp_path: Path) -> None:
    repo = corpus_checkout("snutt-ev", tmp_path)
    completed = subprocess.run(
        [SYRUP, "ci", "run", str(repo), "--list", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "workflow Deploy-dev (deploy-dev.yml)" in completed.stdout
    assert "workflow Lint CI (lint.yml)" in completed.stdout
    assert "stage 1: deploy [Deploy]" in completed.stdout


def test_dry_run_lists_the_plan_and_how_each_action_resolves(tmp_path: Path) -> None:
    repo = corpus_checkout("wacruit-server", tmp_path, branch="develop")
    result = CliRunner().invoke(
        main.app, ["ci", "run", str(repo), "--dry-run", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 0, result.output
    assert "workflow Deploy-dev (deploy-dev.yaml)" in result.stdout
    assert "deploy: actions/checkout@v4: built in" in result.stdout
    assert "deploy: docker/build-push-action@v5: built in" in result.stdout
    assert (
        "deploy: wafflestudio/waffle-world-oci/.github/actions/update-image@main: NOT AVAILABLE"
        in result.stdout
    )
    assert not (tmp_path / "data" / "ci" / "work").exists()  # nothing ran


def test_bad_workflows_make_the_cli_fail_with_file_and_line(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {".github/workflows/bad.yml": "on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n"},
    )
    result = CliRunner().invoke(
        main.app, ["ci", "run", str(repo), "--list", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 2
    assert "bad.yml:5: jobs.a.stepz: unknown key 'stepz'" in result.output


def test_list_prints_matrix_combinations_and_stages(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/ci.yml": """
                on: push
                jobs:
                  test:
                    runs-on: ubuntu-latest
                    strategy:
                      matrix:
                        python: ["3.11", "3.12"]
                        os: [linux]
                        include:
                          - python: "3.13"
                            os: linux
                    steps: [{run: pytest}]
                  image:
                    needs: test
                    runs-on: ubuntu-latest
                    steps: [{run: docker build .}]
            """
        },
    )
    result = CliRunner().invoke(
        main.app, ["ci", "run", str(repo), "--list", "--data-dir", str(tmp_path / "data")]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "workflow ci.yml (ci.yml)",
        "  stage 1: test [test]",
        "    matrix (3.11, linux)",
        "    matrix (3.12, linux)",
        "    matrix (3.13, linux)",
        "  stage 2: image [image] needs test",
    ]
