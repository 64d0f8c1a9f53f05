"""The one settings object for the simulated nodes and controllers, and the simulated clock.

Pods run no processes: the simulated kubelet only decides *when* each step of a pod's life
happens. Those durations are written here in simulated seconds (roughly what a real kubelet
takes on a warm node) and divided by ``speed`` to get wall-clock seconds, so one knob makes a
whole cluster faster for tests. Durations that users write into objects (readiness
``initialDelaySeconds``, ``progressDeadlineSeconds``, Job backoff, ``ttlSecondsAfterFinished``,
CronJob schedules) are scaled by the same factor: the cluster behaves like a real one watched
through a fast-forward button.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from syrup import errors

#: Default time scale: a plain Deployment becomes available in about a second.
DEFAULT_SPEED = 5.0

#: Simulated seconds for the steps of a pod's life.
PULL_SECONDS = 2.0
START_SECONDS = 1.0
#: How long a container of a Job pod runs before it exits (overridable per pod).
JOB_RUN_SECONDS = 5.0
#: How long a crashing container runs before it exits.
CRASH_RUN_SECONDS = 1.0
#: Kubelet back-off: first delay, doubling up to the cap (image pulls and crash loops alike).
BACKOFF_FIRST = 10.0
BACKOFF_CAP = 300.0
#: Node heartbeat period (Lease renewal and Ready condition).
HEARTBEAT_SECONDS = 10.0


@dataclass(frozen=True)
class Settings:
    """How the local cluster's simulated nodes and controllers behave."""

    #: Number of simulated Ready nodes.
    nodes: int = 1
    #: Time scale: simulated seconds per wall-clock second.
    speed: float = DEFAULT_SPEED
    #: Registries that image pulls are checked against: host (``localhost:5000``) → base URL.
    registries: dict[str, str] = field(default_factory=dict)
    #: Give LoadBalancer Services and Ingresses an address.
    load_balancer: bool = True
    #: First address handed to LoadBalancer Services and Ingresses.
    load_balancer_base: str = "172.18.255.1"

    def __post_init__(self) -> None:
        if self.nodes < 0:
            raise ValueError(f"nodes must be zero or more, not {self.nodes}")
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, not {self.speed}")


def from_flags(
    *,
    nodes: int = 1,
    speed: float | None = None,
    registries: list[str] | tuple[str, ...] = (),
    load_balancer: bool = True,
) -> Settings:
    """Settings from ``syrup cluster serve`` flags; ``--registry`` values are ``HOST=URL``."""
    mapping: dict[str, str] = {}
    for value in registries:
        host, sep, url = value.partition("=")
        host, url = host.strip(), url.strip()
        if not sep or not host or not url.startswith(("http://", "https://")):
            raise errors.ConfigError(
                f"--registry {value!r}: expected HOST=URL, for example "
                "localhost:5000=http://127.0.0.1:5000"
            )
        mapping[host] = url
    if nodes < 0:
        raise errors.ConfigError(f"--nodes {nodes}: must be zero or more")
    if speed is not None and speed <= 0:
        raise errors.ConfigError(f"--speed {speed}: must be positive")
    return Settings(
        nodes=nodes,
        speed=DEFAULT_SPEED if speed is None else speed,
        registries=mapping,
        load_balancer=load_balancer,
    )


class Clock:
    """Wall-clock time plus the conversion between simulated and real durations."""

    def __init__(self, speed: float) -> None:
        self.speed = speed

    def real(self, sim_seconds: float) -> float:
        """Wall-clock seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.speed

    def sim(self, real_seconds: float) -> float:
        return real_seconds * self.speed

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()

    @staticmethod
    def wall() -> float:
        return time.time()

    @staticmethod
    def stamp(at: float | None = None) -> str:
        """A Kubernetes timestamp (RFC 3339, UTC, whole seconds)."""
        moment = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def parse(stamp: str | None) -> float | None:
        """Seconds since the epoch for a Kubernetes timestamp, ``None`` if absent or bad."""
        if not stamp:
            return None
        try:
            text = stamp.replace("Z", "+00:00")
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            return None


def backoff(attempt: int) -> float:
    """Simulated seconds to wait before retry number ``attempt`` (1-based)."""
    return float(min(BACKOFF_FIRST * 2 ** max(attempt - 1, 0), BACKOFF_CAP))
