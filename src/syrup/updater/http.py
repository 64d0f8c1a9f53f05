"""HTTP intake for registry events: ``POST /api/v1/image-events``.

The router is meant to be mounted into Syrup's API server; :func:`create_app` mounts it alone
(with the background worker and poller) so ``syrup image serve`` is usable on its own.

Authentication, either of:

* ``Authorization: Bearer <token>`` with the server's token;
* a per-source HMAC: ``?source=<name>`` (or ``X-Syrup-Source``) and
  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`` with that source's secret, the
  scheme GitHub webhooks use, so a ``registry_package`` webhook can call us directly.

The event is stored durably before the response (``202 Accepted``); processing happens on the
worker thread. A malformed payload gets ``400`` with the field named and stores nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from syrup import logs
from syrup.errors import InvalidInput
from syrup.updater import polling
from syrup.updater.store import EventState, StoredEvent
from syrup.updater.updating import Updater, UpdaterSettings

log = logs.get(__name__)
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    """How the intake authenticates and how often the worker retries failed events."""

    updater: UpdaterSettings
    token: str | None = None
    source_secrets: Mapping[str, str] = field(default_factory=dict)
    retry_failed_seconds: float = 300.0
    poll: bool = True


class Worker:
    """Drains the queue on a thread: at start (events left by a crash), when woken by the
    intake, and every ``retry_failed_seconds`` for failed events."""

    def __init__(self, updater: Updater, *, retry_failed_seconds: float) -> None:
        self.updater = updater
        self.retry_failed_seconds = retry_failed_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="image-updater", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        self._wake.set()
        while not self._stop.is_set():
            woken = self._wake.wait(timeout=self.retry_failed_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if not woken:
                    for row in self.updater.store.select(states=[EventState.FAILED]):
                        self.updater.store.requeue(row.id)
                self.updater.process_pending()
            except Exception:
                # The loop must outlive any single bad event; the event itself is recorded.
                log.exception("image updater worker step failed")


def router(
    updater: Updater,
    *,
    token: str | None,
    source_secrets: Mapping[str, str],
    wake: Callable[[], None],
) -> APIRouter:
    """The intake routes, bound to an updater; ``wake()`` is called after each stored event."""
    api = APIRouter()

    @api.post("/api/v1/image-events", status_code=202)
    async def receive_event(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise HTTPException(status_code=413, detail="event larger than 1 MiB")
        source = _authenticate(request, body, token=token, source_secrets=source_secrets)
        try:
            stored = await run_in_threadpool(updater.receive, body, source=source)
        except InvalidInput as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        wake()
        return {"events": [_summary(row) for row in stored]}

    @api.get("/api/v1/image-events")
    async def list_events(request: Request, state: str | None = None) -> dict[str, Any]:
        _authenticate(request, b"", token=token, source_secrets={})
        try:
            states = [EventState(state)] if state else []
        except ValueError as error:
            raise HTTPException(status_code=400, detail=f"state: unknown {state!r}") from error
        rows = await run_in_threadpool(updater.store.select, states=states)
        return {"events": [_summary(row) for row in rows]}

    return api


def create_app(settings: ServeSettings) -> FastAPI:
    """A FastAPI app serving only the image-event intake, with its worker and poller."""
    if not settings.token and not settings.source_secrets:
        raise InvalidInput("the image-event server needs a token or an HMAC source secret")
    updater = Updater(settings.updater)
    worker = Worker(updater, retry_failed_seconds=settings.retry_failed_seconds)
    poller = polling.Poller(updater, on_event=worker.wake) if settings.poll else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        if poller is not None:
            poller.start()
        try:
            yield
        finally:
            if poller is not None:
                poller.stop()
            worker.stop()
            updater.close()

    app = FastAPI(title="Syrup image updater", lifespan=lifespan)
    app.include_router(
        router(
            updater, token=settings.token, source_secrets=settings.source_secrets, wake=worker.wake
        )
    )

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response("ok", media_type="text/plain")

    return app


def _authenticate(
    request: Request, body: bytes, *, token: str | None, source_secrets: Mapping[str, str]
) -> str:
    """Return the event's source name, or raise 401."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
        return "http"
    source = request.query_params.get("source") or request.headers.get("x-syrup-source", "")
    secret = source_secrets.get(source)
    signature = request.headers.get("x-hub-signature-256", "")
    if secret is not None and signature.startswith("sha256="):
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature.removeprefix("sha256="), expected):
            return f"http:{source}"
    raise HTTPException(
        status_code=401,
        detail="a bearer token or a valid X-Hub-Signature-256 for the source is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _summary(row: StoredEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "image": str(row.event.repository),
        "tag": row.event.tag,
        "digest": row.event.digest,
        "state": row.state.value,
        "detail": row.detail,
        "shas": list(row.shas),
        "files": list(row.files),
        "attempts": row.attempts,
    }
