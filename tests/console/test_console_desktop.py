"""Help questions and take-over on a desktop task driven by a model (real Xvfb, real mousepad,
the fake OpenAI server over HTTP), watched and answered from the console in real Chromium."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentcorp
from agentcorp.console import Console
from agentcorp.testing import FakeOpenAIServer

COMPANY = """\
version: 1
company: desk-co
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
  - id: note
    role: writer
    description: Ask which word to add, then append it to the notes and save them.
    success: {check: file_contains, path: "~/notes.txt", text: "Zebra was here."}
"""


def _act(name: str, **args: Any) -> dict[str, Any]:
    return {"when": {"purpose": "act"}, "tool_calls": [{"name": name, "arguments": args}]}


SCRIPT = [
    _act("request_help", question="Which word should I add?"),
    _act("key", keys="ctrl+End"),  # refused: a person holds the desktop
    {
        "when": {"purpose": "act", "text_contains": "control held by a person"},
        "tool_calls": [{"name": "key", "arguments": {"keys": "ctrl+End"}}],
    },
    _act("type", text="Zebra was here."),
    _act("key", keys="ctrl+s"),
    _act("done", summary="added the word"),
]


@pytest.mark.slow
def test_help_round_trip_and_take_over_on_a_desktop_task(tmp_path: Path, chromium: Any) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    out: list[Any] = []
    with FakeOpenAIServer(SCRIPT) as srv, Console("127.0.0.1:0") as console:

        def go() -> None:
            out.append(
                agentcorp.run(
                    co,
                    sessions=run_dir,
                    observers=[console.observer],
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
        assert "Which word should I add?" in page.locator(".q .text").inner_text()
        # The running task shows its last frame, step and the question's call.
        page.wait_for_selector(".card[data-task=note] img")
        assert page.evaluate("document.querySelector('.card img').naturalWidth") > 0
        # Take over first, then answer: the model's next action meets the lease.
        page.locator(".card[data-task=note] button.takeover").click()
        page.wait_for_selector("#dag g.node.held[data-task=note]")
        page.locator(".q[data-kind=help] input.answer").fill("Zebra")
        page.locator(".q[data-kind=help] button.send").click()
        page.wait_for_selector("#audit li[data-kind='control.refused']", timeout=60_000)
        page.locator(".card[data-task=note] button.handback").click()
        thread.join(180)
        assert out and out[0].passed, (
            out and out[0].results[0].reason,
            [(r.entry, r.status) for r in srv.requests],
        )
        page.wait_for_selector("#dag g.node[data-task=note][data-status=pass]", timeout=30_000)
        bodies = [str(r.body) for r in srv.chat_requests]
        # The answer reached the model as the help call's result, marked as a person's words.
        assert any("answer from a person" in b and "Zebra" in b for b in bodies)
        assert any("control held by a person" in b for b in bodies)
        srv.assert_complete()
    notes = (run_dir / ".agentcorp" / "sandboxes" / "notes" / "notes.txt").read_text()
    assert notes.count("Zebra was here.") == 1  # the refused key press never ran twice


def test_a_help_answer_after_the_timeout_is_refused_and_audited(tmp_path: Path) -> None:
    with Console("127.0.0.1:0") as console:
        base, token = console.server.base_url, console.server.token
        auth = {"Authorization": f"Bearer {token}"}
        seen: list[str] = []

        def watch() -> None:
            import time

            for _ in range(100):
                qs = console.state.snapshot()["questions"]
                if qs:
                    seen.append(qs[0]["id"])
                    return
                time.sleep(0.02)

        w = threading.Thread(target=watch)
        w.start()
        r = httpx.post(
            base + "/api/help",
            json={"task": "t", "question": "anyone?", "timeout": 0.5},
            headers=auth,
            timeout=10,
        )
        w.join()
        assert r.json()["answer"] is None and "no answer within" in r.json()["reason"]
        late = httpx.post(
            base + f"/api/questions/{seen[0]}",
            json={"answer": "too late"},
            headers={**auth, "X-Agentcorp-Console": "1"},
            timeout=10,
        )
        assert late.status_code == 409 and "not waiting" in late.json()["error"]
        # Without the page's header a change is refused even with the token.
        bare = httpx.post(base + f"/api/questions/{seen[0]}", json={}, headers=auth, timeout=10)
        assert bare.status_code == 403
        kinds = [a["kind"] for a in console.state.snapshot()["audit"]]
        assert {"help.asked", "help.timeout", "answer.refused"} <= set(kinds)
