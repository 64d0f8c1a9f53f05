"""Where Syrup keeps its state.

All state lives under one data directory so that a user can move, back up or delete it as a
unit. The default follows the XDG base-directory convention (``~/.local/share/syrup``); the
``SYRUP_DATA_DIR`` environment variable and the ``--data-dir`` flag override it, in that order
of increasing precedence.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "SYRUP_DATA_DIR"


def default_data_dir() -> Path:
    """Return the data directory chosen by the environment, without creating it."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "syrup"


def ensure_data_dir(path: Path | None) -> Path:
    """Create the data directory (mode 0700: it holds keys and tokens) and return it."""
    resolved = (path or default_data_dir()).expanduser().resolve()
    resolved.mkdir(parents=True, exist_ok=True)
    resolved.chmod(0o700)
    return resolved
