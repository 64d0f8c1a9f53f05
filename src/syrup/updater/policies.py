"""Tag policies: which tags are eligible and which of two tags is newer.

Modelled on Flux's ImagePolicy: an optional regex filter with an ``extract`` template
(``$name``, ``${name}`` or ``$1`` for a capture group) turns a tag into the value that is
compared, then one ordering chooses the newest:

* ``semver`` with an optional range (``>=1.2.0 <2.0.0``, ``^1.2``, ``~1.2.3``, ``1.x``,
  alternatives joined by ``||``); a leading ``v`` is accepted; pre-releases are eligible only
  when the range names one (as the Masterminds library Flux uses);
* ``numerical`` (``asc``: the highest number is newest; ``desc``: the lowest);
* ``alphabetical`` (same meaning of ``asc``/``desc``, as Flux).

``auto`` is the default for push events: two tags that are both integers, or both semver
versions, are compared as such; otherwise push order decides (the later push wins). This is
what lets the updater refuse to write ``41`` over ``42`` when events arrive out of order
while still accepting ``old-image-tag`` → ``98``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

import semver

from syrup.errors import ConfigError


class Ordering(enum.StrEnum):
    AUTO = "auto"
    SEMVER = "semver"
    NUMERICAL = "numerical"
    ALPHABETICAL = "alphabetical"


class Direction(enum.StrEnum):
    ASC = "asc"
    DESC = "desc"


Key = tuple[int, semver.Version | float | str]


@dataclass(frozen=True)
class Policy:
    """A compiled policy; build it with :func:`compile_policy`."""

    ordering: Ordering = Ordering.AUTO
    direction: Direction = Direction.ASC
    range: str | None = None
    pattern: re.Pattern[str] | None = None
    extract: str | None = None

    def value(self, tag: str) -> str | None:
        """The part of the tag that is compared, or None when the filter rejects the tag."""
        if self.pattern is None:
            return tag
        match = self.pattern.search(tag)
        if match is None:
            return None
        if not self.extract:
            return tag
        return _expand(self.extract, match)

    def key(self, tag: str) -> Key | None:
        """A sort key (bigger is newer), or None when the tag is not eligible."""
        value = self.value(tag)
        if value is None:
            return None
        if self.ordering is Ordering.SEMVER:
            version = _semver(value)
            if version is None or not _in_range(version, self.range):
                return None
            # As Masterminds semver (Flux): pre-releases only when the range asks for them.
            if version.prerelease and "-" not in (self.range or ""):
                return None
            return (0, version)
        if self.ordering is Ordering.NUMERICAL:
            try:
                number = float(value)
            except ValueError:
                return None
            return (0, number if self.direction is Direction.ASC else -number)
        if self.ordering is Ordering.ALPHABETICAL:
            return (0, value)
        return None

    def eligible(self, tag: str) -> bool:
        return self.ordering is Ordering.AUTO or self.key(tag) is not None

    def newest(self, tags: Iterable[str]) -> str | None:
        """The newest eligible tag, or None."""
        keyed = [(key, tag) for tag in tags if (key := self.key(tag)) is not None]
        if not keyed:
            return None
        if self.ordering is Ordering.ALPHABETICAL and self.direction is Direction.DESC:
            return min(keyed)[1]
        return max(keyed)[1]

    def is_older(self, current: str, candidate: str) -> bool:
        """True when ``candidate`` is older than ``current`` (or not eligible): never write it."""
        if self.ordering is Ordering.AUTO:
            return _auto_older(current, candidate)
        candidate_key = self.key(candidate)
        if candidate_key is None:
            return True
        current_key = self.key(current)
        if current_key is None:
            return False
        if self.ordering is Ordering.ALPHABETICAL and self.direction is Direction.DESC:
            return candidate_key > current_key
        return candidate_key < current_key


def compile_policy(
    *,
    ordering: str = "auto",
    direction: str = "asc",
    range: str | None = None,
    pattern: str | None = None,
    extract: str | None = None,
    where: str = "policy",
) -> Policy:
    """Validate and compile a policy; errors name ``where``."""
    try:
        parsed_ordering = Ordering(ordering)
        parsed_direction = Direction(direction)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from error
    compiled = None
    if pattern is not None:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ConfigError(f"{where}.pattern: invalid regex ({error})") from error
    if range is not None:
        try:
            _parse_range(range)
        except ValueError as error:
            raise ConfigError(f"{where}.range: {error}") from error
    return Policy(
        ordering=parsed_ordering,
        direction=parsed_direction,
        range=range,
        pattern=compiled,
        extract=extract,
    )


def _expand(template: str, match: re.Match[str]) -> str:
    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        group = match.group(int(name) if name.isdigit() else name)
        return group or ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, template)


def _semver(text: str) -> semver.Version | None:
    text = text[1:] if text[:1] in ("v", "V") else text
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except ValueError:
        return None


def _auto_older(current: str, candidate: str) -> bool:
    if current.isdigit() and candidate.isdigit():
        return int(candidate) < int(current)
    current_version, candidate_version = _semver(current), _semver(candidate)
    if current_version is not None and candidate_version is not None and "." in current:
        return candidate_version < current_version
    return False


# -- semver ranges -------------------------------------------------------------------------

Bound = tuple[str, semver.Version]
_COMPARATOR = re.compile(
    r"(\^|~|>=|<=|>|<|=)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2}(?:-[0-9A-Za-z.-]+)?)"
)


def _parse_range(text: str) -> list[list[Bound]]:
    """Parse ``a || b`` alternatives of space- or comma-separated comparators into bounds."""
    alternatives = []
    for alternative in text.split("||"):
        bounds: list[Bound] = []
        for token in re.findall(r"(?:\^|~|>=|<=|>|<|=)?\s*[^\s,|]+", alternative):
            match = _COMPARATOR.fullmatch(token.strip())
            if match is None:
                raise ValueError(f"cannot read {token.strip()!r} as a version constraint")
            bounds.extend(_bounds(match.group(1) or "=", match.group(2)))
        if not bounds:
            raise ValueError(f"empty constraint in {text!r}")
        alternatives.append(bounds)
    return alternatives


def _bounds(operator: str, version: str) -> list[Bound]:
    core, _, pre = version.partition("-")
    parts = core.split(".")
    wild = next((i for i, part in enumerate(parts) if part in ("x", "X", "*")), len(parts))
    numbers = [int(part) for part in parts[:wild]] + [0] * (3 - wild)
    exact = wild == 3 and len(parts) == 3
    low = semver.Version(numbers[0], numbers[1], numbers[2], prerelease=pre or None)
    given = min(wild, len(parts))

    if operator == "^":
        first = next((i for i, n in enumerate(numbers[:given]) if n != 0), max(given - 1, 0))
        return [(">=", low), ("<", _bump(numbers, first))]
    if operator == "~":
        return [(">=", low), ("<", _bump(numbers, 1 if given >= 2 else 0))]
    if operator == "=" and not exact:
        return [(">=", low), ("<", _bump(numbers, max(given - 1, 0)))] if given else []
    return [(operator, low)]


def _bump(numbers: list[int], index: int) -> semver.Version:
    bumped = [*numbers[:index], numbers[index] + 1] + [0] * (2 - index)
    return semver.Version(bumped[0], bumped[1], bumped[2], prerelease="0")


def _in_range(version: semver.Version, text: str | None) -> bool:
    if not text:
        return True
    for bounds in _parse_range(text):
        if all(_compare(version, operator, bound) for operator, bound in bounds):
            return True
    return False


def _compare(version: semver.Version, operator: str, bound: semver.Version) -> bool:
    order = version.compare(bound)
    return {
        ">=": order >= 0,
        "<=": order <= 0,
        ">": order > 0,
        "<": order < 0,
        "=": order == 0,
    }[operator]
