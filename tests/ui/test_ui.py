"""The web UI end to end in real headless Chromium (Debian's, driven by Playwright).

One ``syrup up`` with the demo on its own local cluster; the test logs in, sees the demo apps
healthy, opens an app's tree, changes a Deployment with ``kubectl``, watches it turn OutOfSync
without a reload, opens the diff, syncs from the dialog and sees it Synced. Screenshots of
each page go to ``test-artifacts/ui/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.api.harness import PASSWORD, Up, start_up
from tests.conftest import KUBECTL, ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "ui"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DRIFTED = "registry.local/demo/hello:2.0-drift"
DEMO_APPS = ["demo", "guestbook-helm", "hello-plain", "podinfo-kustomize"]


@pytest.fixture(scope="module")
def demo_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    running = start_up(tmp_path_factory.mktemp("ui-up"))
    yield running
    running.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(30_000)
        yield context
        context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def kubectl(up: Up, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(up.kubeconfig), "HOME": str(up.data_dir / "home")}
    proc = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, check=True)
    return proc.stdout


def test_log_in_see_the_demo_healthy_drift_diff_and_sync(
    demo_up: Up, browser: BrowserContext
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Log in: a wrong password says so, the right one lands on the applications page.
    page.goto(demo_up.url)
    expect(page.get_by_role("heading", name="Log in to Syrup")).to_be_visible()
    shot(page, "01-login")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid username or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()

    # The demo's four apps turn Healthy and Synced, live.
    for name in DEMO_APPS:
        tile = page.locator(f'a.tile[data-app="{name}"]')
        expect(tile).to_have_class("card tile Healthy", timeout=240_000)
        expect(tile.locator(".badge.Synced")).to_be_visible(timeout=120_000)
    shot(page, "02-applications")
    page.get_by_role("button", name="List view").click()
    expect(page.locator('tr[data-app="hello-plain"] .badge.Healthy')).to_be_visible()
    shot(page, "03-applications-list")
    page.set_viewport_size({"width": 390, "height": 800})
    shot(page, "04-applications-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_label("Search").fill("plain")
    expect(page.locator("tr[data-app]")).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Tile view").click()

    # The app's tree: Application → Deployment → ReplicaSet → Pod.
    page.locator('a.tile[data-app="hello-plain"]').click()
    expect(page.get_by_role("heading", name="hello-plain")).to_be_visible()
    for kind in ("Application", "ConfigMap", "Deployment", "ReplicaSet", "Pod"):
        expect(page.locator(f'g.node[data-kind="{kind}"]').first).to_be_visible()
    expect(page.locator("#history tbody tr")).to_have_count(1)
    shot(page, "05-app-tree")

    # A kubectl change turns it OutOfSync without a reload.
    kubectl(demo_up, "-n", "demo-plain", "set", "image", "deployment/hello", f"hello={DRIFTED}")
    expect(page.locator(".summary .badge.OutOfSync")).to_be_visible(timeout=120_000)
    deployment_sync = page.locator('g.node[data-kind="Deployment"] [data-sync="OutOfSync"]')
    expect(deployment_sync).to_be_visible(timeout=60_000)
    shot(page, "06-out-of-sync")

    # Its diff names the change (keyboard: focus the node, Enter).
    node = page.locator('g.node[data-kind="Deployment"]')
    node.focus()
    page.keyboard.press("Enter")
    page.get_by_role("tab", name="Diff").click()
    expect(page.locator("aside .diff .del")).to_contain_text(DRIFTED)
    expect(page.locator("aside .diff .add")).to_contain_text("registry.local/demo/hello:1.0")
    shot(page, "07-diff-unified")
    page.get_by_role("tab", name="side-by-side").click()
    expect(page.locator("aside .side")).to_be_visible()
    shot(page, "08-diff-side-by-side")
    page.get_by_role("tab", name="Live").click()
    expect(page.locator("aside pre.code")).to_contain_text(DRIFTED)

    # Sync from the dialog; the app is Synced again and the drift is gone from the cluster.
    page.get_by_role("button", name="Sync", exact=True).click()
    dialog = page.locator("#sync-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".res-pick")).to_have_count(2)
    shot(page, "09-sync-dialog")
    dialog.get_by_role("button", name="Synchronize").click()
    expect(page.locator(".summary .badge.Synced")).to_be_visible(timeout=120_000)
    expect(page.locator(".summary .badge.Healthy")).to_be_visible(timeout=120_000)
    shot(page, "10-synced")
    assert "EXTRA" not in kubectl(
        demo_up, "-n", "demo-plain", "get", "deployment", "hello", "-o", "yaml"
    )
    assert errors == []


def test_unknown_apps_and_bad_routes_explain_themselves(
    demo_up: Up, browser: BrowserContext
) -> None:
    page = browser.new_page()
    page.goto(demo_up.url)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Applications")).to_be_visible()
    page.goto(f"{demo_up.url}/#/apps/no-such-app")
    expect(page.get_by_role("heading", name="Application “no-such-app” not found")).to_be_visible()
    shot(page, "11-not-found")
    page.goto(f"{demo_up.url}/#/apps")
    page.get_by_label("Search").fill("zzz-nothing")
    expect(page.get_by_role("heading", name="No application matches these filters")).to_be_visible()
    shot(page, "12-no-match")
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("a.tile")).to_have_count(4)
