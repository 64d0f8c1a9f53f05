"""The two glob dialects of GitHub Actions.

* **Filter patterns** (``on.push.branches``, ``tags``, ``paths``...), as documented in
  "Filter pattern cheat sheet": ``*`` matches anything but ``/``, ``**`` anything, ``?`` and
  ``+`` quantify the *preceding* character (zero-or-one, one-or-more), ``[]`` is a class, and a
  leading ``!`` negates. Patterns are applied in order and the last one that matches decides.
* **File globs** (``hashFiles``, ``actions/cache`` and artifact ``path``), as in
  ``@actions/glob``: ``*`` and ``?`` stay inside one path segment, ``**`` spans directories,
  a leading ``!`` excludes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from pathlib import Path


@functools.lru_cache(maxsize=1024)
def _filter_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char in "?+":
            out.append(char if out else re.escape(char))
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append(pattern[i : end + 1])
                i = end + 1
                continue
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def filter_matches(pattern: str, value: str) -> bool:
    """Whether one (non-negated) filter pattern matches ``value`` entirely."""
    return _filter_regex(pattern).fullmatch(value) is not None


def filter_selects(patterns: Iterable[str], value: str) -> bool:
    """Apply an ordered list of filter patterns with ``!`` negations; the last match decides."""
    selected = False
    for pattern in patterns:
        text = str(pattern)
        if text.startswith("!"):
            if selected and filter_matches(text[1:], value):
                selected = False
        elif not selected and filter_matches(text, value):
            selected = True
    return selected


@functools.lru_cache(maxsize=1024)
def _file_regex(pattern: str) -> re.Pattern[str]:
    segments = [segment for segment in pattern.strip("/").split("/") if segment not in ("", ".")]
    out: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        piece = ""
        i = 0
        while i < len(segment):
            char = segment[i]
            if char == "*":
                piece += "[^/]*"
            elif char == "?":
                piece += "[^/]"
            elif char == "[" and "]" in segment[i + 1 :]:
                end = segment.index("]", i + 1)
                piece += segment[i : end + 1]
                i = end + 1
                continue
            else:
                piece += re.escape(char)
            i += 1
        out.append(piece if last else piece + "/")
    return re.compile("".join(out))


def file_matches(pattern: str, relative: str) -> bool:
    """Whether a workspace-relative path matches one file glob (or lies under a matched dir)."""
    regex = _file_regex(pattern)
    if regex.fullmatch(relative):
        return True
    parts = relative.split("/")
    return any(regex.fullmatch("/".join(parts[:end])) for end in range(1, len(parts)))


def match_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """Regular files under ``root`` selected by file globs with ``!`` exclusions, sorted.

    ``.git`` is never searched; absolute patterns must stay inside ``root``.
    """
    includes: list[str] = []
    excludes: list[str] = []
    for raw in patterns:
        for line in str(raw).splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            target = excludes if pattern.startswith("!") else includes
            pattern = pattern.lstrip("!")
            if os.path.isabs(pattern):
                try:
                    pattern = str(Path(pattern).relative_to(root))
                except ValueError:
                    continue
            target.append(pattern)
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(name for name in subdirectories if name != ".git")
        for name in sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if any(file_matches(pattern, relative) for pattern in includes) and not any(
                file_matches(pattern, relative) for pattern in excludes
            ):
                found.append(path)
    return sorted(found)
