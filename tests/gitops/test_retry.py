"""syncPolicy.retry: parsing and the backoff schedule, checked on recorded attempt times."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from syrup.gitops import retry


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("5s", 5), ("1m30s", 90), ("2m", 120), ("1h", 3600), ("250ms", 0.25), (7, 7), ("12", 12)],
)
def test_durations_read_as_go_durations_or_seconds(raw: Any, seconds: float) -> None:
    assert retry.parse_duration(raw, where="x") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("raw", "delays"),
    [
        ({"limit": 5}, [5, 10, 20, 40, 80]),
        (
            {"limit": 4, "backoff": {"duration": "1s", "factor": 3, "maxDuration": "10s"}},
            [1, 3, 9, 10],
        ),
        ({"limit": 3, "backoff": {"duration": "2m", "maxDuration": "3m"}}, [120, 180, 180]),
        ({"limit": 0}, []),
        ({"limit": "2", "backoff": {"duration": 1, "factor": 1}}, [1, 1]),
    ],
)
def test_the_schedule_grows_by_the_factor_and_stops_at_max_duration(
    raw: dict[str, Any], delays: list[float]
) -> None:
    policy = retry.parse(raw)
    assert policy is not None
    assert list(policy.schedule()) == pytest.approx(delays)


def test_a_negative_limit_retries_without_end() -> None:
    policy = retry.parse({"limit": -1, "backoff": {"duration": "1s", "maxDuration": "4s"}})
    assert policy is not None and policy.allows(10_000)
    assert list(policy.schedule(cap=5)) == [1, 2, 4, 4, 4]


def test_an_app_without_retry_is_not_retried() -> None:
    assert retry.parse(None) is None


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"limit": "many"}, "spec.syncPolicy.retry.limit"),
        (
            {"limit": 1, "backoff": {"duration": "5 seconds"}},
            "spec.syncPolicy.retry.backoff.duration",
        ),
        (
            {"limit": 1, "backoff": {"maxDuration": "-3m"}},
            "spec.syncPolicy.retry.backoff.maxDuration",
        ),
        ({"limit": 1, "backoff": {"factor": "x"}}, "spec.syncPolicy.retry.backoff.factor"),
        ({"limit": 1, "backoff": {"factor": 0.5}}, "spec.syncPolicy.retry.backoff.factor"),
        ({"limit": 1, "backoff": []}, "spec.syncPolicy.retry.backoff"),
    ],
)
def test_bad_retry_fields_are_errors_naming_the_field(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(retry.InvalidRetry, match=where.replace(".", r"\.")):
        retry.parse(raw)


def test_retries_back_off_as_configured_on_recorded_attempt_times() -> None:
    # Waits of 1s, 2s and 4s capped at 3s, run at a scale of 1/20.
    policy = retry.parse(
        {"limit": 3, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "3s"}}
    )
    scale = 0.05
    calls = 0

    async def failing() -> bool:
        nonlocal calls
        calls += 1
        return False

    attempts = asyncio.run(retry.run(failing, policy, clock=time.monotonic, scale=scale))
    assert [a.ok for a in attempts] == [False] * 4
    gaps = [(b.started - a.started) / scale for a, b in itertools.pairwise(attempts)]
    # Never earlier than configured; a loaded machine may only make a wait a little longer.
    for gap, wanted in zip(gaps, [1, 2, 3], strict=True):
        assert wanted * 0.98 <= gap <= wanted + 1.5
    assert calls == 4


def test_a_retry_that_succeeds_stops_the_schedule() -> None:
    policy = retry.parse({"limit": 5, "backoff": {"duration": "1ms"}})
    results = iter([False, True, False])

    async def flaky() -> bool:
        return next(results)

    attempts = asyncio.run(retry.run(flaky, policy, clock=time.monotonic))
    assert [a.ok for a in attempts] == [False, True]
