"""Image references: parse them, validate tags and digests, and decide whether two name the
same repository.

Follows the grammar of the distribution project's ``reference`` package as documented for
``docker pull``: ``[host[:port]/]path[:tag][@digest]``. The first path component is a host
when it contains a ``.`` or a ``:`` or is ``localhost``; otherwise the image lives on Docker
Hub (``docker.io``), where a one-component name means ``library/<name>``. Tags follow the OCI
distribution spec (``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``); digests this updater writes are
``sha256:`` and 64 lowercase hex digits.

Host aliases let a team write one registry under several names (``index.docker.io`` and
``docker.io``, or a pull-through mirror); :func:`canonical` maps every alias to one host so
that matching compares like with like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from syrup.errors import InvalidInput

DOCKER_HUB = "docker.io"
BUILTIN_ALIASES: Mapping[str, str] = {
    "index.docker.io": DOCKER_HUB,
    "registry-1.docker.io": DOCKER_HUB,
    "registry.hub.docker.com": DOCKER_HUB,
}

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?"
)


@dataclass(frozen=True, order=True)
class Repository:
    """A repository in a registry, by host and path (``docker.io`` + ``library/nginx``)."""

    host: str
    path: str

    def __str__(self) -> str:
        return f"{self.host}/{self.path}"


@dataclass(frozen=True)
class Reference:
    """One image reference as written in a file: its repository, tag and digest."""

    name: str
    repository: Repository
    tag: str | None
    digest: str | None

    def with_version(self, *, tag: str | None, digest: str | None) -> str:
        """Return the reference text with the same name and a new tag and/or digest."""
        text = self.name
        if tag is not None:
            text += f":{tag}"
        if digest is not None:
            text += f"@{digest}"
        return text


def is_tag(text: str) -> bool:
    """Tell whether ``text`` satisfies the OCI tag grammar."""
    return _TAG.fullmatch(text) is not None


def is_digest(text: str) -> bool:
    """Tell whether ``text`` is a ``sha256:`` digest with 64 lowercase hex digits."""
    return _DIGEST.fullmatch(text) is not None


def check_tag(text: str, *, where: str) -> str:
    """Return ``text`` if it is a valid tag, else raise :class:`InvalidInput` naming ``where``."""
    if not is_tag(text):
        raise InvalidInput(f"{text!r} is not a valid image tag", where=where)
    return text


def check_digest(text: str, *, where: str) -> str:
    """Return ``text`` if it is a valid digest, else raise :class:`InvalidInput`."""
    if not is_digest(text):
        raise InvalidInput(f"{text!r} is not a sha256 digest", where=where)
    return text


def parse_repository(text: str, *, where: str = "image") -> Repository:
    """Parse a repository name without tag or digest (``host/path`` or a Docker Hub name)."""
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, components = parts[0].lower(), parts[1:]
        if not _HOST.fullmatch(host):
            raise InvalidInput(f"{text!r} has an invalid registry host", where=where)
    else:
        host, components = DOCKER_HUB, parts
    if not components or not all(_PATH_COMPONENT.fullmatch(c) for c in components):
        raise InvalidInput(f"{text!r} is not a valid repository name", where=where)
    if host == DOCKER_HUB and len(components) == 1:
        components = ["library", *components]
    return Repository(host=host, path="/".join(components))


def parse_reference(text: str, *, where: str = "image") -> Reference:
    """Parse ``[host/]path[:tag][@digest]``; raise :class:`InvalidInput` if it is not one."""
    name, _, digest = text.partition("@")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        check_tag(tag, where=where)
    if digest:
        check_digest(digest, where=where)
    return Reference(
        name=name, repository=parse_repository(name, where=where), tag=tag, digest=digest or None
    )


def try_reference(text: str) -> Reference | None:
    """Parse ``text`` as a reference, or return None when it is not one (no error)."""
    try:
        return parse_reference(text)
    except InvalidInput:
        return None


def canonical(repository: Repository, *, aliases: Mapping[str, str]) -> Repository:
    """Map the repository's host through the built-in and configured aliases."""
    host = aliases.get(repository.host, BUILTIN_ALIASES.get(repository.host, repository.host))
    return Repository(host=host, path=repository.path)
