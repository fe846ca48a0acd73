"""The live view with Ray: a browser task runs in a Ray actor; a person takes over, acts on
its sandbox through the console (the actor pulls the inputs), hands back, the model resumes.

Over real loopback HTTP only (the page's side is covered in ``test_console_live.py``).
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
from agentcorp.testing import FakeOpenAIServer
from tests.console.test_console_live import SCRIPT, WEB_CO, serve_form_site
from tests.fleet.test_ray import cluster  # noqa: F401  (the module's real Ray cluster)


def _until(cond: Any, what: str, timeout: float = 240.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_person_acts_on_a_ray_workers_browser_from_the_console(
    cluster: tuple[Any, list[Any], Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    c, _, _ = cluster
    site, seen, httpd = serve_form_site(tmp_path / "site")
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(WEB_CO.format(site=site), encoding="utf-8")
    out: list[Any] = []
    try:
        with FakeOpenAIServer(SCRIPT) as srv, Console("127.0.0.1:0") as console:
            base = console.server.base_url
            page = {"Authorization": f"Bearer {console.server.token}", "X-Agentcorp-Console": "1"}

            def state() -> Any:
                return httpx.get(base + "/api/state", headers=page, timeout=10).json()

            def go() -> None:
                out.append(
                    agentcorp.run(
                        co,
                        sessions=tmp_path / "run",
                        ray_address=c.address,
                        console=console,
                        no_cache=True,
                        base_url=srv.base_url,
                        actor_model="fake-actor",
                        no_plan=True,
                        help_timeout_s=180,
                    )
                )

            thread = threading.Thread(target=go, daemon=True)
            thread.start()
            question = _until(lambda: next(iter(state()["questions"]), None), "the help question")
            took = httpx.post(
                f"{base}/api/lease/order", json={"op": "take", "who": "ann"}, headers=page
            )
            assert took.status_code == 200, took.text
            key = took.json()["key"]
            httpx.post(
                f"{base}/api/questions/{question['id']}", json={"answer": "mine"}, headers=page
            )
            _until(lambda: state()["live"].get("order", {}).get("parked"), "the agent to park")
            for event in (
                {"kind": "click", "x": 300, "y": 170},
                {"kind": "type", "text": "blue mug"},
                {"kind": "key", "keys": "enter"},
            ):
                r = httpx.post(
                    f"{base}/api/input/order",
                    json={"who": "ann", "key": key, "event": event},
                    headers=page,
                )
                assert r.status_code == 200, r.text
            _until(lambda: state()["live"]["order"]["done"] == 3, "the inputs to run", 60)
            assert not state()["live"]["order"]["error"]
            assert any(p.startswith("/done.html?q=blue+mug") for p in seen)
            assert state()["live"]["order"]["frame"]  # frames came from the Ray worker
            httpx.post(
                f"{base}/api/lease/order", json={"op": "release", "who": "ann"}, headers=page
            )
            thread.join(240)
            assert out, "the run did not finish"
            assert out[0].backend == "ray" and out[0].passed, out[0].to_json()
            srv.assert_complete()
    finally:
        httpd.shutdown()
        httpd.server_close()
