"""``syncPolicy.retry``: how often and how long to wait before re-running a failed sync.

Argo CD's shape (REFERENCE.md, "Automated sync: retry")::

    retry:
      limit: 5            # retries after the first attempt; a negative limit never stops
      backoff:
        duration: 5s      # first wait (a Go duration or a number of seconds)
        factor: 2         # each wait is the previous one times this
        maxDuration: 3m   # no wait is longer than this

The wait before retry ``n`` (0-based) is ``duration * factor**n`` capped at ``maxDuration``.
:class:`Policy` is pure; the controller asks it for the next wait and sleeps on its own clock,
which tests scale.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from syrup import errors

DEFAULT_DURATION = 5.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX = 180.0

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


class InvalidRetry(errors.InvalidInput):
    """A retry field that cannot be read."""


def parse_duration(raw: Any, *, where: str) -> float:
    """Seconds from a Go duration (``1m30s``) or a bare number of seconds."""
    if isinstance(raw, bool):
        raise InvalidRetry(f"expected a duration, got {raw!r}", where=where)
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    else:
        text = str(raw).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise InvalidRetry(
                    f"expected a duration such as 5s or 1m30s, got {raw!r}", where=where
                )
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0:
        raise InvalidRetry(f"a duration cannot be negative, got {raw!r}", where=where)
    return seconds


@dataclass(frozen=True)
class Policy:
    limit: int
    duration: float = DEFAULT_DURATION
    factor: float = DEFAULT_FACTOR
    max_duration: float = DEFAULT_MAX

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 is the first retry)."""
        return min(self.duration * self.factor**retry, self.max_duration)

    def allows(self, retry: int) -> bool:
        """Whether retry number ``retry`` (0-based) may run."""
        return self.limit < 0 or retry < self.limit

    def schedule(self, *, cap: int = 100) -> Iterator[float]:
        """The waits in order (at most ``cap`` of them for an unlimited policy)."""
        retry = 0
        while self.allows(retry) and retry < cap:
            yield self.delay(retry)
            retry += 1


def parse(raw: Mapping[str, Any] | None, *, where: str = "spec.syncPolicy.retry") -> Policy | None:
    """The policy, or None when the app has no ``retry`` (a failed sync is not retried)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidRetry("expected a map", where=where)
    limit_raw = raw.get("limit", 0)
    if isinstance(limit_raw, bool) or not isinstance(limit_raw, (int, str)):
        raise InvalidRetry(f"expected an integer, got {limit_raw!r}", where=f"{where}.limit")
    try:
        limit = int(limit_raw)
    except ValueError:
        raise InvalidRetry(
            f"expected an integer, got {limit_raw!r}", where=f"{where}.limit"
        ) from None

    backoff = raw.get("backoff")
    backoff = {} if backoff is None else backoff
    if not isinstance(backoff, Mapping):
        raise InvalidRetry("expected a map", where=f"{where}.backoff")
    bw = f"{where}.backoff"
    duration = parse_duration(backoff.get("duration", "5s"), where=f"{bw}.duration")
    max_duration = parse_duration(backoff.get("maxDuration", "3m"), where=f"{bw}.maxDuration")
    factor_raw = backoff.get("factor", DEFAULT_FACTOR)
    if isinstance(factor_raw, bool):
        raise InvalidRetry(f"expected a number, got {factor_raw!r}", where=f"{bw}.factor")
    try:
        factor = float(factor_raw)
    except (TypeError, ValueError):
        raise InvalidRetry(f"expected a number, got {factor_raw!r}", where=f"{bw}.factor") from None
    if factor < 1:
        raise InvalidRetry(f"factor must be at least 1, got {factor_raw!r}", where=f"{bw}.factor")
    return Policy(limit=limit, duration=duration, factor=factor, max_duration=max_duration)


@dataclass(frozen=True)
class Attempt:
    number: int
    started: float
    ok: bool


async def run(
    attempt: Callable[[], Awaitable[bool]],
    policy: Policy | None,
    *,
    clock: Callable[[], float],
    scale: float = 1.0,
) -> list[Attempt]:
    """Run ``attempt`` until it returns True or the policy gives up; the attempts made.

    ``scale`` multiplies every wait, so a test runs a minutes-long schedule in milliseconds
    while still checking the recorded gaps against the configured backoff.
    """
    history: list[Attempt] = []
    retry = 0
    while True:
        started = clock()
        ok = await attempt()
        history.append(Attempt(number=len(history), started=started, ok=ok))
        if ok or policy is None or not policy.allows(retry):
            return history
        await asyncio.sleep(policy.delay(retry) * scale)
        retry += 1
