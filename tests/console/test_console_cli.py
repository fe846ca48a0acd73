"""``agentcorp run tasks/acme --console 127.0.0.1:0``: the token URL, every task in Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_run_acme_with_the_console(tmp_path: Path, chromium: Any) -> None:
    err = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCORP_CONSOLE")}
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentcorp",
                "run",
                str(ROOT / "tasks" / "acme"),
                "--sessions",
                str(tmp_path / "run"),
                "--console",
                "127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=env,
        )
    try:
        url = None
        for _ in range(600):
            m = re.search(r"console: (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", err.read_text())
            if m:
                url = m.group(1)
                break
            assert proc.poll() is None, err.read_text()
            time.sleep(0.1)
        assert url, err.read_text()
        base = url.split("/?")[0]
        assert httpx.get(base + "/", timeout=10).status_code == 401
        assert httpx.get(base + "/api/state?token=nope", timeout=10).status_code == 401
        page = chromium.new_page(viewport={"width": 1300, "height": 900})
        page.goto(url)
        # (the page's CSP forbids eval, so no wait_for_function: poll the DOM from here)
        # Tasks come with the run's start, their dependencies with the ledger's first read.
        for _ in range(300):
            if page.locator("#dag g.node").count() >= 9 and page.locator("#dag path.edge").count():
                break
            time.sleep(0.1)
        ids = page.eval_on_selector_all("#dag g.node", "els => els.map(e => e.dataset.task)")
        assert set(ids) >= {"log-support-call", "backoffice-login", "weekly-summary"}
        assert page.locator("#dag path.edge").count() >= 4  # acme's dependencies
        assert page.locator("#conn").inner_text() == "live"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
