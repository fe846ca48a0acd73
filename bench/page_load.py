"""Page load under the URL policy: CDP Fetch interception against Playwright routes.

    python3 bench/page_load.py [--json] [--loads 12] [--rounds 2]

Starts the sample back office (``sandboxes/backoffice/serve.py``, Django) on a free loopback
port, logs in, and loads its "add customer" page ``--loads`` times per mode, alternating the
modes ``--rounds`` times so machine noise hits each alike:

- ``routes``: the previous design, Playwright ``context.route`` on every request (sub-resources
  continued, navigations fetched without following redirects and fulfilled), the baseline;
- ``fetch``: ``BrowserComputer`` as shipped (a browser-level CDP ``Fetch`` interception judging
  every request with the URL policy, the HTTP cache kept);
- ``none``: no interception at all, the floor (no policy: never shipped).

Prints medians of one page load (``goto`` to DOMContentLoaded plus the load event) in ms and
the ratios against ``routes`` measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentcorp.sandbox.browser import _CHROMIUM_ARGS, BrowserComputer, find_chromium  # noqa: E402

PASSWORD = "bench-page-load-pw"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, db: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BACKOFFICE_ADMIN_PASSWORD=PASSWORD)
    cmd = [sys.executable, str(ROOT / "sandboxes/backoffice/serve.py"), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--db", str(db)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the back office did not start within 120 s")


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")


def _time_loads(page: Any, url: str, loads: int, goto: Callable[[str], object]) -> list[float]:
    out = []
    for _ in range(loads):
        t = time.perf_counter()
        goto(url)
        page.wait_for_load_state("load")
        out.append((time.perf_counter() - t) * 1000)
    return out[2:] if len(out) > 4 else out  # the first loads fill the cache


def _playwright_mode(mode: str, base: str, loads: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=_CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})

        def route(r: Any) -> None:
            if r.request.is_navigation_request():
                r.fulfill(response=r.fetch(max_redirects=0))
            else:
                r.continue_()

        if mode == "routes":
            ctx.route("**/*", route)
        page = ctx.new_page()
        _login(page, base)
        url = f"{base}/admin/crm/customer/add/"
        times = _time_loads(page, url, loads, lambda u: page.goto(u, wait_until="domcontentloaded"))
        browser.close()
    return times


def _fetch_mode(base: str, loads: int) -> list[float]:
    b = BrowserComputer(allow_urls=[f"{base}/*"], capture="png")
    try:
        _login(b._page, base)
        return _time_loads(b._page, f"{base}/admin/crm/customer/add/", loads, b.goto)
    finally:
        b.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--loads", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = _serve(port, Path(tmp) / "db.sqlite3")
        try:
            times: dict[str, list[float]] = {"routes": [], "fetch": [], "none": []}
            for _ in range(args.rounds):
                for mode in times:
                    if mode == "fetch":
                        times[mode] += _fetch_mode(base, args.loads)
                    else:
                        times[mode] += _playwright_mode(mode, base, args.loads)
        finally:
            server.terminate()
            server.wait(timeout=10)
    med = {m: round(statistics.median(t), 1) for m, t in times.items()}
    out = {
        "page": "back office /admin/crm/customer/add/ (logged in)",
        "loads_per_mode": len(times["routes"]),
        "median_ms": med,
        "ratio_routes_over_fetch": round(med["routes"] / med["fetch"], 2),
        "ratio_fetch_over_none": round(med["fetch"] / med["none"], 2),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for m, v in med.items():
            print(f"{m:7s} {v:8.1f} ms")
        print(f"routes/fetch = {out['ratio_routes_over_fetch']}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
