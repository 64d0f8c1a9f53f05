"""The configuration file is validated on load, and errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syrup.errors import ConfigError
from syrup.updater import config


def test_a_complete_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "updater.yaml"
    path.write_text(
        "repos:\n- url: https://example.invalid/gitops.git\n  branch: main\n  paths: [apps/]\n"
        "registries:\n- host: 123.dkr.ecr.us-east-1.amazonaws.com\n  aliases: [ecr.internal]\n"
        "  username: AWS\n  password: {env: ECR_PASSWORD}\n"
        "images:\n- image: 123.dkr.ecr.us-east-1.amazonaws.com/team/api\n"
        "  policy: {ordering: semver, range: '>=1.0.0 <2'}\n  poll: true\n"
        "identity: {name: bot, email: bot@example.invalid}\n"
        "message: 'Automated commit by ECR push ({repository}:{tag})'\n"
        "helm_keys: [{repository: repository, tag: tag}, {repository: image, tag: version}]\n"
        "server: {token: {file: /run/secrets/token}}\n"
    )
    loaded = config.load(path)
    assert loaded.repos[0].paths == ("apps/",)
    assert loaded.images[0].policy.range == ">=1.0.0 <2"
    assert loaded.helm_keys[1].tag == "version"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("repos:\n- branch: main\n", "repos[0].url: Field required"),
        ("repos:\n- url: x\n  brnch: main\n", "repos[0].brnch: Extra inputs are not permitted"),
        ("push: {attempts: 0}\n", "push.attempts"),
        ("images:\n- image: Not A Name\n", "images[0].image"),
        (
            "images:\n- image: a.io/x\n  policy: {ordering: semver, range: 'soon'}\n",
            "images[0].policy.range",
        ),
        ("images:\n- image: a.io/x\n  policy: {pattern: '('}\n", "images[0].policy.pattern"),
        ("images:\n- image: a.io/x\n  poll: true\n", "images[0].policy.ordering"),
        ("repos:\n- url: x\n  message: '{oops}'\n", "repos[0].message"),
        ("server: {token: {file: a, env: B}}\n", "server.token"),
        ("- just a list\n", "must be a mapping"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_an_invalid_file_is_rejected_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "updater.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("ref", "env", "expected"),
    [
        ({"env": "SYRUP_TEST_SECRET"}, {"SYRUP_TEST_SECRET": "from-env"}, "from-env"),
        ({"file": "secret.txt"}, {}, "from-file"),
    ],
)
def test_credentials_are_resolved_by_reference_only_when_used(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ref: dict[str, str],
    env: dict[str, str],
    expected: str,
) -> None:
    (tmp_path / "secret.txt").write_text("from-file\n")
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert config.SecretRef.model_validate(ref).resolve() == expected


def test_a_missing_credential_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYRUP_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="SYRUP_NOT_SET"):
        config.SecretRef(env="SYRUP_NOT_SET").resolve()
