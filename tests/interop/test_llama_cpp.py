"""Against a real third-party server: llama-cpp-python's, serving SmolLM2-135M-Instruct.

Run with its default chat format (the GGUF's template), plain ``chatml`` and
``chatml-function-calling`` (the ``llama`` fixture is parametrised; the episode runs where an
image-bearing request gets past the chat template at all). The tiny model answers whatever it
answers; what must hold is ours: the planner returns a plan or one clean ``PlanError`` after
negotiating structured output, the actor episode is a well-formed multi-turn exchange that ends
with a status, and the text-only model is refused up front with one line and exit 3.
"""

from __future__ import annotations

import pytest

from agentcorp.llm import (
    OpenAIClient,
    RequestRejected,
    RetryPolicy,
    VisionUnsupported,
    check_vision,
    custom,
)
from agentcorp.planner import Plan, PlanError
from agentcorp.types import ChatRequest
from tests.interop.conftest import BUILD_TIMEOUT_S, MODEL, LlamaServer
from tests.interop.scenarios import (
    assert_well_formed,
    episode_scenario,
    model_calls,
    plan_scenario,
)

# The first run builds llama.cpp inside the fixture; later runs find it cached.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 600)]


def client_for(llama: LlamaServer) -> OpenAIClient:
    # A small CPU server: generous per-request timeout, few retries (it is deterministic).
    return OpenAIClient(
        custom(llama.base_url),
        retry=RetryPolicy(max_attempts=2, initial_wait=0.1, max_wait=0.5),
        timeout=420,
        timeout_source="test",
    )


def test_json_schema_is_refused_and_not_retried(llama: LlamaServer) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with client_for(llama) as client, pytest.raises(RequestRejected) as info:
        client.complete(
            ChatRequest(
                model=MODEL,
                messages=[{"role": "user", "content": "Say hi in JSON."}],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": schema},
                },
                max_tokens=16,
            )
        )
    assert "\n" not in str(info.value) and "not retried" in str(info.value)


def test_planner_negotiates_and_ends_cleanly(llama_multiturn: LlamaServer) -> None:
    with client_for(llama_multiturn) as client:
        # No re-ask: each planner call of this server reads a 2-5k token prompt on one CPU
        # thread; the fallback and one reply are what is tested here.
        steps, outcome = plan_scenario(client, MODEL, reasks=0)
        modes = client.notes["output_modes"]
        # json_schema is refused by this server: the planner fell back and remembers it.
        assert modes.candidates(client.endpoint, MODEL)[0] != "json_schema"
        assert "json_schema" not in modes.candidates(client.endpoint, MODEL)
    assert isinstance(outcome, Plan | PlanError)
    calls = model_calls(steps)
    assert calls and all(
        c.request.get("response_format", {}).get("type") != "json_schema" for c in calls
    )


def test_actor_episode_is_well_formed_and_ends(llama_multiturn: LlamaServer) -> None:
    with client_for(llama_multiturn) as client:
        steps, result = episode_scenario(client, MODEL, steps=3)
    assert result.status in ("done", "failed", "budget_exceeded"), result
    calls = model_calls(steps)
    assert len(calls) >= 2, result  # several turns, each accepted by the server
    for call in calls:
        assert_well_formed(call.request["messages"])


def test_text_only_model_is_refused_up_front(llama: LlamaServer) -> None:
    with client_for(llama) as client, pytest.raises(VisionUnsupported) as info:
        check_vision(client, MODEL)
    msg = str(info.value)
    assert "\n" not in msg and f"actor model {MODEL!r}" in msg and info.value.exit_code == 3
