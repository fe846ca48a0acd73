"""The flows the other console tests do not cover: an approval on a desktop task, and a help
question on a browser task, answered from the console page in real Chromium."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

import agentcorp
from agentcorp.console import Console
from agentcorp.testing import FakeOpenAIServer

DESK = """\
version: 1
company: desk-approvals
policy:
  confirm: ['^file$']
  approver: {kind: console, timeout: 90}
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: approved
    role: writer
    description: Open the File menu (asks first), close it, add a line and save.
    steps:
      - click: File
      - key: Escape
      - key: ctrl+End
      - type: "Approved line."
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "Approved line."}
  - id: denied
    role: writer
    description: Open the File menu (asks first); the person says no.
    depends_on: [approved]
    steps:
      - click: File
      - key: Escape
    success: {check: file_contains, path: "~/notes.txt", text: "Approved line."}
"""

PAGE = (
    "<!doctype html><title>Form</title><body style='margin:0'>"
    "<input id=f aria-label=Word style='position:absolute;left:0;top:0;width:800px;"
    "height:200px;font-size:40px'></body>"
)

WEB = """\
version: 1
company: web-help
roles:
  clerk: {{title: Clerk, sandbox: web}}
sandboxes:
  web:
    kind: browser
    screen: [800, 600]
    start_url: {site}/form.html
tasks:
  - id: ask
    role: clerk
    description: Ask which word to enter, then enter it in the field.
    success: {{check: dom, selector: "#f", read: value, equals: Zebra}}
"""


def _act(name: str, **args: Any) -> dict[str, Any]:
    return {"when": {"purpose": "act"}, "tool_calls": [{"name": name, "arguments": args}]}


@pytest.mark.slow
def test_approve_and_deny_a_desktop_click_from_the_page(tmp_path: Path, chromium: Any) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(DESK, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    out: list[Any] = []
    with Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(agentcorp.run(co, sessions=run_dir, console=console, no_cache=True))

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.goto(console.url)
        page.wait_for_selector(".q[data-kind=approval]", timeout=120_000)
        assert "File" in page.locator(".q .text").inner_text()
        page.locator(".q[data-kind=approval] button.approve").click()
        page.wait_for_selector("#dag g.node[data-task=approved][data-status=pass]", timeout=120_000)
        page.wait_for_selector(".q[data-kind=approval]", timeout=120_000)
        page.locator(".q[data-kind=approval] button.deny").click()
        page.wait_for_selector("#dag g.node[data-task=denied][data-status=fail]", timeout=120_000)
        thread.join(120)
    assert out, "the run did not finish"
    report = out[0]
    assert [r.status for r in report.results] == ["pass", "fail"], report.to_json()
    assert "denied by console" in report.result("denied").reason
    notes = (run_dir / ".agentcorp" / "sandboxes" / "notes" / "notes.txt").read_text()
    assert notes.count("Approved line.") == 1
    lines = (run_dir / "audit-console.jsonl").read_text(encoding="utf-8").splitlines()
    answers = [e["decision"] for e in map(json.loads, lines) if e["kind"] == "console.answer"]
    assert answers == ["approve", "deny"], lines


@pytest.mark.slow
def test_help_round_trip_on_a_browser_task(tmp_path: Path, site: str, chromium: Any) -> None:
    (Path(site_root(tmp_path)) / "form.html").write_text(PAGE, encoding="utf-8")
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(WEB.format(site=site), encoding="utf-8")
    script = [
        _act("request_help", question="Which word should I enter?"),
        {
            "when": {"purpose": "act", "text_contains": "Zebra"},
            "tool_calls": [{"name": "click", "arguments": {"x": 400, "y": 100}}],
        },
        _act("type", text="Zebra"),
        _act("done", summary="entered the word"),
    ]
    out: list[Any] = []
    with FakeOpenAIServer(script) as srv, Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(
                agentcorp.run(
                    co,
                    sessions=tmp_path / "run",
                    console=console,
                    no_cache=True,
                    base_url=srv.base_url,
                    actor_model="fake-actor",
                    no_plan=True,
                    help_timeout_s=120,
                )
            )

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        page = chromium.new_page(viewport={"width": 1200, "height": 900})
        page.goto(console.url)
        page.wait_for_selector(".q[data-kind=help]", timeout=120_000)
        assert "Which word should I enter?" in page.locator(".q .text").inner_text()
        page.locator(".q[data-kind=help] input.answer").fill("Zebra")
        page.locator(".q[data-kind=help] button.send").click()
        page.wait_for_selector("#dag g.node[data-task=ask][data-status=pass]", timeout=120_000)
        thread.join(120)
        assert out and out[0].passed, (
            out and out[0].results[0].reason,
            [(r.entry, r.status) for r in srv.requests],
        )
        bodies = [str(r.body) for r in srv.chat_requests]
        assert any("answer from a person" in b and "Zebra" in b for b in bodies)
        srv.assert_complete()


def site_root(tmp_path: Path) -> Path:
    """The folder the ``site`` fixture serves (see conftest)."""
    return tmp_path / "site"
