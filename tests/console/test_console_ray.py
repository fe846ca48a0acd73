"""The console with Ray workers: approvals asked in a Ray actor reach the page's console.

The cluster's nodes are started before the console, so its address and token can reach the
workers only through what the run hands them (not an inherited environment).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentcorp
from agentcorp.console import Console
from tests.fleet.test_ray import cluster  # noqa: F401  (the module's real Ray cluster)

SHOP = """\
version: 1
company: ray-shop
policy:
  confirm: ['pay[.]html']
  approver: {{kind: console, timeout: 90}}
roles:
  clerk: {{title: Clerk, sandbox: web}}
sandboxes:
  web:
    kind: browser
    screen: [800, 600]
    start_url: {site}/index.html
tasks:
  - id: pay
    role: clerk
    description: Pay.
    steps:
      - open_url: {site}/pay.html
    success: {{check: url_matches, url: "{site}/pay.html"}}
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ray_worker_asks_the_console_and_gets_the_answer(
    cluster: tuple[Any, list[Any], Path],  # noqa: F811
    tmp_path: Path,
    site: str,
) -> None:
    c, _, _ = cluster
    co = tmp_path / "shop"
    co.mkdir()
    (co / "company.yaml").write_text(SHOP.format(site=site), encoding="utf-8")
    out: list[Any] = []
    with Console("127.0.0.1:0") as console:
        headers = {"Authorization": f"Bearer {console.server.token}", "X-Agentcorp-Console": "1"}
        base = console.server.base_url

        def go() -> None:
            out.append(
                agentcorp.run(
                    co,
                    sessions=tmp_path / "run",
                    ray_address=c.address,
                    console=console,
                    no_cache=True,
                    lease_s=10.0,
                )
            )

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        question = None
        end = time.monotonic() + 240
        while question is None and time.monotonic() < end and thread.is_alive():
            state = httpx.get(base + "/api/state", headers=headers, timeout=10).json()
            question = next(iter(state.get("questions") or []), None)
            time.sleep(0.2)
        assert question is not None, ("no approval reached the console", out and out[0].to_json())
        assert "pay.html" in str(question)
        r = httpx.post(
            f"{base}/api/questions/{question['id']}",
            json={"decision": "approve"},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        thread.join(240)
    assert out, "the run did not finish"
    report = out[0]
    assert report.backend == "ray"
    assert report.passed, report.to_json()
