"""Job and CronJob controllers.

**Jobs** run pods until ``completions`` succeed, at most ``parallelism`` at a time; failed pods
(and container restarts of ``OnFailure`` pods) count against ``backoffLimit`` (default 6), with
the documented exponential delay (10 s, 20 s, 40 s… capped at 6 minutes, scaled by speed)
before a replacement; exceeding it, or ``activeDeadlineSeconds``, fails the Job with the
``Failed`` condition (reasons ``BackoffLimitExceeded``/``DeadlineExceeded``). ``suspend``
removes active pods and sets ``Suspended``. A finished Job with ``ttlSecondsAfterFinished`` is
deleted (in the foreground, as the TTL controller does) once the scaled TTL passes.

**CronJobs** create Jobs on their ``schedule`` (parsed with croniter, ``timeZone`` honoured).
Schedules run on a virtual clock: for each CronJob, simulated time starts at its
``creationTimestamp`` and runs ``speed`` times faster than the wall clock, so ``*/5 * * * *``
at speed 300 fires every wall second. Jobs are named ``<cronjob>-<scheduled minute>`` like the
real controller's, which makes creation idempotent across restarts. ``concurrencyPolicy``
(Allow, Forbid, Replace), ``startingDeadlineSeconds``, ``suspend`` and the successful/failed
history limits (3 and 1) behave as documented. ``lastScheduleTime`` is the wall-clock instant
the simulated schedule fired.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterBadDateError, croniter

from syrup import errors as syrup_errors
from syrup.cluster import errors
from syrup.cluster.workloads import events, lifecycle, objects, replicasets, runtime, settings

Obj = dict[str, Any]

JOB_COMPONENT = "job-controller"
CRON_COMPONENT = "cronjob-controller"
UID_LABEL = "batch.kubernetes.io/controller-uid"
NAME_LABEL = "batch.kubernetes.io/job-name"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_MAX_MISSED = 100


def finished(job: Obj) -> str | None:
    """``Complete`` or ``Failed`` when the Job has finished, else None."""
    for ctype in ("Complete", "Failed"):
        cond = objects.condition(objects.status(job), ctype)
        if cond is not None and cond.get("status") == "True":
            return ctype
    return None


def job_selector(job: Obj) -> Obj:
    sel = objects.spec(job).get("selector")
    if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")):
        return sel
    return {"matchLabels": {UID_LABEL: objects.uid(job)}}


def job_pod(job: Obj) -> Obj:
    template = objects.deep_copy(objects.spec(job).get("template") or {})
    tmeta = template.setdefault("metadata", {})
    labels = dict(tmeta.get("labels") or {})
    labels.setdefault(UID_LABEL, objects.uid(job))
    labels.setdefault(NAME_LABEL, objects.name(job))
    labels.setdefault("controller-uid", objects.uid(job))
    labels.setdefault("job-name", objects.name(job))
    tmeta["labels"] = labels
    pod = replicasets.pod_from_template(job, template, generate_name=f"{objects.name(job)}-")
    pod["spec"].setdefault("restartPolicy", "Never")
    return pod


def failures(pods: list[Obj]) -> int:
    """Failed pods plus container restarts (an OnFailure pod restarting in place)."""
    count = 0
    for pod in pods:
        st = objects.status(pod)
        if st.get("phase") == "Failed":
            count += 1
        if lifecycle.restart_policy(pod) == "OnFailure":
            count += sum(int(s.get("restartCount") or 0) for s in st.get("containerStatuses") or [])
    return count


def _last_failure(pods: list[Obj]) -> float | None:
    times = []
    for pod in pods:
        if objects.status(pod).get("phase") != "Failed":
            continue
        for s in objects.status(pod).get("containerStatuses") or []:
            stamp = ((s.get("state") or {}).get("terminated") or {}).get("finishedAt")
            parsed = settings.Clock.parse(stamp)
            if parsed is not None:
                times.append(parsed)
    return max(times) if times else None


class Jobs(runtime.Controller):
    """See the module docstring."""

    name = "job"
    workers = 2
    primary = ("batch", "v1", "jobs")

    def setup(self) -> None:
        self.ctx.informer("batch", "v1", "jobs").subscribe(self._on_job)
        self.ctx.informer("", "v1", "pods").subscribe(self._on_pod)

    def _on_job(self, etype: str, job: Obj) -> None:
        if etype != "DELETED":
            self.enqueue((objects.namespace(job), objects.name(job)))

    def _on_pod(self, etype: str, pod: Obj) -> None:
        key = objects.owner_key(pod, "Job")
        if key is not None:
            self.enqueue(key)

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("batch", "v1", "jobs")
        try:
            job = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(job):
            return None
        jspec = objects.spec(job)
        done = finished(job)
        if done is not None:
            return await self._expire(rt, job)

        pods = await replicasets.owned_pods(self.ctx, job, job_selector(job))
        active = [p for p in pods if replicasets.is_active(p)]
        succeeded = sum(1 for p in pods if objects.status(p).get("phase") == "Succeeded")
        failed = failures(pods)
        parallelism = int(
            jspec.get("parallelism", 1) if jspec.get("parallelism") is not None else 1
        )
        completions_raw = jspec.get("completions")
        completions = int(completions_raw) if completions_raw is not None else 1
        backoff_limit = int(
            jspec.get("backoffLimit", 6) if jspec.get("backoffLimit") is not None else 6
        )
        now_wall = self.clock.wall()
        now = self.clock.stamp()
        old = objects.status(job)
        new: Obj = {
            k: v for k, v in old.items() if k in ("startTime", "conditions", "completionTime")
        }
        conds = list(new.get("conditions") or [])
        wait: float | None = None

        if jspec.get("suspend"):
            for pod in active:
                await replicasets.delete_pod(self.ctx, job, pod, component=JOB_COMPONENT)
            active = []
            conds = objects.set_condition(
                conds,
                "Suspended",
                "True",
                reason="JobSuspended",
                message="Job suspended",
                now=now,
                probe_time=True,
            )
            new.pop("startTime", None)
        else:
            if objects.condition({"conditions": conds}, "Suspended"):
                conds = objects.set_condition(
                    conds,
                    "Suspended",
                    "False",
                    reason="JobResumed",
                    message="Job resumed",
                    now=now,
                    probe_time=True,
                )
            new.setdefault("startTime", now)
            start = settings.Clock.parse(new["startTime"]) or now_wall
            deadline = jspec.get("activeDeadlineSeconds")
            outcome: tuple[str, str, str] | None = None
            if failed > backoff_limit:
                outcome = (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif deadline is not None and now_wall >= start + self.clock.real(float(deadline)):
                outcome = (
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            elif succeeded >= completions:
                outcome = (
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            if outcome is not None:
                for pod in active:
                    await replicasets.delete_pod(self.ctx, job, pod, component=JOB_COMPONENT)
                active = []
                ctype, reason, message = outcome
                # Since Kubernetes 1.31 the interim condition comes first, then the final one.
                interim = "SuccessCriteriaMet" if ctype == "Complete" else "FailureTarget"
                for cond_type in (interim, ctype):
                    conds = objects.set_condition(
                        conds,
                        cond_type,
                        "True",
                        reason=reason,
                        message=message,
                        now=now,
                        probe_time=True,
                    )
                if ctype == "Complete":
                    new["completionTime"] = now
                    await self.ctx.recorder.record(
                        job, reason="Completed", message="Job completed", component=JOB_COMPONENT
                    )
                    self.log.info("job completed", namespace=key[0], name=key[1])
                else:
                    await self.ctx.recorder.record(
                        job,
                        reason=reason,
                        message=message,
                        component=JOB_COMPONENT,
                        type_=events.WARNING,
                    )
                    self.log.info("job failed", namespace=key[0], name=key[1], reason=reason)
            else:
                want = min(parallelism, completions - succeeded) - len(active)
                last_fail = _last_failure(pods)
                if want > 0 and failed and last_fail is not None:
                    ready_at = last_fail + self.clock.real(settings.backoff(failed) * 1.0)
                    if ready_at > now_wall:
                        wait = ready_at - now_wall + 0.01
                        want = 0
                for _ in range(max(want, 0)):
                    active.append(
                        await replicasets.create_pod(
                            self.ctx, job, job_pod(job), component=JOB_COMPONENT
                        )
                    )
                if deadline is not None:
                    left = start + self.clock.real(float(deadline)) - now_wall + 0.01
                    wait = min(wait, left) if wait is not None else left

        ready = sum(1 for p in active if replicasets.ready_since(p) is not None)
        counts = {"active": len(active), "succeeded": succeeded, "failed": failed, "ready": ready}
        new.update({k: v for k, v in counts.items() if v or k == "ready"})
        new["uncountedTerminatedPods"] = {}
        if conds:
            new["conditions"] = conds
        await runtime.write_status(self.store, rt, job, new, manager=objects.MANAGER)
        if finished({"status": new}) is not None:
            return await self._expire(rt, await self.store.get(rt, *key))
        return wait

    async def _expire(self, rt: Any, job: Obj) -> float | None:
        """Delete a finished Job whose ``ttlSecondsAfterFinished`` has passed."""
        ttl = objects.spec(job).get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        st = objects.status(job)
        done = finished(job) or ""
        cond = objects.condition(st, done) or {}
        finish = settings.Clock.parse(st.get("completionTime") or cond.get("lastTransitionTime"))
        now = self.clock.wall()
        left = (finish or now) + self.clock.real(float(ttl)) - now
        if left > 0:
            return left + 0.01
        await runtime.ignore_missing(
            self.store.delete(
                rt,
                objects.namespace(job),
                objects.name(job),
                propagation_policy="Foreground",
                preconditions={"uid": objects.uid(job)},
            )
        )
        self.log.info(
            "deleted finished job after its TTL",
            namespace=objects.namespace(job),
            name=objects.name(job),
        )
        return None


class CronJobs(runtime.Controller):
    """See the module docstring."""

    name = "cronjob"
    workers = 1
    primary = ("batch", "v1", "cronjobs")
    resync_seconds = 5.0

    def setup(self) -> None:
        self.ctx.informer("batch", "v1", "cronjobs").subscribe(self._on_cronjob)
        self.ctx.informer("batch", "v1", "jobs").subscribe(self._on_job)
        #: Latest virtual schedule time acted on, per CronJob uid.
        self.last_due: dict[str, float] = {}

    def _on_cronjob(self, etype: str, cj: Obj) -> None:
        if etype != "DELETED":
            self.enqueue((objects.namespace(cj), objects.name(cj)))

    def _on_job(self, etype: str, job: Obj) -> None:
        key = objects.owner_key(job, "CronJob")
        if key is not None:
            self.enqueue(key)

    def _virtual(self, cj: Obj, wall: float) -> float:
        anchor = settings.Clock.parse(objects.meta(cj).get("creationTimestamp")) or wall
        return anchor + (wall - anchor) * self.clock.speed

    def _wall(self, cj: Obj, virtual: float) -> float:
        anchor = settings.Clock.parse(objects.meta(cj).get("creationTimestamp")) or virtual
        return anchor + (virtual - anchor) / self.clock.speed

    def _zone(self, cj: Obj) -> zoneinfo.ZoneInfo | Any:
        tz = objects.spec(cj).get("timeZone")
        if not tz:
            return UTC
        try:
            return zoneinfo.ZoneInfo(str(tz))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise errors.Invalid(f"unknown time zone {tz!r}", name=objects.name(cj)) from exc

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("batch", "v1", "cronjobs")
        jobs_rt = self.ctx.rt("batch", "v1", "jobs")
        try:
            cj = await self.store.get(rt, *key)
        except syrup_errors.NotFound:
            return None
        if objects.deleting(cj):
            return None
        cspec = objects.spec(cj)
        listed, _ = await self.store.list(jobs_rt, key[0])
        jobs = [
            j
            for j in listed
            if objects.controlled_by(j, objects.uid(cj)) and not objects.deleting(j)
        ]
        active = [j for j in jobs if finished(j) is None]
        old = objects.status(cj)
        new: Obj = {k: v for k, v in old.items() if k in ("lastScheduleTime", "lastSuccessfulTime")}

        # History: keep the newest finished jobs within the limits.
        for kind, limit_key, default in (
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ):
            limit = cspec.get(limit_key)
            limit = default if limit is None else int(limit)
            done = sorted(
                (j for j in jobs if finished(j) == kind),
                key=lambda j: str(
                    objects.status(j).get("startTime") or objects.meta(j).get("creationTimestamp")
                ),
            )
            if kind == "Complete" and done:
                latest = objects.status(done[-1]).get("completionTime")
                if latest and latest > str(new.get("lastSuccessfulTime") or ""):
                    new["lastSuccessfulTime"] = latest
            for job in done[: max(len(done) - limit, 0)]:
                await runtime.ignore_missing(
                    self.store.delete(
                        jobs_rt, key[0], objects.name(job), propagation_policy="Background"
                    )
                )
                await self.ctx.recorder.record(
                    cj,
                    reason="SuccessfulDelete",
                    message=f"Deleted job {objects.name(job)}",
                    component=CRON_COMPONENT,
                )

        wait: float | None = None
        if not cspec.get("suspend"):
            scheduled = [
                settings.Clock.parse(objects.annotations_of(j).get(SCHEDULED_ANNOTATION)) or 0.0
                for j in jobs
            ]
            floor = max([*scheduled, self.last_due.get(objects.uid(cj), 0.0)])
            wait = await self._schedule(cj, active, new, floor=floor)
        new["active"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": objects.name(j),
                "namespace": key[0],
                "uid": objects.uid(j),
                "resourceVersion": objects.meta(j).get("resourceVersion"),
            }
            for j in active
        ]
        if not new["active"]:
            del new["active"]
        await runtime.write_status(self.store, rt, cj, new, manager=objects.MANAGER)
        return wait

    async def _schedule(
        self, cj: Obj, active: list[Obj], new: Obj, *, floor: float
    ) -> float | None:
        """Start the Job that is due, if any; ``floor`` is the latest virtual time already run."""
        cspec = objects.spec(cj)
        key = (objects.namespace(cj), objects.name(cj))
        zone = self._zone(cj)
        wall_now = self.clock.wall()
        now_v = self._virtual(cj, wall_now)
        last_wall = (
            settings.Clock.parse(new.get("lastScheduleTime"))
            or settings.Clock.parse(objects.meta(cj).get("creationTimestamp"))
            or wall_now
        )
        # Wall timestamps lose sub-second precision; the jobs' own scheduled times do not.
        last_v = max(self._virtual(cj, last_wall), floor)
        schedule = str(cspec.get("schedule") or "")
        try:
            it = croniter(schedule, datetime.fromtimestamp(last_v, zone))
        except (ValueError, KeyError) as exc:
            # The API server rejects these; one stored anyway is reported, not retried.
            await self.ctx.recorder.record(
                cj,
                reason="UnparseableSchedule",
                message=f"unparseable schedule {schedule!r}: {exc}",
                component=CRON_COMPONENT,
                type_=events.WARNING,
            )
            return None
        due: float | None = None
        upcoming: float | None = None
        try:
            for _ in range(_MAX_MISSED):
                candidate = float(it.get_next(float))
                if candidate > now_v:
                    upcoming = candidate
                    break
                due = candidate
            else:
                upcoming = float(it.get_next(float))
        except CroniterBadDateError:
            # A valid schedule that never occurs (``0 0 31 2 *``) simply never fires.
            self.log.debug("schedule never fires", namespace=key[0], name=key[1], schedule=schedule)
        if upcoming is None and due is None:
            return None
        wait = max(self._wall(cj, upcoming) - wall_now, 0.0) + 0.01 if upcoming else 3600.0
        if due is None:
            return wait
        deadline = cspec.get("startingDeadlineSeconds")
        if deadline is not None and now_v - due > float(deadline):
            await self.ctx.recorder.record(
                cj,
                reason="MissSchedule",
                message=f"Missed scheduled time to start a job: {settings.Clock.stamp(due)}",
                component=CRON_COMPONENT,
                type_=events.WARNING,
            )
            new["lastScheduleTime"] = settings.Clock.stamp(self._wall(cj, due))
            self.last_due[objects.uid(cj)] = due
            return wait
        policy = cspec.get("concurrencyPolicy") or "Allow"
        jobs_rt = self.ctx.rt("batch", "v1", "jobs")
        if active and policy == "Forbid":
            await self.ctx.recorder.record(
                cj,
                reason="JobAlreadyActive",
                message=(
                    "Not starting job because prior execution is running and concurrency "
                    "policy is Forbid"
                ),
                component=CRON_COMPONENT,
            )
            return min(wait, 0.5)
        if active and policy == "Replace":
            for job in active:
                await runtime.ignore_missing(
                    self.store.delete(
                        jobs_rt, key[0], objects.name(job), propagation_policy="Background"
                    )
                )
                await self.ctx.recorder.record(
                    cj,
                    reason="SuccessfulDelete",
                    message=f"Deleted job {objects.name(job)}",
                    component=CRON_COMPONENT,
                )
            active.clear()
        template = objects.deep_copy(cspec.get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        body: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{key[1]}-{int(due // 60)}",
                "namespace": key[0],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": {
                    **(tmeta.get("annotations") or {}),
                    SCHEDULED_ANNOTATION: settings.Clock.stamp(due),
                },
                "ownerReferences": [objects.owner_ref(cj)],
            },
            "spec": template.get("spec") or {},
        }
        try:
            job = await self.store.create(jobs_rt, body, field_manager=objects.MANAGER)
            active.append(job)
            await self.ctx.recorder.record(
                cj,
                reason="SuccessfulCreate",
                message=f"Created job {objects.name(job)}",
                component=CRON_COMPONENT,
            )
            self.log.info(
                "created scheduled job", namespace=key[0], name=key[1], job=objects.name(job)
            )
        except errors.AlreadyExists:
            pass
        self.last_due[objects.uid(cj)] = due
        new["lastScheduleTime"] = settings.Clock.stamp(self._wall(cj, due))
        return wait
