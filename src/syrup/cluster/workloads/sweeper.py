"""Event expiry: Events older than the API server's default one-hour TTL are deleted.

A real cluster lets etcd leases expire Events; storage here has no leases, so this loop sweeps
them every few minutes. Without it a long-running local cluster would keep every pod's story
forever. The TTL is wall time (Events are for people reading ``kubectl get events``), not
scaled by speed.
"""

from __future__ import annotations

from syrup.cluster.workloads import events, objects, runtime


class EventSweeper(runtime.Controller):
    """See the module docstring."""

    name = "event-ttl"
    workers = 1
    _KEY = ("", "sweep")

    async def startup(self) -> None:
        self.enqueue(self._KEY)

    async def reconcile(self, key: runtime.Key) -> float | None:
        rt = self.ctx.rt("", "v1", "events")
        now = self.clock.wall()
        items, _ = await self.store.list(rt)
        removed = 0
        for event in items:
            if events.expired(event, now=now):
                gone = await runtime.ignore_missing(
                    self.store.delete(rt, objects.namespace(event), objects.name(event))
                )
                removed += gone is not None
        if removed:
            self.log.info("expired events deleted", count=removed)
        return events.SWEEP_EVERY
