"""Local accounts, passwords and tokens for the API server.

Follows Argo CD's local-user model: a built-in ``admin`` account whose initial password is
generated on first start, printed once and stored only as a bcrypt hash; further local
accounts; session tokens from ``POST /api/v1/session`` and long-lived API tokens for
automation (``syrup account generate-token``).

A token reads ``syr_<id>_<secret>``: the id names the stored record, the secret is kept only
as its SHA-256 (tokens are random 256-bit values, so a fast hash is enough; bcrypt is kept for
the human-chosen passwords). Everything lives in one JSON file (mode 0600) in the data dir,
rewritten atomically, so a restart keeps sessions and tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import bcrypt

from syrup import errors, logs

_log = logs.get(__name__)

ADMIN = "admin"
SESSION_SECONDS = 24 * 3600
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
_TOKEN_RE = re.compile(r"^syr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


class AuthError(errors.GiveUp):
    """Wrong credentials or an unknown, expired or revoked token."""


class AccountRecord(TypedDict):
    password_hash: str
    enabled: bool


class TokenRecord(TypedDict):
    subject: str
    kind: str  # "session" or "api"
    digest: str
    issued_at: float
    expires_at: float  # 0 for never
    description: str


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    subject: str
    token_id: str
    kind: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def generate_password() -> str:
    """A password a person can type once: 20 URL-safe characters."""
    return secrets.token_urlsafe(15)


def validate_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise errors.InvalidInput(
            "must be lower-case letters, digits, '-', '_' or '.', at most 63", where="name"
        )


class Accounts:
    """The account and token store behind the API server (thread-safe, file-backed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.accounts: dict[str, AccountRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}
        self._load()

    # -- persistence ----------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise errors.ConfigError(f"{self.path}: unreadable account store: {exc}") from exc
        self.accounts = dict(raw.get("accounts") or {})
        self.tokens = dict(raw.get("tokens") or {})

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"accounts": self.accounts, "tokens": self.tokens}, indent=1)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        os.replace(tmp, self.path)

    # -- accounts -------------------------------------------------------------------------

    def ensure_admin(self, *, password: str | None = None) -> str | None:
        """Create ``admin`` on first start; return the initial password only then."""
        with self._lock:
            if ADMIN in self.accounts:
                return None
            initial = password or generate_password()
            self.accounts[ADMIN] = {"password_hash": _hash_password(initial), "enabled": True}
            self._save()
        _log.info("admin account created")
        return initial

    def create_account(self, name: str, *, password: str | None) -> None:
        validate_name(name)
        with self._lock:
            if name in self.accounts:
                raise errors.InvalidInput(f"account {name!r} already exists", where="name")
            hashed = _hash_password(password) if password else ""
            self.accounts[name] = {"password_hash": hashed, "enabled": True}
            self._save()

    def delete_account(self, name: str) -> None:
        if name == ADMIN:
            raise errors.InvalidInput("the admin account cannot be deleted", where="name")
        with self._lock:
            if self.accounts.pop(name, None) is None:
                raise errors.NotFound(f"account {name!r} not found")
            self.tokens = {k: v for k, v in self.tokens.items() if v["subject"] != name}
            self._save()

    def set_password(self, name: str, *, current: str | None, new: str) -> None:
        if len(new) < 8:
            raise errors.InvalidInput("must be at least 8 characters", where="newPassword")
        if current is not None and not self.check_password(name, current):
            raise AuthError("current password is wrong")
        with self._lock:
            record = self.accounts.get(name)
            if record is None:
                raise errors.NotFound(f"account {name!r} not found")
            record["password_hash"] = _hash_password(new)
            # A new password ends every session opened with the old one.
            self.tokens = {
                k: v
                for k, v in self.tokens.items()
                if not (v["subject"] == name and v["kind"] == "session")
            }
            self._save()

    def check_password(self, name: str, password: str) -> bool:
        record = self.accounts.get(name)
        if record is None or not record["enabled"] or not record["password_hash"]:
            # Spend the same time as a real check so names cannot be probed by timing.
            bcrypt.checkpw(b"x", _DUMMY_HASH)
            return False
        return bcrypt.checkpw(password.encode(), record["password_hash"].encode())

    def list_accounts(self) -> list[dict[str, Any]]:
        out = []
        for name, record in sorted(self.accounts.items()):
            tokens = [
                {"id": tid, "issuedAt": t["issued_at"], "expiresAt": t["expires_at"]}
                | {"description": t["description"]}
                for tid, t in self.tokens.items()
                if t["subject"] == name and t["kind"] == "api"
            ]
            out.append({"name": name, "enabled": record["enabled"], "tokens": tokens})
        return out

    # -- tokens ---------------------------------------------------------------------------

    def issue(
        self, subject: str, *, kind: str, expires_in: float | None, description: str = ""
    ) -> tuple[str, str]:
        """A new token for ``subject``; returns (token id, token)."""
        if subject not in self.accounts:
            raise errors.NotFound(f"account {subject!r} not found")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._expire(now)
            self.tokens[token_id] = {
                "subject": subject,
                "kind": kind,
                "digest": _digest(secret),
                "issued_at": now,
                "expires_at": now + expires_in if expires_in else 0.0,
                "description": description,
            }
            self._save()
        return token_id, f"syr_{token_id}_{secret}"

    def revoke(self, token_id: str) -> None:
        with self._lock:
            if self.tokens.pop(token_id, None) is None:
                raise errors.NotFound(f"token {token_id!r} not found")
            self._save()

    def resolve(self, token: str) -> Principal:
        """The principal a token stands for, or :class:`AuthError`."""
        match = _TOKEN_RE.match(token)
        record = self.tokens.get(match.group(1)) if match else None
        if match is None or record is None:
            raise AuthError("invalid or revoked token")
        if not hmac.compare_digest(record["digest"], _digest(match.group(2))):
            raise AuthError("invalid or revoked token")
        if record["expires_at"] and record["expires_at"] < time.time():
            raise AuthError("token expired")
        account = self.accounts.get(record["subject"])
        if account is None or not account["enabled"]:
            raise AuthError("account disabled")
        return Principal(subject=record["subject"], token_id=match.group(1), kind=record["kind"])

    def _expire(self, now: float) -> None:
        self.tokens = {
            k: v for k, v in self.tokens.items() if not v["expires_at"] or v["expires_at"] > now
        }


_DUMMY_HASH = bcrypt.hashpw(b"dummy", bcrypt.gensalt(4))
