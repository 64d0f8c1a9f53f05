"""Loading workflows: the real corpus loads; bad files fail naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syrup.ci import workflows
from syrup.errors import InvalidInput
from tests.ci.conftest import CORPUS_WORKFLOWS

CORPUS_FILES = sorted(CORPUS_WORKFLOWS.glob("*/.github/workflows/*.y*ml"))


def test_the_corpus_has_workflows_to_check() -> None:
    assert len(CORPUS_FILES) >= 20


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_every_corpus_workflow_loads_and_validates(path: Path) -> None:
    workflow = workflows.load(path)
    assert workflow.jobs
    assert workflow.triggers


def test_on_is_read_as_the_trigger_key_not_a_yaml_boolean() -> None:
    workflow = workflows.parse(
        "on:\n  push:\n    branches: [main]\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: 'true'}]\n",
        path=Path("w.yml"),
    )
    assert workflow.triggers == {"push": {"branches": ["main"]}}


BAD = [
    ("not YAML", "on: [push\njobs: {}\n", r"w\.yml:\d+: not valid YAML"),
    ("a YAML list", "- a\n- b\n", r"w\.yml:1: a workflow must be a YAML mapping"),
    (
        "an unknown top-level key",
        "on: push\nfoo: 1\njobs:\n  a:\n    runs-on: x\n    steps: [{run: 'true'}]\n",
        r"w\.yml:2: foo: unknown key 'foo'",
    ),
    (
        "an unknown job key",
        "on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n",
        r"w\.yml:5: jobs\.a\.stepz: unknown key 'stepz'",
    ),
    (
        "an unknown step key",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n"
        "      - run: 'true'\n        bogus: 1\n",
        r"w\.yml:7: jobs\.a\.steps\.0\.bogus: unknown key 'bogus'",
    ),
    (
        "no jobs",
        "on: push\n",
        r"w\.yml:1: 'jobs' is a required property",
    ),
    (
        "a needs cycle",
        "on: push\njobs:\n  a:\n    runs-on: x\n    needs: b\n    steps: [{run: 'true'}]\n"
        "  b:\n    runs-on: x\n    needs: a\n    steps: [{run: 'true'}]\n",
        r"w\.yml:5: jobs\.a\.needs: needs cycle: a -> b -> a",
    ),
    (
        "a need that does not exist",
        "on: push\njobs:\n  a:\n    runs-on: x\n    needs: [zzz]\n    steps: [{run: 'true'}]\n",
        r"jobs\.a\.needs: job 'a' needs unknown job 'zzz'",
    ),
    (
        "a step with run and uses",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n"
        "      - run: 'true'\n        uses: a/b@v1\n",
        r"w\.yml:6: jobs\.a\.steps\.0: give exactly one of uses, run",
    ),
    (
        "duplicate step ids",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - {id: s, run: 'true'}\n"
        "      - {id: s, run: 'true'}\n",
        r"w\.yml:7: jobs\.a\.steps\.1: duplicate step id 's'",
    ),
    (
        "a broken expression",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo ${{ github.( }}\n",
        r"w\.yml:6: jobs\.a\.steps\.0\.run: bad expression",
    ),
    (
        "a broken if",
        "on: push\njobs:\n  a:\n    runs-on: x\n"
        "    if: github.ref ==\n    steps: [{run: 'true'}]\n",
        r"w\.yml:5: jobs\.a\.if: bad expression",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[case for case, _, _ in BAD])
def test_a_bad_workflow_fails_naming_file_line_and_key(case: str, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        workflows.parse(text, path=Path("w.yml"))


def test_discover_finds_yml_and_yaml_files_only(tmp_path: Path) -> None:
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True)
    for name in ("b.yaml", "a.yml", "notes.md"):
        (directory / name).write_text("x")
    assert [p.name for p in workflows.discover(tmp_path)] == ["a.yml", "b.yaml"]
