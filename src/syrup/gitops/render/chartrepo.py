"""Helm chart repositories as Application sources: HTTP (``index.yaml``) and OCI registries.

An Application may name a chart instead of a Git path (REFERENCE.md, "Helm chart
repositories")::

    source:
      repoURL: https://charts.example.com      # or oci://registry.example.com/charts
      chart: redis
      targetRevision: 17.3.x                    # a version, or a semver range

Resolution and downloads go through Helm's own code (``helm_python``): ``repo_index`` reads an
HTTP repository's index, ``RegistryClient.tags``/``resolve`` list and pin an OCI chart, ``pull``
downloads. A range picks the highest matching version; pre-releases count only when the range
names one (Helm's rule, from the Masterminds semver library it uses).

Archives are cached by digest (the index's sha256 of the archive for HTTP, the manifest digest
for OCI) under the cache directory, so a chart version is downloaded once however many apps use
it, and a re-pushed tag with new content gets a new entry instead of a stale one. A downloaded
HTTP archive is checked against the index's digest before it enters the cache.

NB: the native calls block; the controller runs :meth:`ChartRepos.fetch` in a worker thread.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import semver
from helm_python import chart as hchart
from helm_python import errors as herrors
from helm_python import registry as hregistry

from syrup import errors, logs

_log = logs.get(__name__)


class ChartError(errors.SyrupError):
    """Base of the chart repository errors."""


class ChartNotFound(ChartError, errors.NotFound):
    """The repository has no such chart, or no version matches ``targetRevision``."""


class RepoUnavailable(ChartError, errors.Unavailable):
    """The chart repository or registry did not answer: retry later."""


class BadConstraint(ChartError, errors.InvalidInput):
    """``targetRevision`` is neither a version nor a semver range."""


@dataclass(frozen=True)
class ChartRef:
    repo_url: str
    chart: str
    target_revision: str = ""

    @property
    def oci(self) -> bool:
        return self.repo_url.startswith("oci://")

    @property
    def oci_ref(self) -> str:
        return f"{self.repo_url.rstrip('/')}/{self.chart}"


@dataclass(frozen=True)
class Fetched:
    """A chart archive in the cache."""

    path: Path
    version: str
    digest: str


# -- semver ranges (Masterminds' syntax, as Helm reads them) --------------------------------

Predicate = Callable[[semver.Version], bool]
_PARTIAL = re.compile(r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(-[0-9A-Za-z.-]+)?")
_TOKEN = re.compile(r"(\^|~>?|>=|<=|!=|>|<|=)?\s*([^\s,|<>=^~!]+)")


def _version(text: str) -> semver.Version | None:
    text = text[1:] if text[:1] in "vV" else text
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except ValueError:
        return None


def _partial(text: str, where: str) -> tuple[list[int | None], str]:
    m = _PARTIAL.fullmatch(text)
    if m is None:
        raise BadConstraint(f"cannot read {text!r} as a version", where=where)
    parts: list[int | None] = []
    for group in m.groups()[:3]:
        parts.append(None if group is None or group in "xX*" else int(group))
    # Anything after a wildcard is a wildcard too (1.x.3 means 1.x).
    for i in range(1, 3):
        if parts[i - 1] is None:
            parts[i] = None
    return parts, (m.group(4) or "")[1:]


def _bounds(parts: list[int | None], pre: str) -> tuple[semver.Version, semver.Version | None]:
    """The lowest version a partial names, and the first one past it (None: no upper)."""
    major, minor, patch = parts
    low = semver.Version(major or 0, minor or 0, patch or 0, pre or None)
    if major is None:
        return low, None
    if minor is None:
        return low, semver.Version(major + 1, 0, 0)
    if patch is None:
        return low, semver.Version(major, minor + 1, 0)
    return low, None


def _comparator(op: str, text: str, where: str) -> Predicate:
    parts, pre = _partial(text, where)
    low, high = _bounds(parts, pre)
    exact = parts[2] is not None
    major, minor, patch = parts
    if op in {"", "="}:
        if exact:
            return lambda v: v == low
        return lambda v: v >= low and (high is None or v < high)
    if op == "!=":
        return lambda v: v != low if exact else not (v >= low and (high is None or v < high))
    if op == "^":
        if major:
            upper = semver.Version(major + 1, 0, 0)
        elif minor is None:
            upper = semver.Version(1, 0, 0)
        elif minor:
            upper = semver.Version(0, minor + 1, 0)
        elif patch is None:
            upper = semver.Version(0, 1, 0)
        else:
            upper = semver.Version(0, 0, patch + 1)
        return lambda v: low <= v < upper
    if op in {"~", "~>"}:
        upper = (
            semver.Version((major or 0) + 1, 0, 0)
            if minor is None
            else semver.Version(major or 0, minor + 1, 0)
        )
        return lambda v: low <= v < upper
    if op == ">=":
        return lambda v: v >= low
    if op == ">":
        return (lambda v: v > low) if exact else (lambda v: high is not None and v >= high)
    if op == "<":
        return lambda v: v < low
    # "<=": a partial includes everything it names.
    return (lambda v: v <= low) if exact else (lambda v: high is None or v < high)


def constraint(text: str, *, where: str = "targetRevision") -> Callable[[str], bool]:
    """A test for versions, from a range such as ``^1.2``, ``>=1.0 <2.0 || 3.x``, ``1.2 - 1.4``."""
    alternatives: list[list[Predicate]] = []
    for alternative in text.split("||"):
        alt = alternative.strip()
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", alt)
        if hyphen:
            alternatives.append(
                [
                    _comparator(">=", hyphen.group(1), where),
                    _comparator("<=", hyphen.group(2), where),
                ]
            )
            continue
        preds = [_comparator(op or "", v, where) for op, v in _TOKEN.findall(alt)]
        if not preds:
            raise BadConstraint(f"empty constraint in {text!r}", where=where)
        alternatives.append(preds)
    allows_pre = "-" in text.replace(" - ", " ")

    def test(candidate: str) -> bool:
        v = _version(candidate)
        if v is None or (v.prerelease and not allows_pre):
            return False
        return any(all(p(v) for p in alt) for alt in alternatives)

    return test


def pick(versions: Iterable[str], target: str, *, where: str = "targetRevision") -> str | None:
    """The version ``target`` selects: itself when listed, else the highest in its range."""
    listed = list(versions)
    wanted = target.strip()
    if wanted in listed:
        return wanted
    test = constraint(wanted or "*", where=where)
    matching = [v for v in listed if test(v)]
    return max(matching, key=lambda v: _version(v) or semver.Version(0), default=None)


# -- fetching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Auth:
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    plain_http: bool = False
    insecure: bool = False


class ChartRepos:
    """Resolves chart references and keeps their archives in a digest-keyed cache."""

    def __init__(self, cache_dir: Path, *, index_ttl: float = 60.0) -> None:
        self.cache_dir = cache_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.index_ttl = index_ttl
        self._indexes: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.downloads = 0

    def fetch(self, ref: ChartRef, *, auth: Auth = Auth(), refresh: bool = False) -> Fetched:
        """The archive of the chart version ``ref`` selects, downloading it once."""
        log = _log.bind(repo=ref.repo_url, chart=ref.chart, revision=ref.target_revision)
        fetched = self._fetch_oci(ref, auth) if ref.oci else self._fetch_http(ref, auth, refresh)
        log.debug("chart resolved", version=fetched.version, digest=fetched.digest)
        return fetched

    def _index(self, url: str, auth: Auth, refresh: bool) -> dict[str, Any]:
        with self._lock:
            cached = self._indexes.get(url)
        if cached is not None and not refresh and time.monotonic() - cached[0] < self.index_ttl:
            return cached[1]
        try:
            index = hregistry.repo_index(
                url,
                username=auth.username,
                password=auth.password,
                insecure_skip_tls_verify=auth.insecure,
            )
        except herrors.HelmError as exc:
            raise RepoUnavailable(f"{url}: cannot read index.yaml: {exc}") from exc
        with self._lock:
            self._indexes[url] = (time.monotonic(), index)
        return index

    def _fetch_http(self, ref: ChartRef, auth: Auth, refresh: bool) -> Fetched:
        index = self._index(ref.repo_url, auth, refresh)
        entries = (index.get("entries") or {}).get(ref.chart) or []
        if not entries:
            raise ChartNotFound(f"{ref.repo_url}: no chart named {ref.chart!r}")
        by_version = {str(e.get("version")): e for e in entries}
        version = pick(by_version, ref.target_revision, where=f"{ref.chart} targetRevision")
        if version is None:
            raise ChartNotFound(_no_match(ref, by_version))
        digest = str(by_version[version].get("digest") or "")
        name = f"http-{digest}.tgz" if digest else f"http-{ref.chart}-{version}.tgz"
        target = self.cache_dir / name
        if not target.exists():
            self._download(
                target,
                lambda dest: hregistry.pull(
                    ref.chart,
                    repo_url=ref.repo_url,
                    version=version,
                    destination=dest,
                    username=auth.username,
                    password=auth.password,
                    insecure_skip_tls_verify=auth.insecure,
                ),
                expect=f"sha256:{digest}" if digest else None,
                where=f"{ref.repo_url} {ref.chart} {version}",
            )
        return Fetched(path=target, version=version, digest=f"sha256:{digest}" if digest else "")

    def _fetch_oci(self, ref: ChartRef, auth: Auth) -> Fetched:
        where = f"{ref.oci_ref}"
        try:
            with hregistry.RegistryClient(plain_http=auth.plain_http) as client:
                if auth.username:
                    host = ref.repo_url.removeprefix("oci://").split("/", 1)[0]
                    client.login(
                        host,
                        auth.username,
                        auth.password or "",
                        insecure=auth.insecure,
                        plain_http=auth.plain_http,
                    )
                tags = client.tags(ref.oci_ref)
                version = pick(tags, ref.target_revision, where=f"{ref.chart} targetRevision")
                if version is None:
                    raise ChartNotFound(_no_match(ref, tags))
                digest = str(client.resolve(f"{ref.oci_ref}:{version}")["digest"])
                target = self.cache_dir / f"oci-{digest.replace(':', '-')}.tgz"
                if not target.exists():
                    self._download(
                        target,
                        lambda dest: client.pull(
                            ref.oci_ref,
                            version=version,
                            destination=dest,
                            plain_http=auth.plain_http,
                            insecure_skip_tls_verify=auth.insecure,
                        ),
                        expect=None,
                        where=where,
                    )
        except herrors.HelmError as exc:
            raise RepoUnavailable(f"{where}: {exc}") from exc
        return Fetched(path=target, version=version, digest=digest)

    def unpack(self, fetched: Fetched) -> Path:
        """The archive extracted once into a shared read-only tree (the chart in its folder)."""
        target = self.cache_dir / "trees" / fetched.path.stem
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
        try:
            with tarfile.open(fetched.path) as tar:
                tar.extractall(tmp, filter="data")
            os.replace(tmp, target)
        except OSError as exc:
            # Another worker may have put the same tree in place first.
            if not target.exists():
                raise RepoUnavailable(f"{fetched.path.name}: cannot unpack: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _download(
        self, target: Path, pull: Callable[[str], Any], *, expect: str | None, where: str
    ) -> None:
        # Pull into a private directory and rename: a half-written archive never looks cached.
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".pull-"))
        try:
            try:
                pull(str(tmp))
            except herrors.HelmError as exc:
                raise RepoUnavailable(f"{where}: download failed: {exc}") from exc
            archives = list(tmp.glob("*.tgz"))
            if len(archives) != 1:
                raise RepoUnavailable(f"{where}: download produced no chart archive")
            if expect is not None and hchart.digest(archives[0]) != expect:
                raise RepoUnavailable(f"{where}: archive digest does not match the index")
            os.replace(archives[0], target)
            self.downloads += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _no_match(ref: ChartRef, versions: Iterable[str]) -> str:
    known = ", ".join(sorted(versions, key=lambda v: _version(v) or semver.Version(0))) or "none"
    return (
        f"{ref.repo_url}: no version of {ref.chart} matches {ref.target_revision!r} "
        f"(available: {known})"
    )
