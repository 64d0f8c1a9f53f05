"""Polling through the Registry HTTP API v2, against a faithful fake registry on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syrup.errors import NotFound, Unavailable
from syrup.updater import polling, registry
from syrup.updater.store import EventState

from .conftest import log_messages, make_remote, show
from .fake_registry import FakeRegistry
from .servers import serving

TAGS = ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "latest", "build-7", "build-12"]


@pytest.fixture(params=["bearer", "basic"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    fake = FakeRegistry(repositories={"team/app": TAGS}, mode=request.param)
    with serving(fake.app()) as base:
        fake.base = base
        yield fake


def _client(fake: FakeRegistry, *, password: str | None = None) -> registry.RegistryClient:
    credentials = registry.Credentials(username="robot", password=password or fake.password)
    return registry.RegistryClient(
        fake.base.removeprefix("http://"), credentials=credentials, insecure=True
    )


def test_tags_are_listed_across_pages_after_the_auth_handshake(fake: FakeRegistry) -> None:
    client = _client(fake)
    try:
        assert sorted(client.list_tags("team/app")) == sorted(TAGS)
        assert client.digest("team/app", "1.2.0") == fake.digest("team/app", "1.2.0")
    finally:
        client.close()
    if fake.mode == "bearer":
        # One token for the scope, reused for every page and the manifest.
        assert len(fake.token_requests) == 1
        assert fake.token_requests[0]["scope"] == "repository:team/app:pull"


def test_wrong_credentials_and_unknown_repositories_are_owned_errors(fake: FakeRegistry) -> None:
    client = _client(fake, password="wrong")
    try:
        with pytest.raises(Unavailable):
            client.list_tags("team/app")
    finally:
        client.close()
    client = _client(fake)
    try:
        with pytest.raises(NotFound):
            client.list_tags("team/nothing")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("policy", "chosen"),
    [
        ({"ordering": "semver", "range": "^1.0.0"}, "1.10.0"),
        ({"ordering": "semver", "range": ">=1.0.0"}, "2.0.0"),
        ({"ordering": "semver", "range": ">=2.0.0-0"}, "2.0.0"),
        ({"ordering": "alphabetical", "pattern": r"^\d"}, "2.0.0-rc.1"),
        ({"ordering": "numerical", "pattern": r"^build-(?P<n>\d+)$", "extract": "$n"}, "build-12"),
    ],
)
def test_polling_writes_the_newest_tag_by_policy_once(
    tmp_path: Path, make_updater, policy: dict[str, str], chosen: str
) -> None:
    fake = FakeRegistry(repositories={"team/app": TAGS})
    with serving(fake.app()) as base:
        fake.base = base
        host = base.removeprefix("http://")
        (tmp_path / "token").write_text(fake.password + "\n")
        remote = make_remote(
            tmp_path, {"app.yaml": f"containers:\n- image: {host}/team/app:1.0.0\n"}
        )
        updater = make_updater(
            {
                "repos": [{"url": str(remote)}],
                "registries": [
                    {
                        "host": host,
                        "insecure": True,
                        "username": "robot",
                        "password": {"file": str(tmp_path / "token")},
                    }
                ],
                "images": [{"image": f"{host}/team/app", "policy": policy, "poll": True}],
            }
        )
        [queued] = polling.poll_once(updater)
        assert queued.event.tag == chosen
        assert updater.process(queued.id).state is EventState.COMMITTED
        # The same answer polled again is a known event: no second commit.
        [again] = polling.poll_once(updater)
        assert again.id == queued.id
        assert updater.process_pending() == []

    assert show(remote, "app.yaml") == f"containers:\n- image: {host}/team/app:{chosen}\n".encode()
    assert len(log_messages(remote)) == 2


def test_polling_can_pin_the_digest_and_never_goes_backwards(tmp_path: Path, make_updater) -> None:
    fake = FakeRegistry(repositories={"team/app": ["1.0.0", "1.1.0"]})
    with serving(fake.app()) as base:
        fake.base = base
        host = base.removeprefix("http://")
        (tmp_path / "token").write_text(fake.password)
        remote = make_remote(
            tmp_path,
            {
                "a.yaml": f"containers:\n- image: {host}/team/app:1.0.0\n",
                "b.yaml": f"containers:\n- image: {host}/team/app:3.0.0\n",
            },
        )
        updater = make_updater(
            {
                "repos": [{"url": str(remote)}],
                "registries": [
                    {
                        "host": host,
                        "insecure": True,
                        "username": "robot",
                        "password": {"file": str(tmp_path / "token")},
                    }
                ],
                "images": [
                    {
                        "image": f"{host}/team/app",
                        "policy": {"ordering": "semver"},
                        "poll": True,
                        "pin_digest": True,
                    }
                ],
            }
        )
        [queued] = polling.poll_once(updater)
        final = updater.process(queued.id)

    assert final.files == ("a.yaml",)
    digest = fake.digest("team/app", "1.1.0")
    assert (
        show(remote, "a.yaml") == f"containers:\n- image: {host}/team/app:1.1.0@{digest}\n".encode()
    )
    assert show(remote, "b.yaml") == f"containers:\n- image: {host}/team/app:3.0.0\n".encode()
