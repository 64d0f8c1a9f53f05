"""Server-Sent Events of Application changes (``GET /api/v1/stream/applications``).

The controller's cache calls :meth:`Broker.on_change` for every object it sees change; the
broker turns Application changes into ``ADDED``/``MODIFIED``/``DELETED`` events (Argo CD's
watch event types) and hands them to each subscriber's bounded queue. A subscriber that falls
more than ``QUEUE_SIZE`` events behind is dropped (its stream ends and the browser's
EventSource reconnects and reloads), so one stuck client never grows memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from syrup.gitops import models
from syrup.kube import cache as kcache

QUEUE_SIZE = 1000
KEEPALIVE_SECONDS = 15.0


@dataclass(eq=False)
class Subscriber:
    namespaces: frozenset[str]
    name: str = ""
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Broker:
    """Fans Application changes out to SSE subscribers."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def on_change(
        self, key: kcache.Key, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
    ) -> None:
        if key.group != models.GROUP or key.kind != "Application" or not self.subscribers:
            return
        kind = "DELETED" if new is None else ("ADDED" if old is None else "MODIFIED")
        obj = new if new is not None else old
        frame = b"event: application\ndata: " + orjson.dumps({"type": kind, "application": obj})
        frame += b"\n\n"
        for sub in list(self.subscribers):
            if key.namespace not in sub.namespaces or (sub.name and sub.name != key.name):
                continue
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self.subscribers.discard(sub)
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.get_nowait()
                    sub.queue.put_nowait(None)

    async def stream(self, sub: Subscriber) -> AsyncIterator[bytes]:
        """The SSE body for one subscriber: a hello, then events, keep-alive comments."""
        self.subscribers.add(sub)
        try:
            yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
            while True:
                try:
                    frame = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self.subscribers.discard(sub)

    def close(self) -> None:
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        self.subscribers.clear()
