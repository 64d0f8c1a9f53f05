"""Role-based access control in Argo CD's policy CSV, evaluated by casbin.

Policy lines read as Argo CD's ``policy.csv``::

    p, role:deployer, applications, sync, default/*, allow
    g, alice, role:deployer

Resources are ``applications``, ``projects``, ``repositories``, ``clusters``, ``accounts``
and ``settings``; actions ``get``, ``create``, ``update``, ``delete``, ``sync``, ``override``
and ``action``; an application's object is ``<project>/<name>``. Two roles are built in:
``role:readonly`` (get everything) and ``role:admin`` (everything); ``admin`` has
``role:admin`` and every other account falls back to the default role (``role:readonly``
unless the policy file's ``policy.default`` line says otherwise). Deny lines win over allow.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import casbin
from casbin import model as casbin_model

from syrup import errors

RESOURCES = ("applications", "projects", "repositories", "clusters", "accounts", "settings")
ACTIONS = ("get", "create", "update", "delete", "sync", "override", "action")

_MODEL = """
[request_definition]
r = sub, res, act, obj

[policy_definition]
p = sub, res, act, obj, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && glob(r.res, p.res) && glob(r.act, p.act) && glob(r.obj, p.obj)
"""

BUILTIN = "\n".join(
    [
        *(f"p, role:readonly, {res}, get, *, allow" for res in RESOURCES),
        *(f"p, role:admin, {res}, *, *, allow" for res in RESOURCES),
        "g, admin, role:admin",
    ]
)


@dataclass(frozen=True)
class Denied:
    """The permission a request lacked (the 403 body names it)."""

    subject: str
    resource: str
    action: str
    obj: str

    def __str__(self) -> str:
        return (
            f"permission denied: {self.resource}, {self.action}, {self.obj} "
            f"(subject {self.subject})"
        )


def parse(text: str, *, where: str) -> tuple[list[list[str]], list[list[str]], str | None]:
    """Split policy CSV into p lines, g lines and an optional ``policy.default`` role."""
    policies: list[list[str]] = []
    groups: list[list[str]] = []
    default: str | None = None
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0] or cells[0].startswith("#"):
            continue
        here = f"{where}:{lineno}"
        if cells[0] == "p":
            if len(cells) not in (5, 6):
                raise errors.InvalidInput(
                    "a 'p' line has: p, subject, resource, action, object[, allow|deny]",
                    where=here,
                )
            eft = cells[5] if len(cells) == 6 else "allow"
            if eft not in ("allow", "deny"):
                raise errors.InvalidInput(f"effect must be allow or deny, not {eft!r}", where=here)
            if cells[2] not in (*RESOURCES, "*"):
                raise errors.InvalidInput(
                    f"unknown resource {cells[2]!r} (one of {', '.join(RESOURCES)})", where=here
                )
            policies.append([cells[1], cells[2], cells[3], cells[4], eft])
        elif cells[0] == "g":
            if len(cells) != 3:
                raise errors.InvalidInput("a 'g' line has: g, subject, role", where=here)
            groups.append([cells[1], cells[2]])
        elif cells[0] == "policy.default" and len(cells) == 2:
            default = cells[1]
        else:
            raise errors.InvalidInput(f"unknown line type {cells[0]!r}", where=here)
    return policies, groups, default


def _glob(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern)


class Policy:
    """A casbin enforcer over the built-in roles plus a user policy file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.text = path.read_text() if path is not None and path.exists() else ""
        self._enforcer, self.default_role = self._build(self.text)
        # Decisions are pure functions of the policy, which changes only through replace():
        # remembering them keeps a 1,000-app list from making 1,000 casbin evaluations.
        self._decisions: dict[tuple[str, str, str, str], bool] = {}
        self.version = 0

    @staticmethod
    def _build(text: str) -> tuple[casbin.Enforcer, str]:
        model = casbin_model.Model()
        model.load_model_from_text(_MODEL)
        enforcer = casbin.Enforcer(model)
        # Argo CD's globs let '*' cross '/' ('*' matches 'default/guestbook'); casbin's own
        # globMatch does not, so the matcher uses fnmatch instead.
        enforcer.add_function("glob", _glob)
        builtin_p, builtin_g, _ = parse(BUILTIN, where="built-in")
        user_p, user_g, default = parse(text, where="policy.csv")
        for line in builtin_p + user_p:
            enforcer.add_policy(*line)
        for line in builtin_g + user_g:
            enforcer.add_grouping_policy(*line)
        return enforcer, default or "role:readonly"

    def replace(self, text: str) -> None:
        """Validate and switch to a new user policy (a bad file changes nothing)."""
        enforcer, default = self._build(text)
        with self._lock:
            self._enforcer, self.default_role, self.text = enforcer, default, text
            self._decisions = {}
            self.version += 1
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(text)

    def check(self, subject: str, resource: str, action: str, obj: str) -> Denied | None:
        """None when allowed, else what was missing."""
        key = (subject, resource, action, obj)
        with self._lock:
            enforcer, default, decisions = self._enforcer, self.default_role, self._decisions
        allowed = decisions.get(key)
        if allowed is None:
            allowed = bool(
                enforcer.enforce(subject, resource, action, obj)
                or (default and enforcer.enforce(default, resource, action, obj))
            )
            if len(decisions) > 100_000:
                decisions.clear()
            decisions[key] = allowed
        return None if allowed else Denied(subject, resource, action, obj)
