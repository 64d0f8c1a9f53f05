"""Workflow commands in step output, the GITHUB_* command files, and secret masking.

Follows GitHub's "Workflow commands for GitHub Actions":

* ``::name key=value,key=value::message`` lines, with ``%25``/``%0D``/``%0A`` escapes in the
  message and also ``%3A``/``%2C`` in property values; ``::stop-commands::TOKEN`` suspends
  processing until ``::TOKEN::``;
* ``::set-output`` and ``::save-state`` still work but log a deprecation warning;
* the files named by ``GITHUB_ENV``/``GITHUB_OUTPUT``/``GITHUB_STATE`` hold ``NAME=value``
  lines or ``NAME<<DELIMITER`` heredocs; ``GITHUB_PATH`` holds one directory per line.

Masking replaces every registered value (and each line of a multi-line value) with ``***``;
it runs on every line before it is printed or stored.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from syrup.errors import InvalidInput

_COMMAND = re.compile(r"^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$")


@dataclass(frozen=True)
class Command:
    """A parsed ``::command`` line."""

    name: str
    properties: dict[str, str]
    message: str


def _unescape_data(text: str) -> str:
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def parse_command(line: str) -> Command | None:
    """Parse a workflow command line, or return None for ordinary output."""
    match = _COMMAND.match(line.strip())
    if not match:
        return None
    properties: dict[str, str] = {}
    for part in (match.group(2) or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            properties[key.strip()] = _unescape_property(value)
    return Command(
        name=match.group(1).lower(), properties=properties, message=_unescape_data(match.group(3))
    )


@dataclass
class Masker:
    """The set of values to hide; shared by every step of a run."""

    _values: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, value: str) -> None:
        with self._lock:
            for piece in [value, *value.splitlines()]:
                if piece.strip():
                    self._values.add(piece)

    def mask(self, text: str) -> str:
        if not self._values:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return text


def read_key_values(path: Path, *, where: str) -> dict[str, str]:
    """Parse a GITHUB_ENV/GITHUB_OUTPUT/GITHUB_STATE file."""
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    result: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            continue
        heredoc = re.match(r"^([^=<]+)<<(.+)$", line)
        if heredoc and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = heredoc.group(1), heredoc.group(2)
            body: list[str] = []
            while index < len(lines) and lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            if index >= len(lines):
                raise InvalidInput(
                    f"heredoc for {name!r} has no closing {delimiter!r}", where=where
                )
            index += 1
            result[name] = "\n".join(body)
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise InvalidInput(f"expected NAME=value, got {line[:40]!r}", where=where)
        result[name] = value
    return result


def read_paths(path: Path) -> list[str]:
    """Directories appended to GITHUB_PATH, in order."""
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
