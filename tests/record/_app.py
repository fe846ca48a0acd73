"""A small recorded run for the record tests: the real actor loop on the shipped FakeComputer.

The "app" is a form with a Name field and an OK button; OK writes the field's value to
``HOME/form.txt`` and shows "Saved!". Runs are driven by the shipped ``ScriptedLLM`` (model
steps) or by scripted spec steps grounded with the fake's widget grounder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcorp.actor.loop import ActorConfig, EpisodeResult, EpisodeTask, run_episode
from agentcorp.checks import CheckContext, evaluate_steps
from agentcorp.grounding.base import Grounder
from agentcorp.policy.base import AllowAll
from agentcorp.record.episode import episode_manifest
from agentcorp.record.recorder import SessionRecorder, capture_final_state
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import Box, ChatModel, Step

SECRET = "hunter2-Sup3rS3cret"
FIELD = Box(100, 100, 420, 40)
SUCCESS = {"all": [{"check": "file_contains", "path": "~/form.txt", "text": "Alice"}]}


OK_AT = Box(100, 200, 120, 40)


def make_app(home: Path, *, ok_at: Box = OK_AT) -> FakeComputer:
    fc = FakeComputer(
        [
            Widget("title", "label", Box(100, 40, 400, 40), "Customer form"),
            Widget("name", "field", FIELD, "Name"),
            Widget("ok", "button", ok_at, "OK"),
        ]
    )

    def ok(c: FakeComputer) -> None:
        (home / "form.txt").write_text(c.widget("name").value, encoding="utf-8")
        if not any(w.name == "saved" for w in c.widgets):
            c.add(Widget("saved", "label", Box(100, 300, 300, 40), "Saved!"))

    fc.widget("ok").on_click = ok
    return fc


def model_script(text: str = "Alice") -> list[Any]:
    # Model coordinates are in the 1024x640 frame the model sees (screen 1280x800 * 0.8).
    return [
        {
            "content": "I will focus the name field.",
            "tool_calls": [("click", {"x": 200, "y": 96})],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 20, "cost_usd": 0.0012},
        },
        tool_reply("type", text=text),
        tool_reply("click", x=128, y=176),
        tool_reply("done", summary="form saved"),
    ]


@dataclass
class Recorded:
    folder: Path
    result: EpisodeResult
    steps: list[Step]
    home: Path


def spec_hash(task: EpisodeTask) -> str:
    return hashlib.sha256(
        json.dumps([task.task_id, task.goal, list(task.steps)], sort_keys=True).encode()
    ).hexdigest()


def record(
    folder: Path,
    home: Path,
    *,
    script: Sequence[Any] | None = None,
    steps: Sequence[Any] = (),
    model: ChatModel | None = None,
    secrets: Sequence[str] = (SECRET,),
    computer: FakeComputer | None = None,
    grounder: Grounder | None = None,
    goal: str = "Enter Alice as the customer name and press OK",
    config: ActorConfig | None = None,
    recorder_factory: Callable[..., SessionRecorder] | None = None,
    capture: bool = True,
) -> Recorded:
    """Run the real loop once and record it; checks evaluated with agentcorp.checks."""
    home.mkdir(parents=True, exist_ok=True)
    fc = computer or make_app(home)
    cfg = config or ActorConfig(model="grok-test")
    task = EpisodeTask("fill-form", goal, role="clerk", sandbox="desktop", steps=list(steps))
    if model is None and script is not None:
        model = ScriptedLLM(list(script), model="grok-test")
    factory = recorder_factory or (lambda **kw: SessionRecorder(folder, **kw))
    rec = factory(
        task_id=task.task_id,
        spec_hash=spec_hash(task),
        sandbox_info={"kind": "fake", "screen": list(fc.size)},
        models={"actor": cfg.model, "temperature": cfg.temperature},
        secrets=secrets,
        seeds={"python": 0},
        budgets={"steps": 50},
        task_spec={"id": task.task_id, "success": SUCCESS},
        extra=episode_manifest(task, cfg),
    )
    gen = run_episode(
        fc,
        task,
        gate=AllowAll(),
        model=model,
        grounder=grounder or fc.widget_grounder(),
        config=cfg,
    )
    out: list[Step] = []
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            result: EpisodeResult = stop.value
            break
        rec.write(step)
        out.append(step)
    status, checks = evaluate_steps(SUCCESS, CheckContext(home=home))
    for c in checks:
        rec.write(c)
        out.append(c)
    if capture:
        capture_final_state(rec, SUCCESS, home)
    rec.finish({"status": "pass" if status == "pass" else "fail", "reason": result.reason})
    return Recorded(rec.folder, result, out, home)
