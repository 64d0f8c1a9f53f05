"""Event formats are detected by shape; bad input is rejected naming the field."""

from __future__ import annotations

import json

import pytest

from syrup.errors import InvalidInput
from syrup.updater import events
from syrup.updater.events import Action, EventFormat

DIGEST = "sha256:" + "ab" * 32

ECR = {
    "version": "0",
    "id": "13cde686-328b-6117-af20-0e5566167482",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "region": "us-west-2",
    "detail": {
        "result": "SUCCESS",
        "repository-name": "team/api",
        "image-digest": DIGEST,
        "action-type": "PUSH",
        "image-tag": "42",
    },
}
DISTRIBUTION = {
    "events": [
        {
            "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
            "timestamp": "2016-03-09T14:44:26.402973972-08:00",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": DIGEST,
                "repository": "hello-world",
                "url": "http://registry.local:5000/v2/hello-world/manifests/" + DIGEST,
                "tag": "v1.2.0",
            },
            "request": {"id": "r", "host": "registry.local:5000", "method": "PUT"},
        }
    ]
}
DOCKER_HUB = {
    "callback_url": "https://registry.hub.docker.com/u/someone/app/hook/abc/",
    "push_data": {"pushed_at": 1417566161, "pusher": "someone", "tag": "latest"},
    "repository": {"repo_name": "someone/app", "name": "app", "namespace": "someone"},
}
GITHUB = {
    "action": "published",
    "registry_package": {
        "name": "Web",
        "namespace": "Octo-Org",
        "package_type": "CONTAINER",
        "package_version": {
            "version": DIGEST,
            "container_metadata": {"tag": {"name": "v2.0.1", "digest": DIGEST}},
        },
    },
}
PLAIN = {"image": "ghcr.io/acme/web", "tag": "1.4.0", "digest": DIGEST}


@pytest.mark.parametrize(
    ("body", "fmt", "image", "tag", "digest"),
    [
        (
            ECR,
            EventFormat.ECR,
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/api",
            "42",
            DIGEST,
        ),
        (
            DISTRIBUTION,
            EventFormat.DISTRIBUTION,
            "registry.local:5000/hello-world",
            "v1.2.0",
            DIGEST,
        ),
        (DOCKER_HUB, EventFormat.DOCKER_HUB, "docker.io/someone/app", "latest", None),
        (GITHUB, EventFormat.GITHUB, "ghcr.io/octo-org/web", "v2.0.1", DIGEST),
        (PLAIN, EventFormat.PLAIN, "ghcr.io/acme/web", "1.4.0", DIGEST),
    ],
)
def test_each_format_is_detected_and_normalised(
    body: dict[str, object], fmt: EventFormat, image: str, tag: str, digest: str | None
) -> None:
    [event] = events.parse(json.dumps(body).encode())
    assert event.format is fmt
    assert str(event.repository) == image
    assert (event.tag, event.digest) == (tag, digest)
    assert event.actionable


def test_the_ecr_event_id_is_the_senders_and_a_payload_without_one_gets_a_stable_hash() -> None:
    assert events.parse(json.dumps(ECR).encode())[0].id == ECR["id"]
    first = events.parse(json.dumps(PLAIN).encode())[0].id
    again = events.parse(json.dumps(dict(reversed(PLAIN.items()))).encode())[0].id
    assert first == again


def _ecr(**detail: object) -> dict[str, object]:
    return {**ECR, "detail": {**ECR["detail"], **detail}}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_ecr(**{"action-type": "DELETE"}), "action is delete"),
        (_ecr(result="FAILURE"), "failure"),
        (_ecr(**{"image-tag": ""}), "without a tag"),
        (
            {**GITHUB, "registry_package": {**GITHUB["registry_package"], "package_type": "npm"}},  # type: ignore[dict-item]
            "action is other",
        ),
        (
            {"events": [{**DISTRIBUTION["events"][0], "action": "pull"}]},  # type: ignore[index]
            "action is other",
        ),
    ],
)
def test_non_push_failed_and_untagged_events_are_parsed_but_not_actionable(
    body: dict[str, object], why: str
) -> None:
    [event] = events.parse(json.dumps(body).encode())
    assert not event.actionable
    assert why in event.why_ignored


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"hello": "world"}', "unknown event format"),
        (b'{"image": "nginx", "tag": "-bad"}', "event.tag: '-bad' is not a valid image tag"),
        (b'{"image": "nginx", "tag": "1", "digest": "md5:00"}', "event.digest"),
        (b'{"image": "Not/Valid", "tag": "1"}', "event.image"),
        (json.dumps(_ecr(**{"image-tag": "a" * 129})).encode(), "event.detail.image-tag"),
        (json.dumps({**ECR, "detail": {"result": "SUCCESS"}}).encode(), "repository-name"),
    ],
)
def test_bad_input_is_rejected_naming_the_field(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        events.parse(payload)
    assert message in str(raised.value)


def test_a_distribution_envelope_may_carry_several_events() -> None:
    second = {**DISTRIBUTION["events"][0], "id": "other"}  # type: ignore[index]
    body = {"events": [DISTRIBUTION["events"][0], second]}  # type: ignore[index]
    parsed = events.parse(json.dumps(body).encode())
    assert [event.id for event in parsed] == [DISTRIBUTION["events"][0]["id"], "other"]  # type: ignore[index]
    assert all(event.action is Action.PUSH for event in parsed)
