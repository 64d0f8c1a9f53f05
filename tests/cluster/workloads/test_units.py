"""The pure parts of the simulation: pod lifecycle, rollout arithmetic, scheduling fit,
quantities, image references, settings and template hashing. No server needed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from syrup import errors
from syrup.cluster.workloads import (
    events,
    lifecycle,
    objects,
    pulls,
    quantity,
    rollout,
    scheduling,
    settings,
)
from tests.cluster.workloads.conftest import Registry

NOW = "2026-01-01T00:00:00Z"


def pod(
    *,
    annotations: dict[str, str] | None = None,
    restart: str = "Always",
    probe_delay: int | None = None,
    inits: int = 0,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if probe_delay is not None:
        container["readinessProbe"] = {"httpGet": {"port": 80}, "initialDelaySeconds": probe_delay}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart}
    if inits:
        spec["initContainers"] = [
            {"name": f"init-{i}", "image": "busybox:1.36"} for i in range(inits)
        ]
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "annotations": annotations or {}},
        "spec": spec,
    }


def advance(
    p: dict[str, Any], run: lifecycle.Run, elapsed: float, pull: lifecycle.Pull | None = None
) -> lifecycle.Step:
    return lifecycle.advance(
        p,
        run,
        elapsed=elapsed,
        pull=pull,
        pull_time=settings.PULL_SECONDS,
        now=NOW,
        pod_ip="10.244.0.2",
        host_ip="172.18.0.2",
    )


def walk(
    p: dict[str, Any], *, pull: lifecycle.Pull | None = None, steps: int = 12
) -> list[lifecycle.Step]:
    """Follow a pod's life, always waiting exactly as long as each step asks."""
    out = []
    run = lifecycle.Run()
    step = advance(p, run, 0.0)
    out.append(step)
    for _ in range(steps):
        if step.wait is None:
            break
        step = advance(p, step.run, step.wait, pull or lifecycle.Pull())
        out.append(step)
    return out


def test_a_pod_goes_from_container_creating_to_running_and_ready() -> None:
    first, second = walk(pod())[:2]
    assert first.status["phase"] == "Pending"
    assert first.status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    assert [e[1] for e in first.events] == ["Pulling"]
    assert second.status["phase"] == "Running"
    assert second.status["containerStatuses"][0]["ready"] is True
    assert [e[1] for e in second.events] == ["Pulled", "Created", "Started"]
    conditions = {c["type"]: c["status"] for c in second.status["conditions"]}
    assert conditions == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert second.status["podIP"] == "10.244.0.2" and second.status["qosClass"] == "BestEffort"
    assert second.wait is None


def test_readiness_waits_for_the_initial_delay() -> None:
    steps = walk(pod(probe_delay=30))
    running = steps[1]
    assert running.status["phase"] == "Running"
    assert running.status["containerStatuses"][0]["ready"] is False
    assert running.wait == 30
    assert steps[2].status["containerStatuses"][0]["ready"] is True


def test_init_containers_complete_in_order_before_the_app_starts() -> None:
    steps = walk(pod(inits=2))
    assert (
        steps[0].status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    )
    first_init = steps[1].status["initContainerStatuses"]
    assert [next(iter(s["state"])) for s in first_init] == ["running", "waiting"]
    second_init = steps[2].status["initContainerStatuses"]
    assert [next(iter(s["state"])) for s in second_init] == ["terminated", "running"]
    assert steps[3].status["phase"] == "Running"
    assert all(
        s["state"]["terminated"]["reason"] == "Completed"
        for s in steps[3].status["initContainerStatuses"]
    )
    initialized = next(c for c in steps[1].status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and "init-0 init-1" in initialized["message"]


@pytest.mark.parametrize(
    ("restart", "fault", "phase", "exit_code"),
    [
        ("Never", "", "Succeeded", 0),
        ("OnFailure", "", "Succeeded", 0),
        ("Never", "fail", "Failed", 1),
        ("Never", "crash", "Failed", 1),
    ],
)
def test_pods_that_may_finish_end_succeeded_or_failed(
    restart: str, fault: str, phase: str, exit_code: int
) -> None:
    anns = {lifecycle.FAULT_ANNOTATION: fault} if fault else {}
    last = walk(pod(restart=restart, annotations=anns))[-1]
    assert last.status["phase"] == phase
    terminated = last.status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == exit_code
    assert terminated["reason"] == ("Completed" if exit_code == 0 else "Error")
    assert last.wait is None


def test_a_crashing_container_backs_off_with_growing_restart_counts() -> None:
    steps = walk(pod(annotations={lifecycle.FAULT_ANNOTATION: "crash"}), steps=8)
    backoffs = [s for s in steps if s.run.stage is lifecycle.Stage.BACKOFF]
    assert backoffs
    waiting = backoffs[0].status["containerStatuses"][0]
    assert waiting["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert waiting["lastState"]["terminated"]["exitCode"] == 1
    restarts = [s.status["containerStatuses"][0]["restartCount"] for s in steps]
    assert restarts == sorted(restarts) and restarts[-1] >= 2
    delays = [s.wait for s in backoffs]
    assert delays == sorted(delays) and delays[0] == settings.BACKOFF_FIRST


def test_a_failed_pull_shows_err_image_pull_then_back_off_then_retries() -> None:
    failure = lifecycle.Pull(image="nginx:1.27", error="not found: manifest unknown")
    steps = walk(pod(), pull=failure, steps=4)
    reasons = [
        s.status["containerStatuses"][0]["state"].get("waiting", {}).get("reason") for s in steps
    ]
    assert reasons[:4] == [
        "ContainerCreating",
        "ErrImagePull",
        "ImagePullBackOff",
        "ContainerCreating",
    ]
    assert (
        "manifest unknown" in steps[1].status["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    assert (
        "manifest unknown" in steps[2].status["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    assert ("Warning", "Failed", "Error: ErrImagePull") in steps[1].events


def test_the_node_remembers_a_running_pod_after_a_restart() -> None:
    running = walk(pod())[1]
    recovered = lifecycle.recover({**pod(), "status": running.status})
    assert recovered.stage is lifecycle.Stage.RUNNING and recovered.ready
    again = advance({**pod(), "status": running.status}, recovered, 0.0)
    assert again.status == running.status


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        (None, None, 4, (1, 1)),
        ("25%", "25%", 10, (3, 2)),
        (1, 0, 3, (1, 0)),
        (0, 0, 3, (0, 1)),
        ("50%", "0%", 3, (2, 0)),
    ],
)
def test_max_surge_rounds_up_and_max_unavailable_rounds_down(
    surge: Any, unavailable: Any, replicas: int, expected: tuple[int, int]
) -> None:
    rolling = {
        k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None
    }
    d = {
        "metadata": {"name": "d"},
        "spec": {"replicas": replicas, "strategy": {"rollingUpdate": rolling}},
    }
    posts = rollout.fenceposts(d)
    assert (posts.surge, posts.unavailable) == expected


def rs(name: str, replicas: int, available: int, created: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available},
    }


def test_a_rolling_update_surges_then_scales_old_sets_down_within_availability() -> None:
    d = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 4,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        },
    }
    old = rs("old", 4, 4, "2026-01-01T00:00:00Z")
    new = rs("new", 0, 0, "2026-01-02T00:00:00Z")
    assert rollout.new_rs_target(d, [old, new], new) == 1
    new = rs("new", 1, 0, "2026-01-02T00:00:00Z")
    assert rollout.old_rs_targets(d, [old, new], new, [old]) == {"old": 4}
    new = rs("new", 1, 1, "2026-01-02T00:00:00Z")
    assert rollout.old_rs_targets(d, [old, new], new, [old]) == {"old": 3}


def test_unhealthy_old_replicas_go_before_older_healthy_ones() -> None:
    strategy = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    d = {"metadata": {"name": "d"}, "spec": {"replicas": 3, "strategy": strategy}}
    oldest = rs("oldest", 2, 2, "2026-01-01T00:00:00Z")
    broken = rs("broken", 1, 0, "2026-01-02T00:00:00Z")
    new = rs("new", 1, 1, "2026-01-03T00:00:00Z")
    targets = rollout.old_rs_targets(d, [oldest, broken, new], new, [oldest, broken])
    assert targets == {"oldest": 2, "broken": 0}


def test_invalid_percentages_name_the_field() -> None:
    d = {
        "metadata": {"name": "d", "namespace": "n"},
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": "lots"}}},
    }
    with pytest.raises(errors.InvalidInput, match="maxSurge"):
        rollout.fenceposts(d)


def node(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
    }


@pytest.mark.parametrize(
    ("spec", "expected", "reason"),
    [
        ({}, "a", None),
        ({"nodeSelector": {"zone": "b"}}, "b", None),
        (
            {"nodeSelector": {"zone": "c"}},
            None,
            "node(s) didn't match Pod's node affinity/selector",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "zone", "operator": "NotIn", "values": ["a"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            "b",
            None,
        ),
        (
            {"containers": [{"name": "c", "resources": {"requests": {"cpu": "5"}}}]},
            None,
            "Insufficient cpu",
        ),
        (
            {"containers": [{"name": "c", "resources": {"requests": {"memory": "9Gi"}}}]},
            None,
            "Insufficient memory",
        ),
    ],
)
def test_the_scheduler_honours_selectors_affinity_and_requests(
    spec: dict[str, Any], expected: str | None, reason: str | None
) -> None:
    p = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], **spec}}
    verdict = scheduling.choose(p, [node("a", zone="a"), node("b", zone="b")], {})
    assert verdict.node == expected
    if reason:
        assert reason in verdict.message(2)


def test_the_scheduler_spreads_onto_the_least_loaded_node() -> None:
    p = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    usage = {"a": scheduling.Usage(pods=5), "b": scheduling.Usage(pods=1)}
    assert scheduling.choose(p, [node("a"), node("b")], usage).node == "b"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", 0.1),
        ("2", 2.0),
        ("1.5", 1.5),
        ("128Mi", 128 * 2**20),
        ("1G", 1e9),
        ("1e3", 1000.0),
        ("500Ki", 500 * 1024),
    ],
)
def test_quantities_parse_like_kubernetes(text: str, value: float) -> None:
    assert quantity.parse(text) == pytest.approx(value)


def test_a_bad_quantity_names_where_it_was() -> None:
    with pytest.raises(errors.InvalidInput, match="container web"):
        quantity.parse("lots", where="container web resources.requests.cpu")


@pytest.mark.parametrize(
    ("image", "host", "repository", "reference"),
    [
        ("nginx", "docker.io", "library/nginx", "latest"),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27"),
        ("team/app:v1", "docker.io", "team/app", "v1"),
        ("localhost:5000/app:v1", "localhost:5000", "app", "v1"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "latest"),
        (
            "405906814034.dkr.ecr.ap-northeast-2.amazonaws.com/snutt/core:142",
            "405906814034.dkr.ecr.ap-northeast-2.amazonaws.com",
            "snutt/core",
            "142",
        ),
        ("ghcr.io/o/app@sha256:abc", "ghcr.io", "o/app", "sha256:abc"),
    ],
)
def test_image_references_split_like_the_docker_grammar(
    image: str, host: str, repository: str, reference: str
) -> None:
    ref = pulls.parse_image(image)
    assert (ref.host, ref.repository, ref.reference) == (host, repository, reference)


def test_pulls_ask_only_configured_registries(registry: Registry) -> None:
    registry.push("team/app", "v1")

    async def check() -> tuple[str | None, str | None, str | None]:
        puller = pulls.Puller({registry.host: registry.url})
        try:
            present = await puller.pull(f"{registry.host}/team/app:v1")
            missing = await puller.pull(f"{registry.host}/team/app:v9")
            elsewhere = await puller.pull("nginx:does-not-matter")
        finally:
            await puller.close()
        return present, missing, elsewhere

    present, missing, elsewhere = asyncio.run(check())
    assert present is None and elsewhere is None
    assert missing is not None
    assert "code = NotFound" in missing and "MANIFEST_UNKNOWN" in missing


def test_an_unreachable_registry_is_a_pull_error_not_a_crash() -> None:
    async def check() -> str | None:
        puller = pulls.Puller({"reg.local": "http://127.0.0.1:9"})
        try:
            return await puller.pull("reg.local/app:v1")
        finally:
            await puller.close()

    error = asyncio.run(check())
    assert error is not None and "failed to do request" in error


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"registries": ["localhost:5000"]}, "HOST=URL"),
        ({"registries": ["localhost:5000=ftp://x"]}, "HOST=URL"),
        ({"speed": 0.0}, "--speed"),
        ({"nodes": -1}, "--nodes"),
    ],
)
def test_bad_flags_are_named(flags: dict[str, Any], problem: str) -> None:
    with pytest.raises(errors.ConfigError, match=problem):
        settings.from_flags(**flags)


def test_flags_become_settings() -> None:
    config = settings.from_flags(
        nodes=3, speed=50, registries=["localhost:5000=http://127.0.0.1:5000"]
    )
    assert config.nodes == 3 and config.speed == 50
    assert config.registries == {"localhost:5000": "http://127.0.0.1:5000"}
    assert settings.from_flags().speed == settings.DEFAULT_SPEED


def test_template_hashes_ignore_empty_structs_go_clients_send() -> None:
    bare = {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "a", "image": "x"}]},
    }
    padded = {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "a", "image": "x", "resources": {}}]},
    }
    assert objects.template_hash(bare) == objects.template_hash(padded)
    assert objects.template_hash(bare) != objects.template_hash(
        {**bare, "spec": {"containers": [{"name": "a", "image": "y"}]}}
    )
    assert set(objects.template_hash(bare)) <= set(objects.SAFE_ALPHABET)


@pytest.mark.parametrize(
    ("event", "age", "gone"),
    [
        ({"lastTimestamp": "2026-01-01T00:00:00Z"}, 3599, False),
        ({"lastTimestamp": "2026-01-01T00:00:00Z"}, 3601, True),
        ({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}, 7200, True),
        ({}, 99999, False),
    ],
)
def test_events_expire_after_an_hour(event: dict[str, Any], age: float, gone: bool) -> None:
    start = settings.Clock.parse("2026-01-01T00:00:00Z")
    assert start is not None
    assert events.expired(event, now=start + age) is gone


def sized(
    name: str, replicas: int, *, desired: int, most: int, created: str, available: int = 0
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "annotations": {rollout.DESIRED: str(desired), rollout.MAX_REPLICAS: str(most)},
        },
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available},
    }


def test_scaling_one_active_set_gives_it_the_whole_count() -> None:
    d = {"metadata": {"name": "d"}, "spec": {"replicas": 5}}
    only = sized("only", 3, desired=3, most=4, created="2026-01-01T00:00:00Z", available=3)
    assert rollout.is_scaling_event(d, [only])
    assert rollout.scale_targets(d, only, []) == {"only": 5}


def test_scaling_mid_rollout_spreads_the_change_in_proportion() -> None:
    d = {"metadata": {"name": "d"}, "spec": {"replicas": 20}}
    old = sized("old", 8, desired=10, most=13, created="2026-01-01T00:00:00Z", available=8)
    new = sized("new", 5, desired=10, most=13, created="2026-01-02T00:00:00Z")
    assert rollout.is_scaling_event(d, [old, new])
    assert rollout.scale_targets(d, new, [old]) == {"old": 15, "new": 10}


def test_no_scaling_event_when_sizes_were_made_for_the_current_count() -> None:
    d = {"metadata": {"name": "d"}, "spec": {"replicas": 3}}
    rs_ = sized("a", 3, desired=3, most=4, created="2026-01-01T00:00:00Z")
    assert not rollout.is_scaling_event(d, [rs_])
