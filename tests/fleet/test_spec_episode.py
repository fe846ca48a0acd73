"""The fleet's spec runner (``agentcorp.cli.wiring.run_fleet_episode``) on a worker's display.

A worker-like desktop (our own Xvfb with a window manager) is handed to the episode as
``ctx.display``/``ctx.computer``; the model is the real loopback ``FakeOpenAIServer``; the
shared rate limit is the real SQLite token bucket of a local fleet run. The model gives up
on the first attempt and does the job on the second: the spec's ``retry.max_attempts``
applies inside the episode, every model call took one token, and mousepad ran on the
worker's display.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.cli.wiring import run_fleet_episode
from agentcorp.fleet._worker import SqliteRateLimiter
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import EpisodeContext, FleetTask
from agentcorp.fleet.policy import RateLimit
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.testing.fake_openai import FakeOpenAIServer

COMPANY = """\
version: 1
company: fleet-co
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [1280, 800]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: add-line
    role: writer
    description: Add the line "Fleet was here." at the end of the notes and save them.
    success: {check: file_contains, path: "~/notes.txt", text: "Fleet was here."}
    budgets: {steps: 10, wall_clock: 5m}
    retry: {max_attempts: 2}
"""

BURST = 20


def _act(name: str, **args: object) -> dict[str, object]:
    return {"when": {"purpose": "act"}, "tool_calls": [{"name": name, "arguments": args}]}


@pytest.mark.slow
def test_spec_episode_rate_limited_retried_on_the_worker_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    plan = {"when": {"purpose": "plan"}, "json": {"subgoals": ["append the line and save"]}}
    script = [
        plan,
        _act("fail", reason="not sure where the end is"),
        plan,
        _act("key", keys="ctrl+End"),
        _act("type", text="Fleet was here."),
        _act("key", keys="ctrl+s"),
        _act("done", summary="saved"),
    ]
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    limiter = SqliteRateLimiter(ledger, {"llm": RateLimit(1e-6, BURST)})
    with FakeOpenAIServer(script) as srv, XvfbDesktop(screen=(1280, 800)) as desk:
        for var in ("XAI_API_KEY", "OPENAI_API_KEY", "AGENTCORP_API_KEY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AGENTCORP_BASE_URL", srv.base_url)
        monkeypatch.setenv("AGENTCORP_PLANNER_MODEL", "p")
        monkeypatch.setenv("AGENTCORP_ACTOR_MODEL", "a")
        task = FleetTask(
            "add-line",
            api_key="llm",
            payload={"company_file": str(co / "company.yaml"), "task_id": "add-line"},
        )
        ctx = EpisodeContext(
            "add-line",
            attempt=1,
            epoch=1,
            worker_id="w1",
            node_id="n1",
            display=desk.display,
            session_dir=str(tmp_path / "s"),
            computer=desk,
            limiter=limiter,
        )
        result = run_fleet_episode(task, ctx)
        calls = len(srv.chat_requests)
    try:
        assert result.status == "passed", result
        assert "attempt 2 of 2" in result.detail
        assert f"on the worker's display {desk.display}" in result.detail
        assert calls == len(script)
        # Exactly one token per model call: BURST - calls are left, then the bucket is dry.
        left = 0
        while ledger.take_token("llm", 1e-6, BURST) <= 0:
            left += 1
            assert left <= BURST
        assert left == BURST - calls
        sessions = sorted(p.parent for p in (tmp_path / "s").glob("add-line/*/manifest.json"))
        assert len(sessions) == 2
    finally:
        ledger.close()
