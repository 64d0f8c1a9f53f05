"""The HTTP intake, over real HTTP: authenticated, stored before acknowledged, then applied."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import httpx
import pytest

from syrup.errors import InvalidInput
from syrup.updater import config, http, updating

from .conftest import IMAGE_EVENTS, git, log_messages, make_remote
from .servers import serving

TOKEN = "t0ken-for-tests"
SECRET = "hmac-secret"
CASE = IMAGE_EVENTS / "001"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    files = {
        str(path.relative_to(CASE / "before")): path.read_bytes()
        for path in (CASE / "before").rglob("*")
        if path.is_file()
    }
    return make_remote(tmp_path, files)


def _app(tmp_path: Path, remote: Path, pushed: list[str]):  # type: ignore[no-untyped-def]
    settings = http.ServeSettings(
        updater=updating.UpdaterSettings(
            data_dir=tmp_path / "data",
            config=config.parse(
                {
                    "repos": [{"url": str(remote), "paths": ["apps/"]}],
                    "message": "Automated commit by ECR push ({repository}:{tag})",
                }
            ),
            on_pushed=lambda url, branch, sha: pushed.append(sha),
        ),
        token=TOKEN,
        source_secrets={"ecr": SECRET},
    )
    return http.create_app(settings)


def _wait_committed(client: httpx.Client, base: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        listed = client.get(
            f"{base}/api/v1/image-events", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()["events"]
        if listed and listed[0]["state"] != "received":
            return dict(listed[0])
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


def test_an_event_posted_with_the_token_is_acknowledged_then_committed_and_pushed(
    tmp_path: Path, remote: Path
) -> None:
    pushed: list[str] = []
    with serving(_app(tmp_path, remote, pushed)) as base, httpx.Client() as client:
        response = client.post(
            f"{base}/api/v1/image-events",
            content=(CASE / "event.json").read_bytes(),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 202
        [accepted] = response.json()["events"]
        assert accepted["state"] == "received"
        final = _wait_committed(client, base)

    head = git("rev-parse", "main", cwd=remote).strip()
    assert final["state"] == "committed"
    assert final["shas"] == [head]
    assert pushed == [head]
    assert log_messages(remote)[0].startswith(
        "Automated commit by ECR push (snutt-dev/snutt-core:98)"
    )


def test_an_event_signed_with_the_sources_hmac_secret_is_accepted(
    tmp_path: Path, remote: Path
) -> None:
    body = (CASE / "event.json").read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with serving(_app(tmp_path, remote, [])) as base, httpx.Client() as client:
        response = client.post(
            f"{base}/api/v1/image-events?source=ecr",
            content=body,
            headers={"X-Hub-Signature-256": signature},
        )
        assert response.status_code == 202
        assert _wait_committed(client, base)["state"] == "committed"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"Authorization": "Bearer wrong"}, ""),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "?source=ecr"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "?source=unknown"),
    ],
)
def test_an_unauthenticated_event_is_refused_and_not_stored(
    tmp_path: Path, remote: Path, headers: dict[str, str], query: str
) -> None:
    with serving(_app(tmp_path, remote, [])) as base, httpx.Client() as client:
        response = client.post(
            f"{base}/api/v1/image-events{query}",
            content=(CASE / "event.json").read_bytes(),
            headers=headers,
        )
        assert response.status_code == 401
        listed = client.get(
            f"{base}/api/v1/image-events", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert listed.json()["events"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "not valid JSON"),
        (b'{"what": 1}', "unknown event format"),
        (json.dumps({"image": "nginx", "tag": "no spaces"}).encode(), "event.tag"),
    ],
)
def test_a_malformed_event_gets_400_naming_the_problem_and_stores_nothing(
    tmp_path: Path, remote: Path, body: bytes, message: str
) -> None:
    with serving(_app(tmp_path, remote, [])) as base, httpx.Client() as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = client.post(f"{base}/api/v1/image-events", content=body, headers=auth)
        assert response.status_code == 400
        assert message in response.json()["detail"]
        assert client.get(f"{base}/api/v1/image-events", headers=auth).json()["events"] == []


def test_the_server_refuses_to_start_without_any_credential(tmp_path: Path) -> None:
    settings = http.ServeSettings(updater=updating.UpdaterSettings(data_dir=tmp_path))
    with pytest.raises(InvalidInput, match="needs a token"):
        http.create_app(settings)


def test_a_failed_event_is_kept_and_retried_later_by_the_server(
    tmp_path: Path, remote: Path
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'maintenance window' >&2\nexit 1\n")
    hook.chmod(0o755)
    settings = http.ServeSettings(
        updater=updating.UpdaterSettings(
            data_dir=tmp_path / "data",
            config=config.parse(
                {"repos": [{"url": str(remote)}], "push": {"attempts": 1, "backoff_seconds": 0}}
            ),
        ),
        token=TOKEN,
        retry_failed_seconds=0.5,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(http.create_app(settings)) as base, httpx.Client() as client:
        posted = client.post(
            f"{base}/api/v1/image-events", content=(CASE / "event.json").read_bytes(), headers=auth
        )
        assert posted.status_code == 202
        failed = _wait_committed(client, base)
        assert failed["state"] == "failed"
        assert "maintenance window" in str(failed["detail"])

        hook.unlink()
        deadline = time.monotonic() + 30
        while (row := _wait_committed(client, base))["state"] != "committed":
            assert time.monotonic() < deadline, row
            time.sleep(0.1)
    assert int(str(row["attempts"])) >= 2
    assert sum("Syrup-Image-Event" in m for m in log_messages(remote)) == 1
