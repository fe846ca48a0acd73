"""The operator console in real Chromium, over a real run: token, DAG, approvals, take-over."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentcorp
from agentcorp.console import Console
from agentcorp.console.server import parse_bind
from agentcorp.errors import ConfigError

BROWSER_CO = """\
version: 1
company: shop-co
policy:
  confirm: ['pay[.]html', 'refund[.]html']
  approver: {{kind: console, timeout: 60}}
roles:
  clerk: {{title: Clerk, sandbox: web}}
sandboxes:
  web:
    kind: browser
    screen: [800, 600]
    start_url: {site}/index.html
tasks:
  - id: look
    role: clerk
    description: Look at the shop.
    steps:
      - open_url: {site}/index.html
    success: {{check: url_matches, url: "{site}/index.html"}}
  - id: pay
    role: clerk
    description: Pay.
    depends_on: [look]
    steps:
      - open_url: {site}/pay.html
      - open_url: {site}/index.html
    success: {{check: url_matches, url: "{site}/index.html"}}
  - id: refund
    role: clerk
    description: Refund.
    depends_on: [look]
    steps:
      - open_url: {site}/refund.html
    success: {{check: url_matches, url: "{site}/refund.html"}}
"""


def _company(tmp_path: Path, site: str) -> Path:
    co = tmp_path / "shop"
    co.mkdir()
    (co / "company.yaml").write_text(BROWSER_CO.format(site=site), encoding="utf-8")
    return co


def _run_in_thread(co: Path, run_dir: Path, console: Console) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def go() -> None:
        out.append(
            agentcorp.run(
                co, sessions=run_dir, observers=[console.observer], no_cache=True, environ=None
            )
        )

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


def _wait(cond: Any, what: str, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_parse_bind() -> None:
    assert parse_bind(None) == ("127.0.0.1", 0)
    assert parse_bind(":0") == ("127.0.0.1", 0)
    assert parse_bind("0.0.0.0:8080") == ("0.0.0.0", 8080)
    with pytest.raises(ConfigError, match="--console"):
        parse_bind("host:port")
    with pytest.raises(ConfigError, match="out of range"):
        parse_bind(":70000")


@pytest.mark.slow
def test_console_approve_deny_and_take_over_on_a_browser_task(
    tmp_path: Path, site: str, chromium: Any
) -> None:
    co = _company(tmp_path, site)
    run_dir = tmp_path / "run"
    console = Console("127.0.0.1:0").start()
    try:
        base = console.server.base_url
        # Without the token (or with a wrong one) every route answers 401.
        for path in ("/", "/api/state", "/api/events", "/api/frame/pay", "/nope"):
            assert httpx.get(base + path, timeout=5).status_code == 401
        assert httpx.get(base + "/?token=wrong", timeout=5).status_code == 401
        r = httpx.post(base + "/api/lease/pay", json={"op": "take"}, timeout=5)
        assert r.status_code == 401
        thread, out = _run_in_thread(co, run_dir, console)
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(console.url)
        cookie = next(c for c in page.context.cookies() if c["name"] == "agentcorp_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        # Every task in the DAG; pay parks on its first approval.
        page.wait_for_selector("#dag g.node[data-task=refund]")
        assert page.locator("#dag g.node").count() == 3
        page.wait_for_selector(".q[data-kind=approval]", timeout=90_000)
        assert "pay.html" in page.locator(".q .text").inner_text()
        assert page.locator("#dag g.node[data-task=look]").get_attribute("data-status") == "pass"
        # Take over pay while it waits: the lease is visible, a second person is refused.
        page.locator(".card[data-task=pay] button.takeover").click()
        page.wait_for_selector("#dag g.node.held[data-task=pay]")
        other = httpx.post(
            base + "/api/lease/pay",
            json={"op": "take", "who": "bob"},
            headers={"Authorization": f"Bearer {console.server.token}", "X-Agentcorp-Console": "1"},
            timeout=5,
        )
        assert other.status_code == 409 and "already held by console:operator" in other.text
        # Approve the first pay.html: the next action meets the lease and is refused, audited.
        page.locator(".q[data-kind=approval] button.approve").click()
        page.wait_for_selector("#audit li[data-kind='control.refused']", timeout=60_000)
        assert page.locator(".q").count() == 0  # no approval asked while held
        page.locator(".card[data-task=pay] button.handback").click()
        # Scripted steps cannot look again: the refused step fails the task, saying why.
        page.wait_for_selector("#dag g.node[data-task=pay][data-status=fail]", timeout=90_000)
        # refund asks next: deny it from the page.
        page.wait_for_selector(".q[data-kind=approval]", timeout=60_000)
        assert "refund.html" in page.locator(".q .text").inner_text()
        page.locator(".q[data-kind=approval] button.deny").click()
        page.wait_for_selector("#dag g.node[data-task=refund][data-status=fail]", timeout=90_000)
        thread.join(120)
        assert out, "the run did not finish"
        report = out[0]
        assert [r.status for r in report.results] == ["pass", "fail", "fail"]
        assert "control held by a person" in report.result("pay").reason
        assert "denied by console" in report.result("refund").reason
        # A lease on a finished task, and an answer to a question that is gone: clear refusals.
        headers = {"X-Agentcorp-Console": "1", "Authorization": f"Bearer {console.server.token}"}
        late = httpx.post(base + "/api/lease/look", json={"op": "take"}, headers=headers, timeout=5)
        assert late.status_code == 409 and "not running" in late.json()["error"]
        gone = httpx.post(
            base + "/api/questions/abc", json={"decision": "approve"}, headers=headers, timeout=5
        )
        assert gone.status_code == 409 and "not waiting" in gone.json()["error"]
        assert not errors, errors
    finally:
        console.close()
    # Everything people did is in the console's audit log, and the gate's in the run's.
    lines = (run_dir / "audit-console.jsonl").read_text(encoding="utf-8").splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    for k in (
        "console.denied",
        "console.lease.take",
        "console.lease.refused",
        "console.control.refused",
        "console.lease.release",
        "console.answer",
        "console.answer.refused",
    ):
        assert k in kinds, (k, kinds)
    run_audit = "".join(p.read_text() for p in run_dir.glob("audit-2*.jsonl"))
    assert "control held by a person" in run_audit
    assert '"approver": "console:console:operator"' in run_audit or "console:operator" in run_audit


@pytest.mark.slow
def test_console_with_worker_processes(tmp_path: Path, site: str, chromium: Any) -> None:
    """--workers: states from the ledger, approvals from the workers reach the page."""
    co = _company(tmp_path, site)
    run_dir = tmp_path / "run"
    out: list[Any] = []
    with Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(
                agentcorp.run(
                    co, sessions=run_dir, observers=[console.observer], no_cache=True, workers=2
                )
            )

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        page = chromium.new_page()
        page.goto(console.url)
        # A task parked in a worker shows its last frame, read from its session folder.
        page.wait_for_selector(".card img", timeout=120_000)
        for _ in range(2):  # pay and refund each ask once, from a worker process
            page.wait_for_selector(".q[data-kind=approval] button.approve", timeout=120_000)
            page.locator(".q[data-kind=approval] button.approve").first.click()
            page.wait_for_timeout(300)
        # (the page's CSP forbids eval, so no wait_for_function: poll the DOM from here)
        _wait(lambda: page.locator("#dag g.node[data-status=pass]").count() == 3, "3 passes")
        thread.join(120)
    assert out and out[0].passed and out[0].backend == "local", out and out[0].to_json()


def test_run_with_a_console_address_serves_it_for_the_run_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agentcorp.run(console="127.0.0.1:0")``: a console for this run, its URL on stderr."""
    from agentcorp.policy.approvers import CONSOLE_URL_ENV
    from tests.fleet.conftest_helpers import write_company

    monkeypatch.delenv(CONSOLE_URL_ENV, raising=False)
    company = write_company(tmp_path / "co", 2)
    seen: list[int] = []
    err: list[str] = []

    class Probe(agentcorp.RunObserver):
        def task_finished(self, run: Any) -> None:
            # While the run is on, its console answers with the token printed on stderr.
            err.append(capsys.readouterr().err)
            line = next(ln for ln in "".join(err).splitlines() if ln.startswith("console: "))
            seen.append(httpx.get(line.removeprefix("console: "), timeout=5).status_code)

    report = agentcorp.run(
        company,
        sessions=tmp_path / "run",
        console="127.0.0.1:0",
        observers=[Probe()],
        episode="tests.fleet.runners:spec_sleepy",
    )
    assert report.passed and seen == [200, 200], seen
    assert CONSOLE_URL_ENV not in os.environ  # closed with the run
