"""status.history: ids, limits, the stored shape, and choosing a rollback."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from syrup import errors
from syrup.gitops import history

T0 = dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC)
SOURCE = {"repoURL": "https://github.com/acme/apps", "path": "web", "targetRevision": "HEAD"}


def deployed(n: int, *, limit: int = 10) -> list[history.Entry]:
    out: list[history.Entry] = []
    for i in range(n):
        out = history.record(
            out,
            revision=f"rev{i}",
            source=SOURCE,
            initiated_by=history.Initiator(automated=True),
            deployed_at=T0 + dt.timedelta(minutes=i),
            limit=limit,
        )
    return out


@pytest.mark.parametrize(
    ("syncs", "limit", "ids"),
    [(1, 10, [0]), (3, 10, [0, 1, 2]), (12, 10, list(range(2, 12))), (5, 2, [3, 4]), (3, 0, [])],
)
def test_history_keeps_the_newest_entries_up_to_the_limit(
    syncs: int, limit: int, ids: list[int]
) -> None:
    assert [e.id for e in deployed(syncs, limit=limit)] == ids


def test_entries_are_stored_in_argo_cds_shape_and_read_back() -> None:
    entries = history.record(
        [],
        revision="abc",
        source=SOURCE,
        initiated_by=history.Initiator(username="alice"),
        deployed_at=T0,
        started_at=T0 - dt.timedelta(seconds=2),
    )
    stored = history.to_json(entries)
    assert stored == [
        {
            "id": 0,
            "revision": "abc",
            "source": SOURCE,
            "deployedAt": "2026-12-03T18:00:00Z",
            "deployStartedAt": "2026-12-03T17:59:58Z",
            "initiatedBy": {"username": "alice"},
        }
    ]
    assert history.parse(stored) == entries


def test_ids_keep_growing_after_old_entries_are_trimmed() -> None:
    entries = deployed(3, limit=2)
    more = history.record(
        entries,
        revision="x",
        source=SOURCE,
        initiated_by=history.Initiator(),
        deployed_at=T0,
        limit=2,
    )
    assert [e.id for e in more] == [2, 3]


@pytest.mark.parametrize(
    ("spec", "limit"),
    [({}, 10), ({"revisionHistoryLimit": 3}, 3), ({"revisionHistoryLimit": 0}, 0)],
)
def test_the_limit_defaults_to_ten(spec: dict[str, Any], limit: int) -> None:
    assert history.limit_of(spec) == limit


@pytest.mark.parametrize("raw", [-1, "3", True])
def test_a_bad_limit_is_an_error_naming_the_field(raw: Any) -> None:
    with pytest.raises(errors.InvalidInput, match=r"spec\.revisionHistoryLimit"):
        history.limit_of({"revisionHistoryLimit": raw})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ("x", "status.history: expected a list"),
        ([{"id": "1"}], "status.history[0]"),
        ([{"id": 1, "deployedAt": "yesterday"}], "status.history[0].deployedAt"),
    ],
)
def test_bad_stored_history_is_an_error_naming_the_entry(raw: Any, where: str) -> None:
    with pytest.raises(errors.InvalidInput) as info:
        history.parse(raw)
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("automated", "paused", "pause", "outcome"),
    [
        (False, False, False, "apply"),
        (True, False, False, "refused"),
        (True, False, True, "apply+pause"),
        (True, True, False, "apply"),
        (True, True, True, "apply"),
        (False, False, True, "apply"),
    ],
)
def test_rollback_with_automation_on_needs_the_pause_flag(
    automated: bool, paused: bool, pause: bool, outcome: str
) -> None:
    entries = deployed(3)
    if outcome == "refused":
        with pytest.raises(history.RollbackRefused, match="automated sync is enabled"):
            history.plan_rollback(entries, id=0, automated=automated, paused=paused, pause=pause)
        return
    plan = history.plan_rollback(entries, id=0, automated=automated, paused=paused, pause=pause)
    assert plan.entry.revision == "rev0"
    assert plan.pause is (outcome == "apply+pause")


def test_rolling_back_to_an_unknown_id_lists_the_known_ones() -> None:
    with pytest.raises(
        history.RollbackRefused, match=r"no history entry with id 7 \(known ids: 0, 1\)"
    ):
        history.plan_rollback(deployed(2), id=7, automated=False, paused=False)


def test_the_pause_is_recorded_in_status_and_cleared_on_resume() -> None:
    patch = history.pause_patch(paused=True, reason="rollback to 0")
    assert history.is_paused(patch["status"])
    assert not history.is_paused(history.pause_patch(paused=False)["status"])


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (None, None),
        ({"sync": {}}, None),
        ({"rollback": {"id": 3}}, history.RollbackRequest(id=3, pause=False)),
        (
            {"rollback": {"id": 0, "pauseAutomation": True}},
            history.RollbackRequest(id=0, pause=True),
        ),
    ],
)
def test_a_rollback_is_requested_through_the_operation_field(
    operation: dict[str, Any] | None, expected: history.RollbackRequest | None
) -> None:
    assert history.rollback_request({"operation": operation}) == expected


@pytest.mark.parametrize(
    ("operation", "where"),
    [
        ({"rollback": 3}, "operation.rollback: expected a map"),
        ({"rollback": {"id": "3"}}, "operation.rollback.id"),
        ({"rollback": {"id": 1, "pauseAutomation": "yes"}}, "operation.rollback.pauseAutomation"),
    ],
)
def test_a_bad_rollback_request_names_the_field(operation: dict[str, Any], where: str) -> None:
    with pytest.raises(history.RollbackRefused) as info:
        history.rollback_request({"operation": operation})
    assert where in str(info.value)


def test_resuming_is_asked_for_with_an_annotation() -> None:
    assert history.resume_requested(
        {"metadata": {"annotations": {history.RESUME_ANNOTATION: "true"}}}
    )
    assert not history.resume_requested({"metadata": {}})
