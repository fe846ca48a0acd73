"""The interop scenarios, shared by the real server (llama.cpp) and the faulty fake server.

Each takes an ``OpenAIClient`` and a model name and checks only what must hold whatever the
model answers: a plan or one clean ``PlanError``; an actor episode whose every request is a
well-formed chat exchange and that ends with a status, not an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentcorp.actor import Actor, ActorConfig, BudgetMeter, Budgets, EpisodeResult, EpisodeTask
from agentcorp.llm import OpenAIClient
from agentcorp.planner import Plan, PlanError, Planner, PlanTask
from agentcorp.policy.base import AllowAll
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.types import Box, ModelCallStep, Step

TASK = PlanTask(
    "save-memo",
    "Type 'hello' into the Memo field and press Save.",
    role="Clerk",
    sandbox="office (desktop: a form with a Memo field and a Save button)",
)
GOAL = EpisodeTask("save-memo", "Click the Save button.", role="Clerk", sandbox="office")


def plan_scenario(
    client: OpenAIClient, model: str, *, reasks: int = 1
) -> tuple[list[Step], Plan | PlanError]:
    """Ask for a plan; return the steps and the plan, or the clean ``PlanError``."""
    # Short replies: a small CPU server takes seconds per call.
    planner = Planner(client, model_name=model, max_reasks=reasks, max_tokens=64)
    gen = planner.plan(TASK)
    steps: list[Step] = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        return steps, stop.value
    except PlanError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith("planner for task 'save-memo'"), msg
        assert exc.exit_code == 1
        return steps, exc


def desk() -> FakeComputer:
    """A small form: label, field and button (small screenshots keep a tiny context happy)."""
    return FakeComputer(
        [
            Widget("memo-label", "label", Box(10, 20, 60, 24), "Memo"),
            Widget("memo", "field", Box(80, 20, 200, 24), "Memo"),
            Widget("save", "button", Box(10, 80, 80, 30), "Save"),
        ],
        size=(320, 160),
    )


def episode_scenario(
    client: OpenAIClient, model: str, *, steps: int = 4
) -> tuple[list[Step], EpisodeResult]:
    """Run one actor episode on a fake desktop with the real client."""
    fc = desk()
    config = ActorConfig(
        model=model,
        image_history=1,
        long_side=96,
        max_tokens=48,
        find_timeout=0.0,
        settle_timeout=0.1,
    )
    actor = Actor(
        fc,
        gate=AllowAll(),
        model=client,
        grounder=fc.widget_grounder(),
        meter=BudgetMeter(Budgets(steps=steps)),
        config=config,
    )
    return drive(actor.run(GOAL))


def assert_well_formed(messages: Sequence[dict[str, Any]]) -> None:
    """One chat exchange as OpenAI defines it: what strict servers (llama.cpp) accept.

    System first; assistant turns carry string content (never null) and each of their tool
    calls is answered by a tool message with the same id before the next assistant turn; tool
    messages answer only calls that were made.
    """
    assert messages and messages[0]["role"] == "system", messages[:1]
    open_calls: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        assert role in ("system", "user", "assistant", "tool"), (i, role)
        if role == "assistant":
            assert not open_calls, f"message {i}: calls {open_calls} never answered"
            assert isinstance(m.get("content"), str), f"message {i}: content {m.get('content')!r}"
            for call in m.get("tool_calls") or []:
                assert call["type"] == "function" and isinstance(call["id"], str) and call["id"]
                assert isinstance(call["function"]["name"], str)
                assert isinstance(call["function"]["arguments"], str)
                open_calls.append(call["id"])
        elif role == "tool":
            tid = m.get("tool_call_id")
            assert tid in open_calls, f"message {i}: answers unknown call {tid!r}"
            open_calls.remove(tid)
        elif role == "user":
            assert not open_calls, f"message {i}: user turn before calls {open_calls} answered"
        assert m.get("content") is not None, f"message {i}: content is null"


def model_calls(steps: Sequence[Step]) -> list[ModelCallStep]:
    """The model round trips among ``steps``."""
    return [s for s in steps if isinstance(s, ModelCallStep)]
