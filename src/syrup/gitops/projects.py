"""AppProject rules: which repositories, destinations and resource kinds an app may use.

Follows Argo CD's project semantics (REFERENCE.md, "Projects"):

* ``sourceRepos`` are globs; one starting with ``!`` denies what it matches, whatever else
  allows it. A repository URL matches with or without a trailing ``.git`` or ``/``.
* ``destinations`` pair a cluster (``server`` URL or ``name``) with a ``namespace`` glob; each
  part may be negated with ``!``, and a negated entry denies.
* Cluster-scoped kinds must match ``clusterResourceWhitelist`` (an empty whitelist allows
  none) and not ``clusterResourceBlacklist``; namespaced kinds must match
  ``namespaceResourceWhitelist`` when it is set (empty allows all) and not
  ``namespaceResourceBlacklist``. Entries are ``{group, kind}`` globs, ``""`` the core group.

A check returns a :class:`Violation` that names the rule (``spec.sourceRepos``...) instead of
raising, because a violating app is a status condition, not a crash; the controller must not
sync an app that has any. The project named ``default`` that Argo CD creates allows
everything; :data:`DEFAULT` is that project.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syrup import errors

IN_CLUSTER_SERVER = "https://kubernetes.default.svc"
IN_CLUSTER_NAME = "in-cluster"
CONDITION_TYPE = "InvalidSpecError"


class InvalidProject(errors.InvalidInput):
    """An AppProject field has the wrong shape."""


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` is the AppProject field, ``message`` says what broke it."""

    rule: str
    message: str

    def condition(self) -> dict[str, str]:
        """The Application status condition Argo CD would show."""
        return {"type": CONDITION_TYPE, "message": f"{self.message} ({self.rule})"}


@dataclass(frozen=True)
class GroupKind:
    group: str
    kind: str

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)


@dataclass(frozen=True)
class Destination:
    server: str
    name: str
    namespace: str


@dataclass(frozen=True)
class Project:
    name: str
    source_repos: tuple[str, ...]
    destinations: tuple[Destination, ...]
    cluster_whitelist: tuple[GroupKind, ...] = ()
    cluster_blacklist: tuple[GroupKind, ...] = ()
    namespace_whitelist: tuple[GroupKind, ...] = ()
    namespace_blacklist: tuple[GroupKind, ...] = ()

    def check_source(self, repo: str) -> Violation | None:
        allowed = _allowed(repo, self.source_repos, normalize=_repo_key)
        if allowed:
            return None
        return Violation(
            "spec.sourceRepos",
            f"application repo {repo} is not permitted in project '{self.name}'",
        )

    def check_destination(self, *, server: str, name: str, namespace: str) -> Violation | None:
        if self._destination_allowed(server=server, name=name, namespace=namespace):
            return None
        target = server or name
        return Violation(
            "spec.destinations",
            f"application destination server '{target}' and namespace '{namespace}' do not "
            f"match any of the allowed destinations in project '{self.name}'",
        )

    def _destination_allowed(self, *, server: str, name: str, namespace: str) -> bool:
        in_cluster = server.rstrip("/") == IN_CLUSTER_SERVER or name == IN_CLUSTER_NAME
        allowed = False
        for dest in self.destinations:
            cluster_pattern, negated_cluster = _split(dest.server or dest.name)
            ns_pattern, negated_ns = _split(dest.namespace)
            if dest.server:
                cluster_hit = fnmatch.fnmatchcase(server, cluster_pattern) or (
                    in_cluster and fnmatch.fnmatchcase(IN_CLUSTER_SERVER, cluster_pattern)
                )
            else:
                cluster_hit = fnmatch.fnmatchcase(name, cluster_pattern) or (
                    in_cluster and fnmatch.fnmatchcase(IN_CLUSTER_NAME, cluster_pattern)
                )
            ns_hit = fnmatch.fnmatchcase(namespace, ns_pattern)
            if negated_cluster or negated_ns:
                # A deny entry: its negated part matching the app's value denies outright.
                denies_cluster = negated_cluster and cluster_hit
                denies_ns = negated_ns and ns_hit
                other_matches = (negated_cluster or cluster_hit) and (negated_ns or ns_hit)
                if (denies_cluster or denies_ns) and other_matches:
                    return False
                continue
            allowed = allowed or (cluster_hit and ns_hit)
        return allowed

    def check_resource(self, *, group: str, kind: str, namespaced: bool) -> Violation | None:
        display = f"{group}/{kind}" if group else kind
        if namespaced:
            white, black = self.namespace_whitelist, self.namespace_blacklist
            white_rule, black_rule = (
                "spec.namespaceResourceWhitelist",
                "spec.namespaceResourceBlacklist",
            )
            white_ok = not white or any(gk.matches(group, kind) for gk in white)
        else:
            white, black = self.cluster_whitelist, self.cluster_blacklist
            white_rule, black_rule = (
                "spec.clusterResourceWhitelist",
                "spec.clusterResourceBlacklist",
            )
            white_ok = any(gk.matches(group, kind) for gk in white)
        scope = "namespaced" if namespaced else "cluster-scoped"
        if not white_ok:
            return Violation(
                white_rule,
                f"{scope} resource {display} is not permitted in project '{self.name}'",
            )
        if any(gk.matches(group, kind) for gk in black):
            return Violation(
                black_rule, f"{scope} resource {display} is denied in project '{self.name}'"
            )
        return None

    def check_app(
        self,
        *,
        repos: Iterable[str],
        server: str,
        name: str,
        namespace: str,
        resources: Iterable[tuple[str, str, bool]] = (),
    ) -> list[Violation]:
        """Every violation of one app: repos, destination, each (group, kind, namespaced)."""
        out = [v for repo in repos if (v := self.check_source(repo)) is not None]
        dest = self.check_destination(server=server, name=name, namespace=namespace)
        if dest is not None:
            out.append(dest)
        seen: set[tuple[str, str, bool]] = set()
        for res in resources:
            if res in seen:
                continue
            seen.add(res)
            v = self.check_resource(group=res[0], kind=res[1], namespaced=res[2])
            if v is not None:
                out.append(v)
        return out


DEFAULT = Project(
    name="default",
    source_repos=("*",),
    destinations=(Destination(server="*", name="", namespace="*"),),
    cluster_whitelist=(GroupKind("*", "*"),),
)


def _split(pattern: str) -> tuple[str, bool]:
    return (pattern[1:], True) if pattern.startswith("!") else (pattern, False)


def _repo_key(url: str) -> str:
    """Compare repos as Argo CD does, and a Helm OCI repo with or without ``oci://``."""
    url = url.strip().rstrip("/").removeprefix("oci://")
    return url[:-4] if url.endswith(".git") else url


def _allowed(value: str, patterns: Iterable[str], *, normalize: Any) -> bool:
    allowed = False
    for raw in patterns:
        pattern, negated = _split(raw)
        hit = fnmatch.fnmatchcase(value, pattern) or fnmatch.fnmatchcase(
            normalize(value), normalize(pattern)
        )
        if negated and hit:
            return False
        allowed = allowed or (hit and not negated)
    return allowed


# -- parsing --------------------------------------------------------------------------------


def _list(raw: Any, where: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidProject("expected a list", where=where)
    return raw


def _map(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidProject("expected a map", where=where)
    return raw


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidProject(f"expected a string, got {value!r}", where=f"{where}.{key}")
    return value


def _group_kinds(spec: Mapping[str, Any], key: str) -> tuple[GroupKind, ...]:
    out = []
    for i, item in enumerate(_list(spec.get(key), f"spec.{key}")):
        where = f"spec.{key}[{i}]"
        m = _map(item, where)
        kind = _text(m, "kind", where)
        if not kind:
            raise InvalidProject("kind is required", where=f"{where}.kind")
        out.append(GroupKind(group=_text(m, "group", where), kind=kind))
    return tuple(out)


def parse(obj: Mapping[str, Any]) -> Project:
    """Read an AppProject; :class:`InvalidProject` names the first wrong field."""
    meta = _map(obj.get("metadata") or {}, "metadata")
    spec = _map(obj.get("spec") or {}, "spec")
    repos = []
    for i, repo in enumerate(_list(spec.get("sourceRepos"), "spec.sourceRepos")):
        if not isinstance(repo, str) or not repo:
            raise InvalidProject("expected a non-empty string", where=f"spec.sourceRepos[{i}]")
        repos.append(repo)
    dests = []
    for i, item in enumerate(_list(spec.get("destinations"), "spec.destinations")):
        where = f"spec.destinations[{i}]"
        m = _map(item, where)
        server, name = _text(m, "server", where), _text(m, "name", where)
        if not server and not name:
            raise InvalidProject("a destination needs a server or a name", where=where)
        dests.append(
            Destination(server=server, name=name, namespace=_text(m, "namespace", where) or "*")
        )
    return Project(
        name=_text(meta, "name", "metadata"),
        source_repos=tuple(repos),
        destinations=tuple(dests),
        cluster_whitelist=_group_kinds(spec, "clusterResourceWhitelist"),
        cluster_blacklist=_group_kinds(spec, "clusterResourceBlacklist"),
        namespace_whitelist=_group_kinds(spec, "namespaceResourceWhitelist"),
        namespace_blacklist=_group_kinds(spec, "namespaceResourceBlacklist"),
    )
