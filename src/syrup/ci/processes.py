"""Running one step's process: its own process group, streamed output, deadlines, kills.

Each step process starts in a new session (``start_new_session``), so it and everything it
spawns share one process group that a timeout or a cancellation kills as a whole (SIGTERM,
then SIGKILL after a short grace period). A process that escapes with its own ``setsid`` is
out of reach; GitHub's hosted runners throw the whole machine away instead.

The caller's line handler sees every output line (stdout and stderr merged, as in GitHub's
log). A step may leave background processes that keep the pipe open (a test server started
with ``&``): the step ends when its main process exits, and the job kills the leftovers.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 1.0


class Ending(enum.StrEnum):
    """Why a process stopped."""

    EXITED = "exited"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Outcome:
    """Exit code (or -signal) and why the process ended."""

    code: int
    ending: Ending


def kill_group(pgid: int) -> None:
    """SIGTERM a process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    deadline: float | None,
    cancelled: Callable[[], bool],
    groups: set[int],
    stdin: bytes | None = None,
) -> Outcome:
    """Run ``argv`` to completion, a deadline (``time.monotonic``) or a cancellation."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    groups.add(process.pid)
    assert process.stdout is not None  # NB: guaranteed by stdout=PIPE; narrows the type
    stdout = process.stdout

    def read() -> None:
        for raw in iter(stdout.readline, b""):
            on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if stdin is not None and process.stdin is not None:
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass

    done = threading.Event()

    def reap() -> None:
        process.wait()
        done.set()

    threading.Thread(target=reap, daemon=True).start()
    ending = Ending.EXITED
    while not done.is_set():
        wait = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
        if done.wait(wait):
            break
        if deadline is not None and time.monotonic() >= deadline:
            ending = Ending.TIMED_OUT
        elif cancelled():
            ending = Ending.CANCELLED
        else:
            continue
        kill_group(process.pid)
        process.wait()
        break

    # Output written just before exit is still in the pipe; a background child holding the
    # pipe open must not hold the step, so the wait is bounded.
    reader.join(timeout=0.5 if ending is Ending.EXITED else 0.1)
    code = process.returncode if process.returncode is not None else -1
    return Outcome(code=code, ending=ending)
