"""Jobs, CronJobs and failure injection, driven by kubectl against a sped-up cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from syrup.cluster import workloads
from tests.cluster.workloads.conftest import Scoped, wait_for
from tests.conftest import Cluster


def job(name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> str:
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36"}],
                },
            },
        },
    }
    return json.dumps(body)


def test_a_job_runs_its_completions_and_completes(fast: Scoped) -> None:
    fast.kubectl("apply", "-f", "-", input=job("batch", completions=3, parallelism=2))
    fast.kubectl("wait", "--for=condition=complete", "job/batch", "--timeout=60s")
    status = fast.kubectl_json("get", "job", "batch")["status"]
    assert status["succeeded"] == 3
    assert "completionTime" in status and "startTime" in status
    pods = fast.kubectl_json("get", "pods", "-l", "job-name=batch")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"] * 3
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0


def test_a_job_whose_pods_fail_gives_up_after_its_backoff_limit(fast: Scoped) -> None:
    annotations = {workloads.FAULT_ANNOTATION: "fail"}
    fast.kubectl("apply", "-f", "-", input=job("doomed", backoffLimit=2, annotations=annotations))
    fast.kubectl("wait", "--for=condition=failed", "job/doomed", "--timeout=90s")
    status = fast.kubectl_json("get", "job", "doomed")["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert status["failed"] == 3
    pods = fast.kubectl_json("get", "pods", "-l", "job-name=doomed")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Failed"] * 3
    assert "BackoffLimitExceeded" in fast.kubectl("get", "events").stdout


def test_a_suspended_job_starts_no_pods_until_resumed(fast: Scoped) -> None:
    fast.kubectl("apply", "-f", "-", input=job("later", suspend=True))
    wait_for(
        lambda: any(
            c["type"] == "Suspended" and c["status"] == "True"
            for c in fast.kubectl_json("get", "job", "later")
            .get("status", {})
            .get("conditions", [])
        ),
        what="Suspended condition",
    )
    assert fast.kubectl_json("get", "pods", "-l", "job-name=later")["items"] == []
    fast.kubectl("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    fast.kubectl("wait", "--for=condition=complete", "job/later", "--timeout=60s")


def test_a_finished_job_with_a_ttl_is_deleted_with_its_pods(fast: Scoped) -> None:
    # 120 simulated seconds are three wall seconds at speed 40.
    fast.kubectl("apply", "-f", "-", input=job("brief", ttlSecondsAfterFinished=120))
    fast.kubectl("wait", "--for=condition=complete", "job/brief", "--timeout=60s")
    assert fast.kubectl_json("get", "pods", "-l", "job-name=brief")["items"]
    wait_for(
        lambda: "NotFound" in fast.kubectl("get", "job", "brief", check=False).stderr,
        what="the job to be deleted after its TTL",
    )
    wait_for(
        lambda: not fast.kubectl_json("get", "pods", "-l", "job-name=brief")["items"],
        what="the job's pods to go",
    )


def test_a_cronjob_creates_jobs_on_schedule_and_keeps_its_history(
    sim_cluster: Callable[..., Cluster],
) -> None:
    # At speed 120 a once-a-minute schedule fires every half second of wall time.
    cluster = sim_cluster(speed=120)
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "* * * * *",
            "successfulJobsHistoryLimit": 2,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "tick", "image": "busybox:1.36"}],
                        }
                    }
                }
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(cronjob))

    def completed() -> list[Any]:
        items = cluster.kubectl_json("get", "jobs")["items"]
        return [
            j
            for j in items
            if any(c["type"] == "Complete" for c in j.get("status", {}).get("conditions", []))
        ]

    wait_for(lambda: len(completed()) >= 2, what="two completed scheduled jobs")
    jobs = cluster.kubectl_json("get", "jobs")["items"]
    for j in jobs:
        owner = j["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "CronJob" and owner["name"] == "tick"
        assert j["metadata"]["name"].startswith("tick-")
        assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in j["metadata"]["annotations"]
    status = cluster.kubectl_json("get", "cronjob", "tick")["status"]
    assert "lastScheduleTime" in status

    # History is trimmed to the limit while new jobs keep coming.
    seen: set[str] = set()

    def trimmed() -> bool:
        seen.update(j["metadata"]["name"] for j in cluster.kubectl_json("get", "jobs")["items"])
        return len(seen) >= 4 and len(completed()) <= 2

    wait_for(trimmed, what="history within its limit while jobs continue")
    assert "lastSuccessfulTime" in cluster.kubectl_json("get", "cronjob", "tick")["status"]

    # Suspending stops new jobs.
    cluster.kubectl("patch", "cronjob", "tick", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    time.sleep(0.5)
    names = {j["metadata"]["name"] for j in cluster.kubectl_json("get", "jobs")["items"]}
    time.sleep(2)
    later = {j["metadata"]["name"] for j in cluster.kubectl_json("get", "jobs")["items"]}
    assert later <= names


def test_crashing_containers_loop_in_crash_back_off_with_restarts_counting(fast: Scoped) -> None:
    fast.kubectl(
        "create",
        "deployment",
        "crashy",
        "--image=busybox:1.36",
        "--",
        "false",
    )
    fast.kubectl(
        "patch",
        "deployment",
        "crashy",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "template": {"metadata": {"annotations": {workloads.FAULT_ANNOTATION: "crash"}}}
                }
            }
        ),
    )

    def crash_looping() -> Any:
        for pod in fast.kubectl_json("get", "pods", "-l", "app=crashy")["items"]:
            anns = pod["metadata"].get("annotations") or {}
            if anns.get(workloads.FAULT_ANNOTATION) != "crash":
                continue
            for s in pod.get("status", {}).get("containerStatuses") or []:
                waiting = s["state"].get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff" and s["restartCount"] >= 2:
                    return s
        return None

    status = wait_for(crash_looping, what="CrashLoopBackOff with restarts", timeout=60)
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["ready"] is False
    out = fast.kubectl("get", "pods", "-l", "app=crashy").stdout
    assert "CrashLoopBackOff" in out
    assert "BackOff" in fast.kubectl("get", "events").stdout


def test_an_unready_pod_runs_but_stays_out_of_service_endpoints(fast: Scoped) -> None:
    fast.kubectl("create", "deployment", "shy", "--image=nginx:1.27")
    fast.kubectl(
        "patch",
        "deployment",
        "shy",
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "progressDeadlineSeconds": 3600,
                    "template": {
                        "metadata": {"annotations": {workloads.FAULT_ANNOTATION: "unready"}}
                    },
                }
            }
        ),
    )
    fast.kubectl("expose", "deployment", "shy", "--port=80")

    def unready_running() -> Any:
        for pod in fast.kubectl_json("get", "pods", "-l", "app=shy")["items"]:
            st = pod.get("status", {})
            if (pod["metadata"].get("annotations") or {}).get(
                workloads.FAULT_ANNOTATION
            ) and st.get("phase") == "Running":
                return pod
        return None

    pod = wait_for(unready_running, what="a running unready pod")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"

    def not_ready_addresses() -> Any:
        subsets = fast.kubectl_json("get", "endpoints", "shy").get("subsets") or []
        return [a for s in subsets for a in s.get("notReadyAddresses", [])]

    addresses = wait_for(not_ready_addresses, what="a not-ready endpoint address")
    assert addresses[0]["ip"] == pod["status"]["podIP"]


def test_readiness_waits_for_the_probe_initial_delay(fast: Scoped) -> None:
    # 200 simulated seconds are five wall seconds at speed 40.
    cluster = fast
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "slow"},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "readinessProbe": {"httpGet": {"port": 80}, "initialDelaySeconds": 200},
                }
            ]
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    running = wait_for(
        lambda: cluster.kubectl_json("get", "pod", "slow")["status"].get("phase") == "Running",
        what="Running",
    )
    assert running
    assert (
        cluster.kubectl_json("get", "pod", "slow")["status"]["containerStatuses"][0]["ready"]
        is False
    )
    cluster.kubectl("wait", "--for=condition=Ready", "pod/slow", "--timeout=30s")
