"""Registry push events: detect the format of a payload and turn it into :class:`ImageEvent`.

Five formats are recognised by their shape, never by a header, so the same parser serves the
HTTP intake, the CLI and the queue on replay:

* AWS ECR "ECR Image Action" (EventBridge): ``detail-type`` + ``detail.repository-name``;
  the registry host is ``<account>.dkr.ecr.<region>.amazonaws.com``.
* The CNCF distribution registry's notification envelope
  (``application/vnd.docker.distribution.events.v1+json``): ``{"events": [...]}``, one
  payload may carry several events; the host is the one the client used (``request.host``).
* The Docker Hub webhook: ``push_data`` + ``repository.repo_name`` (no digest is sent).
* GitHub's ``registry_package`` webhook for ghcr.io: ``registry_package.package_version``.
* A plain ``{"image": "host/repo", "tag": "...", "digest": "..."}``.

Events that are not successful pushes of a tag (deletes, ``result: FAILURE``, pushes by digest
only) are still returned, with :attr:`ImageEvent.actionable` false, so the caller can record
them as ignored. Each event gets a stable id: the sender's own id when it has one, otherwise a
hash of the payload, so a re-delivered payload is recognised as the same event.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from syrup.errors import InvalidInput
from syrup.updater import refs


class EventFormat(enum.StrEnum):
    """Which sender wrote the payload."""

    ECR = "ecr"
    DISTRIBUTION = "distribution"
    DOCKER_HUB = "dockerhub"
    GITHUB = "github"
    PLAIN = "plain"
    POLL = "poll"


class Action(enum.StrEnum):
    """What happened in the registry."""

    PUSH = "push"
    DELETE = "delete"
    OTHER = "other"


@dataclass(frozen=True)
class ImageEvent:
    """One push (or other action) of one repository, normalised across formats."""

    id: str
    format: EventFormat
    action: Action
    succeeded: bool
    repository: refs.Repository
    tag: str | None
    digest: str | None
    repository_name: str
    """The repository as the sender named it (ECR's ``repository-name``), for messages."""

    @property
    def actionable(self) -> bool:
        """A successful push with a tag: the only kind of event that can change a file."""
        return self.action is Action.PUSH and self.succeeded and self.tag is not None

    @property
    def why_ignored(self) -> str:
        """Say why the event changes nothing, for the event log."""
        if self.action is not Action.PUSH:
            return f"action is {self.action.value}, not push"
        if not self.succeeded:
            return "the registry reported a failure"
        if self.tag is None:
            return "push without a tag"
        return ""


def parse(payload: bytes, *, where: str = "event") -> list[ImageEvent]:
    """Parse a payload of any supported format; raise :class:`InvalidInput` naming the field."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"not valid JSON ({error})", where=where) from error
    if not isinstance(body, dict):
        raise InvalidInput("must be a JSON object", where=where)
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]

    # The shapes are disjoint, so the first key that identifies a sender decides.
    if "detail-type" in body or body.get("source") == "aws.ecr":
        return [_parse_ecr(body, where=where, fallback_id=f"ecr-{digest}")]
    if "events" in body:
        return _parse_distribution(body, where=where)
    if "push_data" in body:
        return [_parse_docker_hub(body, where=where, fallback_id=f"dockerhub-{digest}")]
    if "registry_package" in body:
        return [_parse_github(body, where=where, fallback_id=f"github-{digest}")]
    if "image" in body:
        return [_parse_plain(body, where=where, fallback_id=f"plain-{digest}")]
    raise InvalidInput(
        "unknown event format (expected an ECR, distribution, Docker Hub, GitHub "
        "registry_package or plain {image, tag} event)",
        where=where,
    )


def plain(
    *, image: str, tag: str, digest: str | None = None, id: str | None = None, where: str = "image"
) -> ImageEvent:
    """Build a plain push event (manual ``syrup image set`` or a poll result)."""
    body: dict[str, Any] = {"image": image, "tag": tag}
    if digest:
        body["digest"] = digest
    if id:
        body["id"] = id
    return parse(orjson.dumps(body), where=where)[0]


def _field(body: Mapping[str, Any], key: str, *, where: str, required: bool = True) -> Any:
    value = body.get(key)
    if required and (value is None or value == ""):
        raise InvalidInput("is missing", where=f"{where}.{key}")
    return value


def _string(value: Any, *, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput("must be a string", where=where)
    return value


def _object(value: Any, *, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput("must be an object", where=where)
    return value


def _tag(value: Any, *, where: str) -> str | None:
    if value in (None, ""):
        return None
    return refs.check_tag(_string(value, where=where), where=where)


def _digest(value: Any, *, where: str) -> str | None:
    if value in (None, ""):
        return None
    return refs.check_digest(_string(value, where=where), where=where)


def _action(text: str) -> Action:
    lowered = text.lower()
    if lowered in ("push", "pushed", "published", "updated"):
        return Action.PUSH
    if lowered in ("delete", "deleted"):
        return Action.DELETE
    return Action.OTHER


def _parse_ecr(body: Mapping[str, Any], *, where: str, fallback_id: str) -> ImageEvent:
    detail = _object(_field(body, "detail", where=where), where=f"{where}.detail")
    account = _string(_field(body, "account", where=where), where=f"{where}.account")
    region = _string(_field(body, "region", where=where), where=f"{where}.region")
    name = _string(
        _field(detail, "repository-name", where=f"{where}.detail"),
        where=f"{where}.detail.repository-name",
    )
    host = f"{account}.dkr.ecr.{region}.amazonaws.com"
    action = _string(
        _field(detail, "action-type", where=f"{where}.detail"), where=f"{where}.detail.action-type"
    )
    result = detail.get("result", "SUCCESS")
    return ImageEvent(
        id=str(body.get("id") or fallback_id),
        format=EventFormat.ECR,
        action=_action(action),
        succeeded=result == "SUCCESS",
        repository=refs.parse_repository(f"{host}/{name}", where=f"{where}.detail.repository-name"),
        tag=_tag(detail.get("image-tag"), where=f"{where}.detail.image-tag"),
        digest=_digest(detail.get("image-digest"), where=f"{where}.detail.image-digest"),
        repository_name=name,
    )


def _parse_distribution(body: Mapping[str, Any], *, where: str) -> list[ImageEvent]:
    items = body["events"]
    if not isinstance(items, list) or not items:
        raise InvalidInput("must be a non-empty list", where=f"{where}.events")
    parsed = []
    for index, raw in enumerate(items):
        at = f"{where}.events[{index}]"
        item = _object(raw, where=at)
        target = _object(_field(item, "target", where=at), where=f"{at}.target")
        name = _string(_field(target, "repository", where=f"{at}.target"), where=f"{at}.target")
        request = item.get("request")
        host = (request.get("host") if isinstance(request, dict) else None) or urlsplit(
            str(target.get("url", ""))
        ).netloc
        if not host:
            raise InvalidInput("has neither request.host nor target.url", where=at)
        parsed.append(
            ImageEvent(
                id=_string(_field(item, "id", where=at), where=f"{at}.id"),
                format=EventFormat.DISTRIBUTION,
                action=_action(_string(_field(item, "action", where=at), where=f"{at}.action")),
                succeeded=True,
                repository=refs.parse_repository(f"{host}/{name}", where=f"{at}.target.repository"),
                tag=_tag(target.get("tag"), where=f"{at}.target.tag"),
                digest=_digest(target.get("digest"), where=f"{at}.target.digest"),
                repository_name=name,
            )
        )
    return parsed


def _parse_docker_hub(body: Mapping[str, Any], *, where: str, fallback_id: str) -> ImageEvent:
    push = _object(body["push_data"], where=f"{where}.push_data")
    repository = _object(_field(body, "repository", where=where), where=f"{where}.repository")
    name = _string(
        _field(repository, "repo_name", where=f"{where}.repository"),
        where=f"{where}.repository.repo_name",
    )
    return ImageEvent(
        id=fallback_id,
        format=EventFormat.DOCKER_HUB,
        action=Action.PUSH,
        succeeded=True,
        repository=refs.parse_repository(name, where=f"{where}.repository.repo_name"),
        tag=_tag(push.get("tag"), where=f"{where}.push_data.tag"),
        digest=None,
        repository_name=name,
    )


def _parse_github(body: Mapping[str, Any], *, where: str, fallback_id: str) -> ImageEvent:
    at = f"{where}.registry_package"
    package = _object(body["registry_package"], where=at)
    version = _object(_field(package, "package_version", where=at), where=f"{at}.package_version")
    metadata = version.get("container_metadata") or {}
    tag_info = metadata.get("tag") if isinstance(metadata, dict) else None
    tag_info = tag_info if isinstance(tag_info, dict) else {}
    owner_info = package.get("owner")
    owner = package.get("namespace") or (
        owner_info.get("login") if isinstance(owner_info, dict) else None
    )
    name = _string(_field(package, "name", where=at), where=f"{at}.name")
    if not owner:
        raise InvalidInput("is missing", where=f"{at}.namespace")
    path = f"{str(owner).lower()}/{name.lower()}"
    # The same webhook announces npm, Maven... packages; only containers are images.
    kind = str(package.get("package_type") or package.get("ecosystem") or "CONTAINER")
    action = _action(str(body.get("action", "published")))
    return ImageEvent(
        id=fallback_id,
        format=EventFormat.GITHUB,
        action=action if kind.upper() == "CONTAINER" else Action.OTHER,
        succeeded=True,
        repository=refs.parse_repository(f"ghcr.io/{path}", where=f"{at}.name"),
        tag=_tag(tag_info.get("name"), where=f"{at}.package_version.container_metadata.tag.name"),
        digest=_digest(
            tag_info.get("digest"), where=f"{at}.package_version.container_metadata.tag.digest"
        ),
        repository_name=path,
    )


def _parse_plain(body: Mapping[str, Any], *, where: str, fallback_id: str) -> ImageEvent:
    image = _string(body["image"], where=f"{where}.image")
    repository = refs.parse_repository(image, where=f"{where}.image")
    return ImageEvent(
        id=str(body.get("id") or fallback_id),
        format=_plain_format(body),
        action=_action(str(body.get("action", "push"))),
        succeeded=True,
        repository=repository,
        tag=_tag(body.get("tag"), where=f"{where}.tag"),
        digest=_digest(body.get("digest"), where=f"{where}.digest"),
        repository_name=repository.path,
    )


def _plain_format(body: Mapping[str, Any]) -> EventFormat:
    return EventFormat.POLL if str(body.get("id", "")).startswith("poll-") else EventFormat.PLAIN
