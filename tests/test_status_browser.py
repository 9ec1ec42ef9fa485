"""The status page in a real browser: Debian's headless Chromium driven by Playwright,
against a real daemon subprocess and a local API where one pipeline fails.

Sign in with the token, open the overview, follow a failed run to its cause, press "Run
now" and see the new run, look at a monitor, mute an alert. A screenshot of each page goes to
``$PODIUM_SCREENSHOTS`` when set (``make screenshots`` writes docs/screenshots/), else
to the test's scratch folder.

Playwright drives /usr/bin/chromium (``.ci/run`` installs it); it never downloads a
browser of its own. Under CI=true a missing browser fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .alert_servers import WebhookReceiver
from .daemon_helpers import read_runs, wait_for
from .servers import items_app
from .status_helpers import TOKEN, post, start_with_token, status_config

pytestmark = pytest.mark.anyio
CHROMIUM = Path("/usr/bin/chromium")


def _need_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)


def _screenshots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("PODIUM_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


async def test_sign_in_follow_a_failure_and_run_a_pipeline_now(
    serve: Callable[..., object], tmp_path: Path
) -> None:
    _need_browser()
    from playwright.async_api import async_playwright, expect

    app, _seen = items_app(pages=3)
    base = await serve(app)
    receiver = WebhookReceiver()
    config = status_config(tmp_path, base, await serve(receiver.app()))
    shots = _screenshots(tmp_path)
    url = f"sqlite:///{tmp_path / 'podium.db'}"
    daemon = await start_with_token(config, "node-web")
    try:
        info = await daemon.wait_ready()
        root = f"http://127.0.0.1:{info['port']}"
        # Some history to look at: twelve hourly slots of orders, backfilled.
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        await post(root, "/api/pipelines/orders/backfill",
                   {"from": (hour - timedelta(hours=12)).isoformat(), "to": hour.isoformat(),
                    "concurrency": 2})  # fmt: skip

        def ready() -> bool:
            orders = [r for r in read_runs(url, "orders") if r.status == "ok"]
            failed = [r for r in read_runs(url, "broken") if r.status == "failed"]
            return len(orders) == 12 and len(failed) >= 2 and len(read_runs(url, "api_up")) >= 3

        await wait_for(ready, 30, what="the backfill, two failed runs and a few monitor runs")

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                # No reload under the test's hands (the reader's own switch in the page).
                await context.add_init_script("localStorage.setItem('podium-refresh', 'off')")
                page = await context.new_page()

                # Reads are open on loopback, writes are not: no buttons before signing in.
                await page.goto(root + "/pipelines/orders")
                await expect(page.get_by_role("heading", name="orders")).to_be_visible()
                assert await page.get_by_role("button", name="Run now").count() == 0
                await page.get_by_role("link", name="Sign in").first.click()
                await page.wait_for_url(re.compile(r"/login\?next="))
                await page.fill("input[name=token]", TOKEN)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(root + "/pipelines/orders")
                await expect(page.get_by_role("button", name="Run now")).to_be_visible()

                # The overview: every pipeline and monitor, the node, the failing one.
                await page.get_by_role("link", name="Overview").first.click()
                await page.wait_for_url(root + "/")
                broken = page.locator("tr[data-pipeline='broken']")
                await expect(broken).to_be_visible()
                await expect(page.locator("tr[data-pipeline='api_up']")).to_be_visible()
                await expect(page.locator("tr[data-node='node-web']")).to_contain_text("up")
                await page.screenshot(path=str(shots / "overview.png"), full_page=True)

                # Follow a failed run from the pipeline's bar: its cause is on the run page.
                await broken.locator(".runbar a.s-failed").last.click()
                await page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
                await expect(page.locator("h1 .badge")).to_have_text("failed")
                await expect(page.locator("#causes")).to_contain_text("HTTP 404")
                await expect(page.locator("#error")).to_contain_text("2 of 5 requests failed")
                await page.screenshot(path=str(shots / "run.png"), full_page=True)

                # Run now, on the pipeline's page: the answer is the new run's page.
                await page.goto(root + "/pipelines/orders")
                await expect(page.locator("#runs tbody tr")).to_have_count(12)
                await page.get_by_role("button", name="Run now").click()
                await page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
                new_run = page.url.rsplit("/", 1)[1]
                await expect(page.locator(".facts")).to_contain_text("manual")
                await page.get_by_role("link", name="orders").first.click()
                row = page.locator(f"tr[data-run='{new_run}']")
                await expect(row).to_contain_text("manual")
                await expect(page.locator("#runs tbody tr")).to_have_count(13)
                await wait_for(
                    lambda: any(
                        r.id == new_run and r.status == "ok" for r in read_runs(url, "orders")
                    ),
                    15,
                    what="the manual run to end",
                )
                await page.reload()
                await expect(row.locator(".badge")).to_have_text("ok")
                await page.screenshot(path=str(shots / "pipeline.png"), full_page=True)

                # A monitor's page: its check, uptime per hour, response times per hour.
                await page.goto(root + "/pipelines/api_up")
                await expect(page.locator("tr[data-check='up']")).to_contain_text("passing")
                await expect(
                    page.locator("svg[aria-label='response time per hour']")
                ).to_be_visible()
                await page.screenshot(path=str(shots / "monitor.png"), full_page=True)

                # Alerts: the incident the failures opened; mute its alert from the page.
                await page.get_by_role("link", name="Alerts").click()
                await expect(page.locator("#incidents")).to_contain_text("run broken")
                ops = page.locator("tr[data-alert='ops']")
                await ops.locator("input[name=reason]").fill("deploying a fix")
                await ops.get_by_role("button", name="Mute").click()
                await page.wait_for_url(root + "/alerts")
                await expect(page.locator("tr[data-mute='ops']")).to_contain_text("deploying a fix")
                await page.screenshot(path=str(shots / "alerts.png"), full_page=True)
                await context.close()
            finally:
                await browser.close()
        assert TOKEN not in daemon.output()
    finally:
        await daemon.aclose()
