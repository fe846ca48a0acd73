"""The episode function fleet workers call (``agentcorp.app.episode.episode``).

The model is the real loopback ``FakeOpenAIServer``; the shared rate limit is the real SQLite
token bucket of a local fleet run. The model gives up on the first attempt and does the job
on the second: the spec's ``retry.max_attempts`` applies inside the episode, every model call
took one token, and mousepad ran on the sandbox's own desktop (its Xvfb and window manager,
as in-process), its home kept in the run folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.app.config import resolve_config
from agentcorp.app.episode import RunFolder, episode, station
from agentcorp.fleet._worker import SqliteRateLimiter
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import EpisodeContext, FleetTask
from agentcorp.fleet.policy import RateLimit
from agentcorp.spec import load_company
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
    folder = RunFolder(tmp_path / "run")
    with FakeOpenAIServer(script) as srv:
        for var in ("XAI_API_KEY", "OPENAI_API_KEY", "AGENTCORP_API_KEY"):
            monkeypatch.delenv(var, raising=False)
        env = {"AGENTCORP_BASE_URL": srv.base_url}
        cfg = resolve_config(
            environ=env, planner_model="p", actor_model="a", sessions=folder.root, no_cache=True
        )
        folder.write_settings(load_company(co / "company.yaml"), cfg)
        task = FleetTask(
            "add-line",
            api_key="llm",
            payload={"run_dir": str(folder.root), "task_id": "add-line"},
        )
        ctx = EpisodeContext(
            "add-line", attempt=1, epoch=1, worker_id="h/1/w1", node_id="n1", limiter=limiter
        )
        try:
            result = episode(task, ctx)
            desk = station(str(folder.root)).runner().sandboxes._desktops["notes"]
            display = getattr(desk, "display", None)
        finally:
            station(str(folder.root)).close()
        calls = len(srv.chat_requests)
    try:
        assert result.status == "passed", result
        assert "attempt 2" in result.detail
        assert display is not None and display.startswith(":")
        assert calls == len(script)
        # Exactly one token per model call: BURST - calls are left, then the bucket is dry.
        left = 0
        while ledger.take_token("llm", 1e-6, BURST) <= 0:
            left += 1
            assert left <= BURST
        assert left == BURST - calls
        sessions = sorted(p.parent for p in folder.root.glob("add-line/*/manifest.json"))
        assert len(sessions) == 2
        saved = (folder.sandboxes / "notes" / "notes.txt").read_text(encoding="utf-8")
        assert "Fleet was here." in saved
    finally:
        ledger.close()
