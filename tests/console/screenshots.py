"""Takes the screenshots in docs/console.md with headless Chromium (Debian's).

    PYTHONPATH=. python -m tests.console.screenshots docs/img

A real run of a small desktop company (one task fails on purpose) for the run report, a
browser company parked on a console approval, one task taken over, for the console, and a
model-driven browser task taken over and acted on from the page for the live view.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

import agentcorp
from agentcorp.console import Console
from agentcorp.record.run_report import write_run_report
from tests.console._company import make_company
from tests.console.conftest import CHROMIUM_ARGS, _Quiet
from tests.console.test_console import _company
from tests.console.test_console_live import SCRIPT, WEB_CO, serve_form_site


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="console-shots-"))
    agentcorp.run(make_company(tmp / "a"), sessions=tmp / "run-a", no_cache=True)
    report = write_run_report(tmp / "run-a")
    root = tmp / "site"
    root.mkdir()
    for name in ("index", "pay", "refund"):
        (root / f"{name}.html").write_text(f"<h1>{name}</h1>")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (tmp / "b").mkdir()
    co = _company(tmp / "b", f"http://127.0.0.1:{httpd.server_address[1]}")
    with sync_playwright() as p, Console("127.0.0.1:0") as console:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(report.as_uri())
        page.screenshot(path=str(out / "run_report.png"), full_page=True)
        run = threading.Thread(
            target=lambda: agentcorp.run(
                co, sessions=tmp / "run-b", observers=[console.observer], no_cache=True
            ),
            daemon=True,
        )
        run.start()
        page.goto(console.url)
        page.wait_for_selector(".q[data-kind=approval]", timeout=120_000)
        page.locator(".card[data-task=pay] button.takeover").click()
        page.wait_for_selector("#dag g.node.held")
        time.sleep(0.5)
        page.screenshot(path=str(out / "console.png"), full_page=True)
        page.locator(".card[data-task=pay] button.handback").click()
        page.locator(".q[data-kind=approval] button.deny").click()
        page.wait_for_selector(".q[data-kind=approval]", timeout=60_000)
        page.locator(".q[data-kind=approval] button.deny").click()
        run.join(120)
        browser.close()
    httpd.shutdown()
    live_view(out, tmp)
    print(out / "run_report.png", out / "console.png", out / "console_live.png")


def live_view(out: Path, tmp: Path) -> None:
    """A person has taken over a browser task and typed into its form from the page."""
    from agentcorp.testing import FakeOpenAIServer

    site, _, httpd = serve_form_site(tmp / "form-site")
    co = tmp / "c"
    co.mkdir()
    (co / "company.yaml").write_text(WEB_CO.format(site=site), encoding="utf-8")
    with (
        sync_playwright() as p,
        FakeOpenAIServer(SCRIPT) as srv,
        Console("127.0.0.1:0") as console,
    ):
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        run = threading.Thread(
            target=lambda: agentcorp.run(
                co,
                sessions=tmp / "run-c",
                observers=[console.observer],
                no_cache=True,
                base_url=srv.base_url,
                actor_model="fake-actor",
                no_plan=True,
            ),
            daemon=True,
        )
        run.start()
        page.goto(console.url)
        page.wait_for_selector(".q[data-kind=help]", timeout=120_000)
        page.locator(".card[data-task=order] button.takeover").click()
        page.locator(".q[data-kind=help] input.answer").fill("I'll do it")
        page.locator(".q[data-kind=help] button.send").click()
        page.wait_for_selector(".live-view[data-parked='1']", timeout=120_000)
        img = page.locator(".live-view img.screen")
        box = img.bounding_box()
        assert box is not None
        img.click(position={"x": 300 * box["width"] / 800, "y": 170 * box["height"] / 600})
        page.locator(".live-view input.live-text").fill("blue mug")
        page.locator(".live-view button.live-type").click()
        page.wait_for_selector(".live-view[data-done='2']", timeout=60_000)
        time.sleep(1.5)  # the next live frame
        page.locator(".live-view").screenshot(path=str(out / "console_live.png"))
        page.locator(".card[data-task=order] button.handback").click()
        run.join(120)
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
