"""Secrets for CI runs, encrypted at rest.

Values are encrypted with Fernet (AES-128-CBC + HMAC, from ``cryptography``) under a key kept
in ``<data>/ci/secrets.key`` with mode 0600; the encrypted values live in
``<data>/ci/secrets.json``. A run receives only the secrets its workflow names
(``secrets.NAME`` in an expression, or all of them through ``secrets: inherit``); a secret the
workflow names but nobody stored is the empty string, as on GitHub.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from syrup.errors import ConfigError, InvalidInput

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE = re.compile(r"secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']+)'\s*\])")


class SecretStore:
    """Named secrets under the data dir; values are only ever decrypted in memory."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir / "ci"
        self._key_path = self._dir / "secrets.key"
        self._values_path = self._dir / "secrets.json"

    def _fernet(self) -> Fernet:
        self._dir.mkdir(parents=True, exist_ok=True)
        if not self._key_path.exists():
            descriptor = os.open(self._key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
        mode = self._key_path.stat().st_mode & 0o777
        if mode != 0o600:
            raise ConfigError(f"{self._key_path} must have mode 0600, not {mode:o}")
        return Fernet(self._key_path.read_bytes().strip())

    def _read(self) -> dict[str, str]:
        if not self._values_path.exists():
            return {}
        data = json.loads(self._values_path.read_text(encoding="utf-8"))
        return {str(key): str(value) for key, value in data.items()}

    def _write(self, values: Mapping[str, str]) -> None:
        temporary = self._values_path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(dict(values), handle, indent=1, sort_keys=True)
        temporary.replace(self._values_path)

    def set(self, name: str, value: str) -> None:
        if not _NAME.match(name) or name.upper().startswith("GITHUB_"):
            raise InvalidInput(f"bad secret name {name!r}: letters, digits, _; not GITHUB_*")
        token = self._fernet().encrypt(value.encode()).decode()
        values = self._read()
        values[name] = token
        self._write(values)

    def delete(self, name: str) -> bool:
        values = self._read()
        found = values.pop(name, None) is not None
        if found:
            self._write(values)
        return found

    def names(self) -> list[str]:
        return sorted(self._read())

    def all(self) -> dict[str, str]:
        fernet = self._fernet()
        result: dict[str, str] = {}
        for name, token in self._read().items():
            try:
                result[name] = fernet.decrypt(token.encode()).decode()
            except InvalidToken as error:
                raise ConfigError(
                    f"secret {name!r} cannot be decrypted with {self._key_path}"
                ) from error
        return result


def referenced(expressions: Iterable[str]) -> set[str]:
    """The secret names a set of expressions reads."""
    names: set[str] = set()
    for text in expressions:
        for match in _REFERENCE.finditer(text):
            names.add(match.group(1) or match.group(2))
    return names


def parse_assignments(items: Iterable[str], *, where: str) -> dict[str, str]:
    """``NAME=value`` pairs from flags or a secrets file (``#`` comments, blank lines)."""
    result: dict[str, str] = {}
    for item in items:
        text = item.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        if not sep or not _NAME.match(name.strip()):
            raise InvalidInput(f"expected NAME=value, got {text.split('=')[0]!r}", where=where)
        result[name.strip()] = value
    return result
