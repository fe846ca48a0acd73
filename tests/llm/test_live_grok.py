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
from agentcorp.llm import XAI, OpenAIClient, RetryPolicy, UsageMeter, user_message
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
    request = ChatRequest(
        model=XAI.default_actor_model,
        messages=[
            {
                "role": "system",
                "content": "You operate a computer through tools. Act, do not talk.",
            },
            user_message("Click the green OK button.", [_screenshot()]),
        ],
        tools=[CLICK],
        tool_choice="auto",
        max_tokens=300,
    )
    resp = grok.complete(request)
    assert resp.tool_calls, f"no tool call; the model said {resp.content!r}"
    call = resp.tool_calls[0]
    args = json.loads(call.arguments)
    assert call.name == "click" and {"x", "y"} <= set(args)
    assert resp.usage.prompt_tokens > 0 and resp.usage.images == 1
    assert resp.usage.cost_usd > 0 and grok.meter.calls == 1


def test_grok_structured_output(grok: OpenAIClient) -> None:
    schema = {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
        "required": ["steps"],
        "additionalProperties": False,
    }
    resp = grok.complete(
        ChatRequest(
            model=XAI.default_actor_model,
            messages=[{"role": "user", "content": "Plan, in two short steps, saving a file."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "plan", "schema": schema, "strict": True},
            },
            max_tokens=300,
            purpose="plan",
        )
    )
    plan = json.loads(resp.content or "")
    assert isinstance(plan["steps"], list) and plan["steps"]
