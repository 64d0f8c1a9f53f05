"""Helm chart repositories as sources: HTTP index.yaml and an OCI registry, on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest
import uvicorn
from helm_python import chart as hchart
from helm_python import registry as hregistry
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from syrup.gitops.render import chartrepo

VERSIONS = ["0.1.0", "0.1.5", "0.2.0", "1.0.0", "1.1.0-rc.1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One packaged ``demo`` chart per version."""
    root = tmp_path_factory.mktemp("charts")
    (root / "src").mkdir()
    (root / "dist").mkdir()
    helm.Chart.create("demo", root / "src").close()
    out = []
    for version in VERSIONS:
        out.append(
            Path(hchart.package(root / "src" / "demo", destination=root / "dist", version=version))
        )
    return out


@pytest.fixture(scope="module")
def http_repo(archives: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A chart repository (index.yaml and archives) served by Starlette on 127.0.0.1."""
    root = tmp_path_factory.mktemp("repo")
    for archive in archives:
        shutil.copy(archive, root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hregistry.repo_index_generate(root, base_url=url)
    app = Starlette()
    app.mount("/", StaticFiles(directory=root))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def oci_registry(archives: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 with the charts pushed by Helm."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        url = f"oci://127.0.0.1:{port}/charts"
        with hregistry.RegistryClient(plain_http=True) as client:
            for archive in archives:
                client.push(archive, url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("target", "chosen"),
    [
        ("0.1.5", "0.1.5"),
        ("", "1.0.0"),
        ("*", "1.0.0"),
        ("^0.1", "0.1.5"),
        ("~0.1.0", "0.1.5"),
        ("0.1.x", "0.1.5"),
        ("0.x", "0.2.0"),
        (">=0.1.0 <0.2.0", "0.1.5"),
        (">=0.1.0, <0.2.0", "0.1.5"),
        ("<0.1.5 || 0.2.*", "0.2.0"),
        ("0.1.0 - 0.1.9", "0.1.5"),
        ("^1.0.0", "1.0.0"),
        (">=1.1.0-0", "1.1.0-rc.1"),
        ("1.1.0-rc.1", "1.1.0-rc.1"),
        (">1.0", None),
        (">0.1", "1.0.0"),
        ("<=0.1", "0.1.5"),
        ("!=1.0.0", "0.2.0"),
        ("^2", None),
    ],
)
def test_target_revision_picks_a_version_or_the_highest_in_its_range(
    target: str, chosen: str | None
) -> None:
    assert chartrepo.pick(VERSIONS, target) == chosen


@pytest.mark.parametrize("target", ["latest", ">=one", "1.2.3.4"])
def test_an_unreadable_range_is_an_error_naming_the_field(target: str) -> None:
    with pytest.raises(chartrepo.BadConstraint, match="targetRevision"):
        chartrepo.pick(VERSIONS, target)


def test_a_chart_from_an_http_repository_is_downloaded_once_and_cached_by_digest(
    http_repo: str, tmp_path: Path
) -> None:
    repos = chartrepo.ChartRepos(tmp_path / "cache")
    ref = chartrepo.ChartRef(http_repo, "demo", "^0.1")
    fetched = repos.fetch(ref)
    assert fetched.version == "0.1.5"
    assert fetched.digest == hchart.digest(fetched.path)
    assert fetched.path.name == f"http-{fetched.digest.removeprefix('sha256:')}.tgz"
    with helm.Chart.load(fetched.path) as chart:
        assert chart.version == "0.1.5"
        assert any("Deployment" in doc for doc in chart.render(name="r").values())

    again = repos.fetch(chartrepo.ChartRef(http_repo, "demo", "0.1.5"))
    assert again == fetched and repos.downloads == 1
    newer = repos.fetch(chartrepo.ChartRef(http_repo, "demo", "0.x"))
    assert newer.version == "0.2.0" and repos.downloads == 2


def test_an_http_repository_without_the_version_lists_what_it_has(
    http_repo: str, tmp_path: Path
) -> None:
    repos = chartrepo.ChartRepos(tmp_path / "cache")
    with pytest.raises(
        chartrepo.ChartNotFound, match=r"no version of demo matches '\^3'.*0\.1\.0, 0\.1\.5"
    ):
        repos.fetch(chartrepo.ChartRef(http_repo, "demo", "^3"))
    with pytest.raises(chartrepo.ChartNotFound, match="no chart named 'redis'"):
        repos.fetch(chartrepo.ChartRef(http_repo, "redis", "1.0.0"))


def test_an_unreachable_repository_is_retried_later(tmp_path: Path) -> None:
    repos = chartrepo.ChartRepos(tmp_path / "cache")
    with pytest.raises(chartrepo.RepoUnavailable):
        repos.fetch(chartrepo.ChartRef(f"http://127.0.0.1:{free_port()}", "demo", "1.0.0"))


def test_a_chart_from_an_oci_registry_resolves_a_range_and_is_cached_by_manifest_digest(
    oci_registry: str, tmp_path: Path
) -> None:
    repos = chartrepo.ChartRepos(tmp_path / "cache")
    auth = chartrepo.Auth(plain_http=True)
    fetched = repos.fetch(chartrepo.ChartRef(oci_registry, "demo", "~0.1"), auth=auth)
    assert fetched.version == "0.1.5"
    assert fetched.digest.startswith("sha256:")
    assert fetched.path.name == f"oci-{fetched.digest.replace(':', '-')}.tgz"
    with helm.Chart.load(fetched.path) as chart:
        assert (chart.name, chart.version) == ("demo", "0.1.5")

    assert repos.fetch(chartrepo.ChartRef(oci_registry, "demo", "0.1.5"), auth=auth) == fetched
    assert repos.downloads == 1
    latest = repos.fetch(chartrepo.ChartRef(oci_registry, "demo", ""), auth=auth)
    assert latest.version == "1.0.0" and latest.digest != fetched.digest


def test_an_oci_chart_without_a_matching_tag_is_not_found(
    oci_registry: str, tmp_path: Path
) -> None:
    repos = chartrepo.ChartRepos(tmp_path / "cache")
    with pytest.raises(chartrepo.ChartNotFound, match=r"available: 0\.1\.0"):
        repos.fetch(
            chartrepo.ChartRef(oci_registry, "demo", ">=5"), auth=chartrepo.Auth(plain_http=True)
        )
