"""Polling, for registries that cannot call us: list each watched repository's tags, choose
the newest by the image's policy, and queue it as an ordinary event.

A poll result goes through the same queue and the same apply step as a pushed event, so the
same rules hold: the tag is written only where the repository is referenced, never over a
newer tag, and at most once (its id is derived from the image, tag and digest, so polling the
same answer again is recognised as a known event).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import orjson

from syrup import logs
from syrup.errors import SyrupError
from syrup.updater import config, policies, refs, registry
from syrup.updater.store import StoredEvent
from syrup.updater.updating import Updater

log = logs.get(__name__)


def poll_once(updater: Updater) -> list[StoredEvent]:
    """Poll every image marked ``poll: true`` once; return the events queued."""
    settings = updater.settings.config
    queued: list[StoredEvent] = []
    clients: dict[str, registry.RegistryClient] = {}
    try:
        for image in settings.images:
            if not image.poll:
                continue
            try:
                queued.extend(_poll_image(updater, image, clients=clients))
            except SyrupError as error:
                # One unreachable registry must not stop the others.
                log.warning("poll failed", image=image.image, error=str(error))
    finally:
        for client in clients.values():
            client.close()
    return queued


def _poll_image(
    updater: Updater, image: config.ImageConfig, *, clients: dict[str, registry.RegistryClient]
) -> list[StoredEvent]:
    repository = refs.parse_repository(image.image, where="images.image")
    client = clients.get(repository.host)
    if client is None:
        client = clients[repository.host] = _client(updater.settings.config, repository.host)
    policy = policies.compile_policy(
        ordering=image.policy.ordering,
        direction=image.policy.order,
        range=image.policy.range,
        pattern=image.policy.pattern,
        extract=image.policy.extract,
    )
    tags = [tag for tag in client.list_tags(repository.path) if refs.is_tag(tag)]
    newest = policy.newest(tags)
    if newest is None:
        log.info("no eligible tag", image=image.image, tags=len(tags))
        return []
    digest = client.digest(repository.path, newest) if image.pin_digest else None
    key = f"{repository}:{newest}@{digest or ''}"
    event_id = "poll-" + hashlib.sha256(key.encode()).hexdigest()[:24]
    body = {"image": image.image, "tag": newest, "digest": digest, "id": event_id}
    payload = orjson.dumps({k: v for k, v in body.items() if v is not None})
    return updater.receive(payload, source="poll")


def _client(settings: config.UpdaterConfig, host: str) -> registry.RegistryClient:
    for entry in settings.registries:
        if host == entry.host.lower() or host in (alias.lower() for alias in entry.aliases):
            credentials = None
            if entry.username is not None and entry.password is not None:
                credentials = registry.Credentials(
                    username=entry.username, password=entry.password.resolve()
                )
            return registry.RegistryClient(
                entry.host, credentials=credentials, insecure=entry.insecure
            )
    return registry.RegistryClient(host)


class Poller:
    """Polls on a thread every ``poll_interval_seconds``; calls ``on_event`` when it queued
    something so the worker applies it at once."""

    def __init__(self, updater: Updater, *, on_event: Callable[[], None]) -> None:
        self.updater = updater
        self.on_event = on_event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="image-poller", daemon=True)

    def start(self) -> None:
        if any(image.poll for image in self.updater.settings.config.images):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        interval = self.updater.settings.config.poll_interval_seconds
        while not self._stop.is_set():
            try:
                if poll_once(self.updater):
                    self.on_event()
            except Exception:
                log.exception("poll round failed")
            self._stop.wait(interval)
