"""Write-back: one commit per event, pushed, exactly once, re-applied on a moved branch."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from syrup.updater import updating
from syrup.updater.store import EventState

from .conftest import git, log_messages, make_remote, make_repo, show

HOST = "registry.example.com"
DEPLOY = (
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n"
    "    spec:\n      containers:\n      - name: {name}\n"
    "        image: registry.example.com/team/{name}:{tag}  # bumped by a bot\n"
)
VALUES = 'image:\n  repository: registry.example.com/team/api\n  tag: "{tag}"\n'


def event(name: str, tag: str, *, id: str | None = None) -> bytes:
    body = {"image": f"{HOST}/team/{name}", "tag": tag}
    if id:
        body["id"] = id
    return json.dumps(body).encode()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(
        tmp_path,
        {
            "apps/api/deploy.yaml": DEPLOY.format(name="api", tag="10"),
            "apps/api/values.yaml": VALUES.format(tag="10"),
            "apps/web/deploy.yaml": DEPLOY.format(name="web", tag="5"),
            "README.md": "not yaml\n",
        },
    )


def configured(remote: Path, **extra: object) -> dict[str, object]:
    return {"repos": [{"url": str(remote), "branch": "main", "paths": ["apps/"]}], **extra}


def test_one_event_makes_one_pushed_commit_with_every_changed_file(
    remote: Path, make_updater
) -> None:
    pushed: list[tuple[str, str, str]] = []
    updater = make_updater(
        configured(remote, identity={"name": "Bot", "email": "bot@example.invalid"}),
        on_pushed=lambda url, branch, sha: pushed.append((url, branch, sha)),
    )
    [row] = updater.receive(event("api", "11", id="evt-1"), source="test")
    final = updater.process(row.id)

    assert final.state is EventState.COMMITTED
    assert sorted(final.files) == ["apps/api/deploy.yaml", "apps/api/values.yaml"]
    head = git("rev-parse", "main", cwd=remote).strip()
    assert final.shas == (head,)
    assert pushed == [(str(remote), "main", head)]
    assert log_messages(remote)[0] == (
        "Automated commit by image push (team/api:11)\n\nSyrup-Image-Event: evt-1"
    )
    assert git("log", "-1", "--format=%an <%ae> / %cn <%ce>", cwd=remote).strip() == (
        "Bot <bot@example.invalid> / Bot <bot@example.invalid>"
    )
    assert show(remote, "apps/api/values.yaml") == VALUES.format(tag="11").encode()
    assert show(remote, "apps/web/deploy.yaml") == DEPLOY.format(name="web", tag="5").encode()


def test_a_redelivered_event_or_a_tag_already_in_git_makes_no_commit(
    remote: Path, make_updater
) -> None:
    updater = make_updater(configured(remote))
    [first] = updater.receive(event("api", "11", id="evt-1"), source="test")
    updater.process(first.id)
    [again] = updater.receive(event("api", "11", id="evt-1"), source="test")
    assert updater.process(again.id).state is EventState.COMMITTED
    [same_tag] = updater.receive(event("api", "11", id="evt-2"), source="test")
    final = updater.process(same_tag.id)

    assert final.state is EventState.UNCHANGED
    assert "already in Git" in final.detail
    assert len(log_messages(remote)) == 2


def test_an_unknown_repository_is_recorded_as_no_match(remote: Path, make_updater) -> None:
    updater = make_updater(configured(remote))
    [row] = updater.receive(event("unknown", "1"), source="test")
    final = updater.process(row.id)
    assert final.state is EventState.NO_MATCH
    assert updater.store.select(states=[EventState.NO_MATCH])[0].id == row.id
    assert len(log_messages(remote)) == 1


def test_a_file_that_does_not_parse_is_skipped_and_the_rest_of_the_event_applies(
    tmp_path: Path, make_updater
) -> None:
    remote = make_remote(
        tmp_path,
        {
            "apps/api/deploy.yaml": DEPLOY.format(name="api", tag="10"),
            "apps/api/broken.yaml": "image: registry.example.com/team/api:10\n  bad: [\n",
        },
    )
    updater = make_updater(configured(remote))
    [row] = updater.receive(event("api", "11"), source="test")
    final = updater.process(row.id)

    assert final.state is EventState.COMMITTED
    assert final.files == ("apps/api/deploy.yaml",)
    [warning] = final.outcomes[0].warnings
    assert "apps/api/broken.yaml:2" in warning


def test_an_older_tag_is_not_written_by_the_default_policy(remote: Path, make_updater) -> None:
    updater = make_updater(configured(remote))
    [row] = updater.receive(event("api", "9"), source="test")
    final = updater.process(row.id)
    assert final.state is EventState.UNCHANGED
    assert "older" in final.detail


@pytest.mark.parametrize(
    ("policy", "tag", "state"),
    [
        ({"ordering": "semver", "range": ">=10.0.0 <12.0.0"}, "11.0.0", EventState.COMMITTED),
        ({"ordering": "semver", "range": ">=10.0.0 <12.0.0"}, "12.0.0", EventState.UNCHANGED),
        ({"ordering": "numerical"}, "9", EventState.UNCHANGED),
        (
            {"ordering": "numerical", "pattern": r"^b-(?P<n>\d+)$", "extract": "$n"},
            "c-30",
            EventState.UNCHANGED,
        ),
        ({"ordering": "alphabetical"}, "1", EventState.UNCHANGED),
        ({"ordering": "alphabetical"}, "9", EventState.COMMITTED),
    ],
)
def test_the_images_policy_decides_what_is_newer(
    remote: Path, make_updater, policy: dict[str, str], tag: str, state: EventState
) -> None:
    updater = make_updater(
        configured(remote, images=[{"image": f"{HOST}/team/api", "policy": policy}])
    )
    [row] = updater.receive(event("api", tag), source="test")
    assert updater.process(row.id).state is state


def test_a_push_rejected_because_the_branch_moved_is_re_applied_to_the_new_head(
    tmp_path: Path, remote: Path, make_updater
) -> None:
    updater = make_updater(configured(remote))
    [warm] = updater.receive(event("web", "6"), source="test")
    updater.process(warm.id)

    # Someone else pushes a change to the same file while the updater's clone is stale.
    other = tmp_path / "other"
    git("clone", "-q", str(remote), str(other), cwd=tmp_path)
    (other / "apps/api/deploy.yaml").write_text(
        "# owned by team api\n" + DEPLOY.format(name="api", tag="10")
    )
    git("-c", "user.name=o", "-c", "user.email=o@o", "commit", "-qam", "comment", cwd=other)
    git("push", "-q", "origin", "main", cwd=other)

    # The cached clone is re-synced before the edit, so make the race real: move the branch
    # between the updater's fetch and its push with a hook that fires once.
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n"
        f"if [ ! -e {tmp_path}/raced ]; then touch {tmp_path}/raced;"
        f" cd {other} && git -c user.name=o -c user.email=o@o commit -q --allow-empty -m racing"
        " && git push -q origin main; fi\n"
    )
    hook.chmod(0o755)
    [row] = updater.receive(event("api", "11"), source="test")
    final = updater.process(row.id)

    assert final.state is EventState.COMMITTED, final.detail
    assert (tmp_path / "raced").exists()
    assert (
        show(remote, "apps/api/deploy.yaml")
        == ("# owned by team api\n" + DEPLOY.format(name="api", tag="11")).encode()
    )
    assert [m.splitlines()[0] for m in log_messages(remote)][:3] == [
        "Automated commit by image push (team/api:11)",
        "racing",
        "comment",
    ]


def test_after_the_configured_attempts_the_event_is_failed_kept_and_retried_later(
    remote: Path, make_updater
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'denied by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    updater = make_updater(configured(remote, push={"attempts": 2, "backoff_seconds": 0}))
    [row] = updater.receive(event("api", "11"), source="test")
    failed = updater.process(row.id)
    assert failed.state is EventState.FAILED
    assert "gave up after 2 push attempts" in failed.detail
    assert [r.id for r in updater.store.select(states=[EventState.FAILED])] == [row.id]

    hook.unlink()
    retried = updater.retry(row.id)
    assert retried.state is EventState.COMMITTED
    assert retried.attempts == 2
    assert len(log_messages(remote)) == 2


def test_two_updaters_racing_on_one_bare_repo_both_commit_in_order_and_lose_nothing(
    tmp_path: Path, remote: Path, make_updater
) -> None:
    # Hold both pushes in the remote until both have arrived, so they truly race.
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f"touch {tmp_path}/arrived.$$\n"
        "i=0\n"
        f'while [ "$(ls {tmp_path} | grep -c arrived)" -lt 2 ] && [ $i -lt 100 ]; do'
        " sleep 0.05; i=$((i+1)); done\n"
    )
    hook.chmod(0o755)
    first = make_updater(configured(remote), name="first")
    second = make_updater(configured(remote), name="second")
    [api] = first.receive(event("api", "11", id="api-11"), source="test")
    [web] = second.receive(event("web", "6", id="web-6"), source="test")

    results = {}
    threads = [
        threading.Thread(target=lambda: results.setdefault("api", first.process(api.id))),
        threading.Thread(target=lambda: results.setdefault("web", second.process(web.id))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results["api"].state is EventState.COMMITTED, results["api"].detail
    assert results["web"].state is EventState.COMMITTED, results["web"].detail
    trailers = [m.splitlines()[-1] for m in log_messages(remote)[:2]]
    assert sorted(trailers) == ["Syrup-Image-Event: api-11", "Syrup-Image-Event: web-6"]
    assert git("rev-list", "--count", "main", cwd=remote).strip() == "3"
    assert show(remote, "apps/api/deploy.yaml") == DEPLOY.format(name="api", tag="11").encode()
    assert show(remote, "apps/web/deploy.yaml") == DEPLOY.format(name="web", tag="6").encode()


def test_events_for_one_repo_are_applied_in_arrival_order(remote: Path, make_updater) -> None:
    updater = make_updater(configured(remote))
    for tag in ("11", "12", "13"):
        updater.receive(event("api", tag), source="test")
    finals = updater.process_pending()
    assert [row.event.tag for row in finals] == ["11", "12", "13"]
    assert [m.splitlines()[0] for m in log_messages(remote)][:3] == [
        f"Automated commit by image push (team/api:{tag})" for tag in ("13", "12", "11")
    ]


def test_a_local_checkout_is_edited_in_place_without_committing_other_changes(
    tmp_path: Path, make_updater
) -> None:
    repo = make_repo(tmp_path / "checkout", {"deploy.yaml": DEPLOY.format(name="api", tag="1")})
    (tmp_path / "checkout" / "notes.yaml").write_text("untracked: true\n")
    updater = make_updater()
    target = updating.RepoTarget(url=str(repo), push=False)
    [row] = updater.receive(event("api", "2"), source="test", target=target)
    final = updater.process(row.id)
    assert final.state is EventState.COMMITTED
    assert git("status", "--porcelain", cwd=repo) == "?? notes.yaml\n"
    assert git("show", "--name-only", "--format=", "HEAD", cwd=repo).split() == ["deploy.yaml"]


@pytest.mark.parametrize(
    ("paths", "changed"),
    [
        ((), ["apps/api/deploy.yaml", "other/api.yaml"]),
        (("apps/",), ["apps/api/deploy.yaml"]),
        (("apps",), ["apps/api/deploy.yaml"]),
        (("**/api.yaml",), ["other/api.yaml"]),
        (("apps/*/deploy.yaml", "other/"), ["apps/api/deploy.yaml", "other/api.yaml"]),
        (("nothing/",), []),
    ],
)
def test_only_files_under_the_configured_paths_are_edited(
    tmp_path: Path, make_updater, paths: tuple[str, ...], changed: list[str]
) -> None:
    api = DEPLOY.format(name="api", tag="1")
    repo = make_repo(tmp_path / "repo", {"apps/api/deploy.yaml": api, "other/api.yaml": api})
    updater = make_updater()
    target = updating.RepoTarget(url=str(repo), paths=paths, commit=False)
    [row] = updater.receive(event("api", "2"), source="test", target=target)
    assert sorted(updater.process(row.id).files) == changed


def test_a_configured_host_alias_matches_references_written_with_it(
    tmp_path: Path, make_updater
) -> None:
    remote = make_remote(
        tmp_path,
        {"deploy.yaml": "containers:\n- image: mirror.internal:5000/team/api:10\n"},
    )
    updater = make_updater(
        {
            "repos": [{"url": str(remote)}],
            "registries": [{"host": HOST, "aliases": ["mirror.internal:5000"]}],
        }
    )
    [row] = updater.receive(event("api", "11"), source="test")
    assert updater.process(row.id).state is EventState.COMMITTED
    assert (
        show(remote, "deploy.yaml") == b"containers:\n- image: mirror.internal:5000/team/api:11\n"
    )
