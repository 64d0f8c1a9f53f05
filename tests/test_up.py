"""``syrup up`` as the README runs it: a fresh data dir, the demo, a push, a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.api.harness import Up, git, start_up, wait_for
from tests.conftest import KUBECTL, SYRUP, free_port


def _kubectl(kubeconfig: Path, home: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    return subprocess.run(
        [KUBECTL, *args], capture_output=True, text=True, env=env, check=True
    ).stdout


def test_first_start_prints_the_login_and_the_demo_deploys_a_push_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    up = start_up(data, env={"SYRUP_ADMIN_PASSWORD": ""})
    banner = up.log()
    assert f"Syrup is up: http://127.0.0.1:{up.port}" in banner
    password = re.search(r"password:\s+(\S+)\s+\(shown once", banner)
    assert password, banner
    assert f"KUBECONFIG={data / 'kubeconfig'}" in banner
    assert password.group(1) not in (data / "api" / "accounts.json").read_text()
    up.token = up.login(password=password.group(1))
    home = tmp_path / "home"

    # The demo: four apps in argocd, Healthy and Synced.
    def demo_healthy(target: Up) -> bool:
        with target.client() as c:
            items = c.get("/api/v1/applications").json()["items"]
        states = {
            a["metadata"]["name"]: (
                (a.get("status") or {}).get("sync", {}).get("status"),
                (a.get("status") or {}).get("health", {}).get("status"),
            )
            for a in items
        }
        return len(states) == 4 and set(states.values()) == {("Synced", "Healthy")}

    wait_for("the demo apps healthy", lambda: demo_healthy(up), timeout=240)
    apps = _kubectl(
        up.kubeconfig, home, "get", "applications.argoproj.io", "-n", "argocd", "-o", "name"
    )
    assert len(apps.split()) == 4

    # A git push to the demo repo deploys without any further command.
    url = re.search(r"git clone (\S+)", banner)
    assert url, banner
    work = tmp_path / "clone"
    git("clone", "-q", url.group(1), str(work), cwd=tmp_path)
    values = work / "guestbook-helm" / "values.yaml"
    doc = yaml.safe_load(values.read_text())
    doc["replicaCount"] = 3
    values.write_text(yaml.safe_dump(doc))
    git("commit", "-qam", "three guestbook replicas", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)

    def replicas() -> int:
        out = _kubectl(
            up.kubeconfig,
            home,
            "-n",
            "demo-helm",
            "get",
            "deployment",
            "guestbook-helm",
            "-o",
            "jsonpath={.spec.replicas}",
        )
        return int(out or 0)

    wait_for("the pushed replica count", lambda: replicas() == 3, timeout=90)

    # Ctrl-C / SIGTERM stop everything cleanly.
    assert up.stop(signal.SIGINT) == 0
    assert "syrup stopped" in up.log()

    # A second start resumes: same apps, no new password, nothing re-created.
    again = start_up(data, env={"SYRUP_ADMIN_PASSWORD": ""}, port=up.port)
    assert "shown once" not in again.log().split("Syrup is up")[-1]
    again.token = again.login(password=password.group(1))
    wait_for("the demo apps after a restart", lambda: demo_healthy(again), timeout=240)
    assert replicas() == 3
    assert again.stop() == 0

    # A lost password: --reset-admin-password prints a new one; the old one stops working.
    reset = start_up(data, env={"SYRUP_ADMIN_PASSWORD": ""}, args=["--reset-admin-password"])
    new_password = re.search(
        r"password:\s+(\S+)\s+\(shown once", reset.log().split("Syrup is up")[-1]
    )
    assert new_password and new_password.group(1) != password.group(1), reset.log()
    reset.login(password=new_password.group(1))
    with pytest.raises(httpx.HTTPStatusError):
        reset.login(password=password.group(1))
    assert reset.stop() == 0


def test_no_demo_starts_empty_and_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    up = start_up(tmp_path / "d", args=["--no-demo"])
    up.token = up.login()
    with up.client() as c:
        assert c.get("/api/v1/applications").json()["items"] == []
        assert [p["metadata"]["name"] for p in c.get("/api/v1/projects").json()["items"]] == [
            "default"
        ]
    assert "demo repo" not in up.log()
    busy = subprocess.run(
        [SYRUP, "up", "--data-dir", str(tmp_path / "e"), "--port", str(up.port), "--no-demo"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert busy.returncode == 1
    assert f"could not listen on 127.0.0.1:{up.port}" in busy.stderr
    assert up.stop() == 0


def test_a_missing_kubeconfig_is_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SYRUP, "up", "--kubeconfig", str(tmp_path / "nope"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
