"""The secret store: encrypted at rest under a 0600 key, names validated, CLI round trip."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syrup.ci import secrets
from syrup.ci.records import Conclusion
from syrup.cli import main
from syrup.errors import ConfigError, InvalidInput
from tests.ci.conftest import RunFn, make_repo


def test_secrets_are_encrypted_at_rest_with_a_private_key(tmp_path: Path) -> None:
    store = secrets.SecretStore(tmp_path)
    store.set("DEPLOY_KEY", "very-secret-value")
    assert store.all() == {"DEPLOY_KEY": "very-secret-value"}
    key = tmp_path / "ci" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ci" / "secrets.json").stat().st_mode) == 0o600
    assert b"very-secret-value" not in (tmp_path / "ci" / "secrets.json").read_bytes()


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = secrets.SecretStore(tmp_path)
    store.set("A", "1")
    (tmp_path / "ci" / "secrets.key").chmod(0o644)
    with pytest.raises(ConfigError, match="must have mode 0600"):
        store.all()


def test_a_different_key_cannot_decrypt_and_says_so(tmp_path: Path) -> None:
    store = secrets.SecretStore(tmp_path)
    store.set("A", "1")
    key = tmp_path / "ci" / "secrets.key"
    key.chmod(0o600)
    key.write_bytes(b"0" * 43 + b"=")
    with pytest.raises(ConfigError, match="secret 'A' cannot be decrypted"):
        store.all()


@pytest.mark.parametrize("name", ["1ABC", "with-dash", "GITHUB_TOKEN", ""])
def test_bad_secret_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput, match="bad secret name"):
        secrets.SecretStore(tmp_path).set(name, "x")


def test_referenced_finds_dot_and_index_forms() -> None:
    found = secrets.referenced(["secrets.A_1 && secrets['B'] ", "format('{0}', secrets.C)"])
    assert found == {"A_1", "B", "C"}


def test_stored_secrets_reach_runs_through_the_cli(tmp_path: Path, ci_run: RunFn) -> None:
    data = tmp_path / "data"
    cli = CliRunner()
    stored = cli.invoke(
        main.app, ["ci", "secret", "set", "API_KEY", "--data-dir", str(data)], input="k-123456\n"
    )
    assert stored.exit_code == 0, stored.output
    listed = cli.invoke(main.app, ["ci", "secret", "list", "--data-dir", str(data)])
    assert listed.stdout.split() == ["API_KEY"]
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/ci.yml": """
                on: push
                jobs:
                  use:
                    runs-on: ubuntu-latest
                    steps:
                      - run: >-
                          test "${{ secrets.API_KEY }}" = k-123456 &&
                          echo "key ${{ secrets.API_KEY }}"
            """
        },
    )
    outcome = ci_run(repo, data_dir=data)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    assert "key ***" in outcome.log("use")
    removed = cli.invoke(main.app, ["ci", "secret", "rm", "API_KEY", "--data-dir", str(data)])
    assert removed.exit_code == 0
    assert (
        cli.invoke(main.app, ["ci", "secret", "rm", "API_KEY", "--data-dir", str(data)]).exit_code
        == 2
    )


def test_secrets_file_and_flags_parse_name_value_lines() -> None:
    parsed = secrets.parse_assignments(["# comment", "", "A=1", "B=x=y"], where="f")
    assert parsed == {"A": "1", "B": "x=y"}
    with pytest.raises(InvalidInput, match="expected NAME=value"):
        secrets.parse_assignments(["novalue"], where="f")
