"""A pod's life on a simulated node, as a pure state machine.

:func:`advance` takes a pod, what the node remembers about it (:class:`Run`) and how much
simulated time has passed in the current stage, and returns the next status to write, the
events to record and how long to wait before looking again. No process runs; the stages and
the status they produce follow what the kubelet reports:

``PULLING`` (containers ``waiting: ContainerCreating``, or ``PodInitializing`` behind init
containers) → ``INIT`` (each init container runs to ``Completed`` in order) → ``RUNNING``
(``running``; ``ready`` once the readiness probe's ``initialDelaySeconds`` has passed) →
for pods that may finish (``restartPolicy`` Never/OnFailure) ``SUCCEEDED`` or ``FAILED``.
A failed pull goes ``PULL_FAILED`` (ErrImagePull) → ``PULL_BACKOFF`` (ImagePullBackOff) → back
to ``PULLING`` with a doubling delay; a crashing container goes ``BACKOFF``
(CrashLoopBackOff, ``restartCount`` increasing) → ``RUNNING``.

Failure injection (for tests and demos) is read from pod annotations:

* ``workloads.syrup.dev/fault: crash`` (or ``fail``): containers exit with code 1 shortly after
  starting; with ``restartPolicy: Always``/``OnFailure`` they loop in CrashLoopBackOff, with
  ``Never`` (Job pods) the pod fails, which counts against the Job's ``backoffLimit``.
* ``workloads.syrup.dev/fault: unready``: containers run but never pass readiness.
* ``workloads.syrup.dev/run-seconds: "<simulated seconds>"``: how long containers of a pod
  that may finish run before exiting (default 5).

The node's memory of a pod is rebuilt from its status after a restart (:func:`recover`), so a
restarted server continues lives where they were instead of starting them over.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from syrup.cluster.workloads import objects, settings

Obj = dict[str, Any]

FAULT_ANNOTATION = "workloads.syrup.dev/fault"
RUN_SECONDS_ANNOTATION = "workloads.syrup.dev/run-seconds"
FAULT_CRASH = ("crash", "fail")
FAULT_UNREADY = "unready"

#: Simulated seconds ErrImagePull shows before the kubelet backs off.
_PULL_ERROR_SECONDS = 1.0
#: Simulated seconds an init container runs.
_INIT_RUN_SECONDS = 1.0


class Stage(enum.Enum):
    PULLING = "Pulling"
    PULL_FAILED = "ErrImagePull"
    PULL_BACKOFF = "ImagePullBackOff"
    INIT = "Init"
    RUNNING = "Running"
    BACKOFF = "CrashLoopBackOff"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL = (Stage.SUCCEEDED, Stage.FAILED)


@dataclass(frozen=True)
class Run:
    """What a node remembers about one pod between looks."""

    stage: Stage = Stage.PULLING
    #: Failed pulls so far (PULL_* stages) or restarts so far (containers' restartCount).
    pull_failures: int = 0
    restarts: int = 0
    init_index: int = 0
    #: The failing pull's image and error text.
    pull_image: str = ""
    pull_error: str = ""
    #: When the current containers started (RFC 3339), and the last termination per container.
    started_at: str = ""
    last_state: dict[str, Obj] = field(default_factory=dict)
    exit_code: int = 0
    finished_at: str = ""
    ready: bool = False


@dataclass(frozen=True)
class Step:
    run: Run
    status: Obj
    #: Simulated seconds until the next transition, or None when nothing will happen by itself.
    wait: float | None
    #: (type, reason, message) events to record, in order.
    events: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Pull:
    """The outcome of pulling a pod's images: the first failure, if any."""

    image: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def containers(pod: Obj) -> list[Obj]:
    return [c for c in objects.spec(pod).get("containers") or [] if isinstance(c, dict)]


def init_containers(pod: Obj) -> list[Obj]:
    return [c for c in objects.spec(pod).get("initContainers") or [] if isinstance(c, dict)]


def fault(pod: Obj) -> str:
    return str(objects.annotations_of(pod).get(FAULT_ANNOTATION, "")).strip().lower()


def restart_policy(pod: Obj) -> str:
    return str(objects.spec(pod).get("restartPolicy") or "Always")


def run_seconds(pod: Obj) -> float:
    raw = objects.annotations_of(pod).get(RUN_SECONDS_ANNOTATION)
    try:
        return max(float(raw), 0.0) if raw is not None else settings.JOB_RUN_SECONDS
    except ValueError:
        return settings.JOB_RUN_SECONDS


def readiness_delay(pod: Obj) -> float:
    """Simulated seconds after start before every container passes its readiness probe."""
    delay = 0.0
    for c in containers(pod):
        probe = c.get("readinessProbe")
        if isinstance(probe, dict):
            delay = max(delay, float(probe.get("initialDelaySeconds") or 0))
    return delay


def qos_class(pod: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, by the rules of the pod QoS documentation."""
    all_c = containers(pod) + init_containers(pod)
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in all_c]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in all_c]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu") and lim.get("memory") and all(req.get(k, lim[k]) == lim[k] for k in lim)
        for req, lim in zip(requests, limits, strict=True)
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _image_id(image: str) -> str:
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in image or ":" in image else image
    return f"{repo}@sha256:{_digest('image', image)}"


def _container_status(
    pod: Obj, c: Obj, *, state: Obj, ready: bool, started: bool, restarts: int, last: Obj
) -> Obj:
    running_or_done = "running" in state or "terminated" in state
    image = str(c.get("image") or "")
    return {
        "name": c.get("name", ""),
        "image": image,
        "imageID": _image_id(image) if running_or_done else "",
        **(
            {
                "containerID": "containerd://"
                + _digest(objects.uid(pod), str(c.get("name")), str(restarts))
            }
            if running_or_done
            else {}
        ),
        "ready": ready,
        "started": started,
        "restartCount": restarts,
        "state": state,
        "lastState": last,
    }


def _waiting(reason: str, message: str = "") -> Obj:
    body: Obj = {"reason": reason}
    if message:
        body["message"] = message
    return {"waiting": body}


def _build_status(pod: Obj, run: Run, *, now: str, pod_ip: str, host_ip: str) -> Obj:
    """The full pod status for ``run``, keeping what earlier writes set (startTime, IPs)."""
    old = objects.status(pod)
    inits, mains = init_containers(pod), containers(pod)
    stage = run.stage
    terminal = stage in TERMINAL
    main_state_default = _waiting("PodInitializing" if inits else "ContainerCreating")
    init_statuses: list[Obj] = []
    for index, c in enumerate(inits):
        done = stage in (Stage.RUNNING, Stage.BACKOFF, *TERMINAL) or (
            stage is Stage.INIT and index < run.init_index
        )
        if done:
            state: Obj = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": run.started_at or now,
                    "finishedAt": run.started_at or now,
                    "containerID": "",
                }
            }
            state["terminated"].pop("containerID")
        elif stage is Stage.INIT and index == run.init_index:
            state = {"running": {"startedAt": run.started_at or now}}
        elif stage in (Stage.PULL_FAILED, Stage.PULL_BACKOFF) and c.get("image") == run.pull_image:
            state = _pull_waiting(run)
        else:
            state = _waiting("PodInitializing")
        init_statuses.append(
            _container_status(
                pod, c, state=state, ready=done, started="running" in state, restarts=0, last={}
            )
        )

    main_statuses: list[Obj] = []
    for c in mains:
        cname = str(c.get("name", ""))
        last = run.last_state.get(cname, {})
        if stage is Stage.RUNNING:
            state = {"running": {"startedAt": run.started_at or now}}
        elif stage is Stage.BACKOFF:
            message = (
                f"back-off {int(settings.backoff(run.restarts + 1))}s restarting failed "
                f"container={cname} pod={objects.name(pod)}_{objects.namespace(pod)}"
                f"({objects.uid(pod)})"
            )
            state = _waiting("CrashLoopBackOff", message)
        elif terminal:
            state = {
                "terminated": {
                    "exitCode": run.exit_code,
                    "reason": "Completed" if run.exit_code == 0 else "Error",
                    "startedAt": run.started_at or now,
                    "finishedAt": run.finished_at or now,
                }
            }
        elif stage in (Stage.PULL_FAILED, Stage.PULL_BACKOFF) and c.get("image") == run.pull_image:
            state = _pull_waiting(run)
        else:
            state = main_state_default
        main_statuses.append(
            _container_status(
                pod,
                c,
                state=state,
                ready=run.ready and stage is Stage.RUNNING,
                started=stage is Stage.RUNNING,
                restarts=run.restarts,
                last=last,
            )
        )

    phase = {Stage.SUCCEEDED: "Succeeded", Stage.FAILED: "Failed"}.get(
        stage, "Running" if stage in (Stage.RUNNING, Stage.BACKOFF) else "Pending"
    )
    conditions = list(old.get("conditions") or [])
    conditions = objects.set_condition(
        conditions,
        "PodReadyToStartContainers",
        "True",
        reason="",
        message="",
        now=now,
        probe_time=True,
    )
    pending_inits = [s["name"] for s in init_statuses if not s["ready"]]
    if pending_inits:
        conditions = objects.set_condition(
            conditions,
            "Initialized",
            "False",
            reason="ContainersNotInitialized",
            message=f"containers with incomplete status: [{' '.join(pending_inits)}]",
            now=now,
            probe_time=True,
        )
    else:
        conditions = objects.set_condition(
            conditions, "Initialized", "True", reason="", message="", now=now, probe_time=True
        )
    unready = [s["name"] for s in main_statuses if not s["ready"]]
    for ctype in ("Ready", "ContainersReady"):
        if terminal:
            conditions = objects.set_condition(
                conditions,
                ctype,
                "False",
                reason="PodCompleted",
                message="",
                now=now,
                probe_time=True,
            )
        elif unready:
            conditions = objects.set_condition(
                conditions,
                ctype,
                "False",
                reason="ContainersNotReady",
                message=f"containers with unready status: [{' '.join(unready)}]",
                now=now,
                probe_time=True,
            )
        else:
            conditions = objects.set_condition(
                conditions, ctype, "True", reason="", message="", now=now, probe_time=True
            )
    conditions = objects.set_condition(
        conditions, "PodScheduled", "True", reason="", message="", now=now, probe_time=True
    )
    order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    conditions.sort(key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))

    out: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": old.get("startTime") or now,
        "containerStatuses": main_statuses,
        "qosClass": qos_class(pod),
    }
    if init_statuses:
        out["initContainerStatuses"] = init_statuses
    return out


def _pull_waiting(run: Run) -> Obj:
    if run.stage is Stage.PULL_FAILED:
        return _waiting("ErrImagePull", run.pull_error)
    return _waiting(
        "ImagePullBackOff",
        f'Back-off pulling image "{run.pull_image}": ErrImagePull: {run.pull_error}',
    )


def pull_seconds(pod: Obj, present: set[str]) -> float:
    """Simulated pull time: nothing when every image is on the node and need not be re-pulled."""
    for c in init_containers(pod) + containers(pod):
        image = str(c.get("image") or "")
        if image not in present or _pull_policy(c) == "Always":
            return settings.PULL_SECONDS
    return 0.0


def _pull_policy(c: Obj) -> str:
    policy = c.get("imagePullPolicy")
    if policy:
        return str(policy)
    image = str(c.get("image") or "")
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    return "Always" if not tagged or image.endswith(":latest") else "IfNotPresent"


def images_to_pull(pod: Obj, present: set[str]) -> list[str]:
    """Images the kubelet pulls for this pod (in container order), by their pull policy."""
    out: list[str] = []
    for c in init_containers(pod) + containers(pod):
        image = str(c.get("image") or "")
        if image and image not in out and (image not in present or _pull_policy(c) == "Always"):
            out.append(image)
    return out


def advance(
    pod: Obj,
    run: Run,
    *,
    elapsed: float,
    pull: Pull | None,
    pull_time: float,
    now: str,
    pod_ip: str,
    host_ip: str,
) -> Step:
    """One look at a pod: maybe move to the next stage; see the module docstring.

    ``elapsed`` is simulated seconds spent in the current stage. ``pull`` is the outcome of
    pulling the images, given once the pull time has passed (the caller does the I/O).
    """
    events: list[tuple[str, str, str]] = []
    inits, mains = init_containers(pod), containers(pod)
    crash = fault(pod) in FAULT_CRASH
    may_finish = restart_policy(pod) != "Always"

    def step(new: Run, wait: float | None) -> Step:
        status = _build_status(pod, new, now=now, pod_ip=pod_ip, host_ip=host_ip)
        return Step(run=new, status=status, wait=wait, events=events)

    def start_running(new: Run) -> Step:
        for c in mains:
            events.append(("Normal", "Created", f"Created container {c.get('name')}"))
            events.append(("Normal", "Started", f"Started container {c.get('name')}"))
        return look_running(replace(new, stage=Stage.RUNNING, started_at=now, ready=False), 0.0)

    def look_running(new: Run, spent: float) -> Step:
        waits: list[float] = []
        ready = new.ready
        if not ready and fault(pod) != FAULT_UNREADY and not crash:
            delay = readiness_delay(pod)
            if spent >= delay:
                ready = True
            else:
                waits.append(delay - spent)
        exit_after = (
            settings.CRASH_RUN_SECONDS if crash else run_seconds(pod) if may_finish else None
        )
        if exit_after is not None:
            if spent >= exit_after:
                return exited(replace(new, ready=False), 1 if crash else 0)
            waits.append(exit_after - spent)
        return step(replace(new, ready=ready), min(waits) if waits else None)

    def exited(new: Run, code: int) -> Step:
        last = {
            str(c.get("name")): {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": new.started_at or now,
                    "finishedAt": now,
                }
            }
            for c in mains
        }
        policy = restart_policy(pod)
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            stage = Stage.SUCCEEDED if code == 0 else Stage.FAILED
            return step(replace(new, stage=stage, exit_code=code, finished_at=now), None)
        for c in mains:
            events.append(
                (
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {c.get('name')} in pod "
                    f"{objects.name(pod)}_{objects.namespace(pod)}({objects.uid(pod)})",
                )
            )
        backed = replace(new, stage=Stage.BACKOFF, last_state=last, exit_code=code)
        return step(backed, settings.backoff(new.restarts + 1))

    stage = run.stage
    if stage in TERMINAL:
        return step(run, None)

    if stage is Stage.PULLING:
        total = pull_time + settings.START_SECONDS
        if elapsed < total or pull is None:
            if elapsed == 0.0:
                for image in images_to_pull_from(pod, pull_time):
                    events.append(("Normal", "Pulling", f'Pulling image "{image}"'))
            return step(run, max(total - elapsed, 0.0))
        if not pull.ok:
            events.append(
                ("Warning", "Failed", f'Failed to pull image "{pull.image}": {pull.error}')
            )
            events.append(("Warning", "Failed", "Error: ErrImagePull"))
            failed = replace(
                run,
                stage=Stage.PULL_FAILED,
                pull_failures=run.pull_failures + 1,
                pull_image=pull.image,
                pull_error=pull.error,
            )
            return step(failed, _PULL_ERROR_SECONDS)
        if pull_time > 0:
            for image in images_to_pull_from(pod, pull_time):
                events.append(
                    ("Normal", "Pulled", f'Successfully pulled image "{image}" in {pull_time:g}s')
                )
        else:
            for c in inits + mains:
                events.append(
                    (
                        "Normal",
                        "Pulled",
                        f'Container image "{c.get("image")}" already present on machine',
                    )
                )
        cleared = replace(run, pull_image="", pull_error="")
        if inits:
            first = inits[0].get("name")
            events.append(("Normal", "Created", f"Created container {first}"))
            events.append(("Normal", "Started", f"Started container {first}"))
            return step(
                replace(cleared, stage=Stage.INIT, init_index=0, started_at=now), _INIT_RUN_SECONDS
            )
        return start_running(cleared)

    if stage is Stage.PULL_FAILED:
        if elapsed < _PULL_ERROR_SECONDS:
            return step(run, _PULL_ERROR_SECONDS - elapsed)
        events.append(("Normal", "BackOff", f'Back-off pulling image "{run.pull_image}"'))
        events.append(("Warning", "Failed", "Error: ImagePullBackOff"))
        return step(replace(run, stage=Stage.PULL_BACKOFF), settings.backoff(run.pull_failures))

    if stage is Stage.PULL_BACKOFF:
        delay = settings.backoff(run.pull_failures)
        if elapsed < delay:
            return step(run, delay - elapsed)
        again = replace(run, stage=Stage.PULLING)
        events.append(("Normal", "Pulling", f'Pulling image "{run.pull_image}"'))
        return step(again, settings.PULL_SECONDS + settings.START_SECONDS)

    if stage is Stage.INIT:
        if elapsed < _INIT_RUN_SECONDS:
            return step(run, _INIT_RUN_SECONDS - elapsed)
        following = run.init_index + 1
        if following < len(inits):
            nxt = inits[following].get("name")
            events.append(("Normal", "Created", f"Created container {nxt}"))
            events.append(("Normal", "Started", f"Started container {nxt}"))
            return step(replace(run, init_index=following, started_at=now), _INIT_RUN_SECONDS)
        return start_running(replace(run, init_index=following))

    if stage is Stage.RUNNING:
        return look_running(run, elapsed)

    # BACKOFF: restart the containers once the back-off has passed.
    delay = settings.backoff(run.restarts + 1)
    if elapsed < delay:
        return step(run, delay - elapsed)
    return start_running(replace(run, restarts=run.restarts + 1))


def images_to_pull_from(pod: Obj, pull_time: float) -> list[str]:
    if pull_time <= 0:
        return []
    seen: list[str] = []
    for c in init_containers(pod) + containers(pod):
        image = str(c.get("image") or "")
        if image and image not in seen:
            seen.append(image)
    return seen


def recover(pod: Obj) -> Run:
    """Rebuild a node's memory of a pod from its status (after a server restart)."""
    st = objects.status(pod)
    phase = st.get("phase")
    mains = [s for s in st.get("containerStatuses") or [] if isinstance(s, dict)]
    restarts = max((int(s.get("restartCount") or 0) for s in mains), default=0)
    last = {str(s.get("name")): s.get("lastState") or {} for s in mains if s.get("lastState")}
    base = Run(restarts=restarts, last_state=last)
    if phase == "Succeeded":
        return replace(base, stage=Stage.SUCCEEDED)
    if phase == "Failed":
        return replace(base, stage=Stage.FAILED, exit_code=1)
    for s in [*(st.get("initContainerStatuses") or []), *mains]:
        waiting = ((s or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            return replace(
                base,
                stage=Stage.PULL_BACKOFF,
                pull_failures=1,
                pull_image=str(s.get("image")),
                pull_error=str(waiting.get("message") or ""),
            )
        if waiting.get("reason") == "CrashLoopBackOff":
            return replace(base, stage=Stage.BACKOFF)
    running = [s for s in mains if "running" in (s.get("state") or {})]
    if mains and len(running) == len(mains):
        started = str(running[0]["state"]["running"].get("startedAt") or "")
        ready = all(bool(s.get("ready")) for s in mains)
        return replace(base, stage=Stage.RUNNING, started_at=started, ready=ready)
    return base
