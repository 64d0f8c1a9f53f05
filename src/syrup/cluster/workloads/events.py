"""The event recorder: ``v1`` Events that make ``kubectl describe`` tell a pod's story.

Events follow the core/v1 shape controllers write (``involvedObject``, ``reason``,
``message``, ``type``, ``source.component``, ``firstTimestamp``/``lastTimestamp``, ``count``),
and a repeat of the same reason and message for the same object bumps ``count`` instead of
adding a new Event, as the client-go recorder's correlator does. Recording never fails the
caller: an event is a courtesy, so storage errors are logged at DEBUG and dropped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from syrup import errors as syrup_errors
from syrup import logs
from syrup.cluster.workloads import objects

if TYPE_CHECKING:
    from syrup.cluster.workloads.runtime import Context

log = logs.get(__name__)

NORMAL = "Normal"
WARNING = "Warning"

#: Remembered (object uid, component, reason, message) → (namespace, event name); bounded.
_MEMORY = 20_000


class Recorder:
    """Writes Events through storage on behalf of one cluster's controllers."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    async def record(
        self,
        obj: dict[str, Any],
        *,
        reason: str,
        message: str,
        component: str,
        type_: str = NORMAL,
        host: str | None = None,
    ) -> None:
        rt = self._ctx.rt("", "v1", "events")
        store = self._ctx.store
        namespace = objects.namespace(obj) or "default"
        now = self._ctx.clock.stamp()
        key = (objects.uid(obj), component, reason, message)
        try:
            known = self._seen.get(key)
            if known is not None:
                try:
                    existing = await store.get(rt, known[0], known[1])
                except syrup_errors.NotFound:
                    existing = None
                if existing is not None:
                    existing["count"] = int(existing.get("count") or 1) + 1
                    existing["lastTimestamp"] = now
                    await store.update(rt, existing, field_manager=component)
                    return
            event_name = f"{objects.name(obj)}.{time.time_ns():x}"
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": event_name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion", ""),
                    "kind": obj.get("kind", ""),
                    "name": objects.name(obj),
                    "namespace": objects.namespace(obj) or None,
                    "uid": objects.uid(obj),
                    "resourceVersion": objects.meta(obj).get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "source": {"component": component, **({"host": host} if host else {})},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": host or "",
            }
            if not body["involvedObject"]["namespace"]:
                del body["involvedObject"]["namespace"]
            await store.create(rt, body, field_manager=component)
            if len(self._seen) >= _MEMORY:
                self._seen.clear()
            self._seen[key] = (namespace, event_name)
        except syrup_errors.SyrupError as exc:
            log.debug("event not recorded", reason=reason, name=objects.name(obj), error=str(exc))


#: How long Events live, as the API server's default ``--event-ttl`` (wall time, not scaled).
EVENT_TTL_SECONDS = 3600.0
SWEEP_EVERY = 300.0


def expired(event: dict[str, Any], *, now: float, ttl: float = EVENT_TTL_SECONDS) -> bool:
    """Whether an Event was last seen longer than ``ttl`` ago."""
    from syrup.cluster.workloads.settings import Clock

    meta = objects.meta(event)
    last = event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    seen = Clock.parse(str(last or ""))
    return seen is not None and now - seen > ttl
