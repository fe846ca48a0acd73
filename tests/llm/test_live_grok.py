"""Live smoke test against xAI's Grok: runs only when XAI_API_KEY is set (costs a few cents).

    XAI_API_KEY=xai-... python -m pytest -m live tests/llm/test_live_grok.py -v

The suite's tripwire (``agentcorp.llm.ALLOW_REAL_REQUESTS = False``, tests/conftest.py) stays on
everywhere else; these tests lift it inside their own bodies only.
"""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image, ImageDraw

import agentcorp.llm
from agentcorp.llm import XAI, OpenAIClient, RetryPolicy, UsageMeter, check_vision, user_message
from agentcorp.planner import Plan, Planner, PlanTask
from agentcorp.testing.drive import drive
from agentcorp.types import ChatRequest

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("XAI_API_KEY"),
        reason="set XAI_API_KEY to run the live Grok smoke test",
    ),
]

CLICK = {
    "type": "function",
    "function": {
        "name": "click",
        "description": "Click at a pixel position of the screenshot.",
        "parameters": {
            "type": "object",
            "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
            "required": ["x", "y"],
        },
    },
}
# A long, stable system prompt: xAI caches prompt prefixes, so the second call of the same
# conversation (same x-grok-conv-id) should report cached tokens.
SYSTEM = "You operate a computer through tools. Act, do not talk. " + " ".join(
    f"Rule {i}: prefer visible buttons over guessing coordinates." for i in range(120)
)


def _screenshot() -> bytes:
    img = Image.new("RGB", (320, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((200, 120, 300, 170), fill="green", outline="black")
    draw.text((225, 138), "OK", fill="white")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def grok(monkeypatch: pytest.MonkeyPatch) -> OpenAIClient:
    monkeypatch.setattr(agentcorp.llm, "ALLOW_REAL_REQUESTS", True)
    return OpenAIClient(XAI, timeout=90.0, retry=RetryPolicy(max_attempts=3), meter=UsageMeter())


def test_grok_clicks_the_button_it_sees(grok: OpenAIClient) -> None:
    assert check_vision(grok, XAI.default_actor_model).takes_images
    task = grok.bind(task="live-click")
    request = ChatRequest(
        model=XAI.default_actor_model,
        messages=[
            {"role": "system", "content": SYSTEM},
            user_message("Click the green OK button.", [_screenshot()]),
        ],
        tools=[CLICK],
        tool_choice="auto",
        max_tokens=300,
    )
    resp = task.complete(request)
    assert resp.tool_calls, f"no tool call; the model said {resp.content!r}"
    call = resp.tool_calls[0]
    args = json.loads(call.arguments)
    assert call.name == "click" and {"x", "y"} <= set(args)
    assert resp.usage.prompt_tokens > 0 and resp.usage.images == 1
    assert resp.usage.cost_known and resp.usage.cost_usd > 0
    # The same conversation again: the prompt prefix should now come from xAI's cache.
    again = task.complete(request)
    assert again.usage.cached_tokens > 0, again.usage
    assert again.usage.cost_usd < resp.usage.cost_usd
    assert grok.meter.calls == 2


def test_grok_structured_output(grok: OpenAIClient) -> None:
    planner = Planner(grok.bind(task="live-plan"), model_name=XAI.default_planner_model)
    _, plan = drive(planner.plan(PlanTask("save", "Save the open document with ctrl+s.")))
    assert isinstance(plan, Plan)
    # Grok takes json_schema: no fallback was needed.
    modes = grok.notes["output_modes"]
    assert modes.working(grok.endpoint, XAI.default_planner_model) == "json_schema"
