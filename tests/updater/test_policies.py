"""Tag policies: ranges, orderings, filters with extract, and never going backwards."""

from __future__ import annotations

import pytest

from syrup.errors import ConfigError
from syrup.updater import policies

TAGS = ["0.9.0", "1.0.0", "1.0.5", "1.2.0", "1.10.0", "v1.11.0", "2.0.0-rc.1", "2.0.0", "latest"]


@pytest.mark.parametrize(
    ("range_", "newest"),
    [
        (None, "2.0.0"),
        ("^1.0", "v1.11.0"),
        ("~1.0", "1.0.5"),
        ("1.x", "v1.11.0"),
        (">=1.0.0 <1.10.0", "1.2.0"),
        ("<1.0.0 || 1.2.x", "1.2.0"),
        ("=1.0.0", "1.0.0"),
        (">=2.0.0-0", "2.0.0"),
        (">3", None),
    ],
)
def test_semver_chooses_the_newest_tag_in_the_range(range_: str | None, newest: str | None) -> None:
    assert policies.compile_policy(ordering="semver", range=range_).newest(TAGS) == newest


def test_semver_skips_pre_releases_unless_the_range_names_one() -> None:
    tags = ["1.0.0", "1.1.0-rc.1"]
    assert policies.compile_policy(ordering="semver").newest(tags) == "1.0.0"
    assert (
        policies.compile_policy(ordering="semver", range=">=1.1.0-0").newest(tags) == "1.1.0-rc.1"
    )


@pytest.mark.parametrize(
    ("ordering", "direction", "tags", "newest"),
    [
        ("numerical", "asc", ["9", "10", "100", "x"], "100"),
        ("numerical", "desc", ["9", "10", "100"], "9"),
        ("alphabetical", "asc", ["9", "10", "100"], "9"),
        ("alphabetical", "desc", ["b", "a", "c"], "a"),
    ],
)
def test_numerical_and_alphabetical_orders(
    ordering: str, direction: str, tags: list[str], newest: str
) -> None:
    policy = policies.compile_policy(ordering=ordering, direction=direction)
    assert policy.newest(tags) == newest


def test_a_regex_filter_extracts_the_compared_part_as_flux_does() -> None:
    policy = policies.compile_policy(
        ordering="numerical", pattern=r"^main-[a-f0-9]+-(?P<ts>\d+)$", extract="$ts"
    )
    tags = ["main-abc123-1700000100", "main-def456-1700000050", "dev-aaa-1800000000"]
    assert policy.newest(tags) == "main-abc123-1700000100"
    assert policy.is_older("main-abc123-1700000100", "main-fff000-1700000000")
    assert policy.is_older("main-abc123-1700000100", "dev-aaa-1800000000")


@pytest.mark.parametrize(
    ("current", "candidate", "older"),
    [
        ("42", "41", True),
        ("42", "43", False),
        ("1.2.0", "1.10.0", False),
        ("1.10.0", "1.9.9", True),
        ("old-image-tag", "98", False),
        ("latest", "1.0.0", False),
    ],
)
def test_the_default_policy_compares_like_with_like_and_otherwise_trusts_push_order(
    current: str, candidate: str, older: bool
) -> None:
    assert policies.Policy().is_older(current, candidate) is older


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ordering": "newest"}, "policy"),
        ({"ordering": "semver", "range": "soonish"}, "policy.range"),
        ({"pattern": "(unclosed"}, "policy.pattern"),
    ],
)
def test_a_bad_policy_is_a_config_error_naming_the_key(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        policies.compile_policy(**kwargs)
