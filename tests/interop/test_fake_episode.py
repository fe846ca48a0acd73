"""The actor episode against the fake server with faults: well-formed, several turns, done.

Slow replies, garbage, a 502, an error inside a 200, images dropped by a text-only proxy, and
prose before tool calls: every request the server receives is a well-formed chat exchange
(``assert_well_formed``: what llama.cpp's server insists on) and the episode ends ``done``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.testing.fake_openai import FakeOpenAIServer
from tests.interop.scenarios import assert_well_formed, episode_scenario, model_calls

FAST = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002)
CLICK_SAVE = {"tool_calls": [{"name": "click", "arguments": {"x": 25, "y": 47}}]}
DONE = {"tool_calls": [{"name": "done", "arguments": {"summary": "saved"}}]}


@pytest.fixture
def server() -> Iterator[Any]:
    started: list[FakeOpenAIServer] = []

    def start(script: Any, **options: Any) -> tuple[FakeOpenAIServer, OpenAIClient]:
        srv = FakeOpenAIServer(script, **options).start()
        started.append(srv)
        return srv, OpenAIClient(custom(srv.base_url), retry=FAST, timeout=5)

    yield start
    for srv in started:
        srv.stop()


EPISODE_CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "clean": ([CLICK_SAVE, DONE], {}),
    "slow": ([{**CLICK_SAVE, "delay": 0.3}, DONE], {}),
    "garbage": ([{"fault": "garbage"}, CLICK_SAVE, DONE], {}),
    "502": ([CLICK_SAVE, {"fault": "server_error", "status": 502}, DONE], {}),
    "200-with-error": (
        [CLICK_SAVE, {"fault": "garbage", "body": {"error": {"message": "overloaded"}}}, DONE],
        {},
    ),
    # A text-only proxy: the model never sees the screenshots, and answers anyway.
    "images-dropped": (
        [
            {"when": {"has_images": True}, "content": "unreachable", "times": "forever"},
            {"when": {"has_images": False}, **CLICK_SAVE},
            {"when": {"has_images": False}, **DONE},
        ],
        {"drop_images": True},
    ),
    "prose-then-tools": ([{"content": "I will click Save."}, CLICK_SAVE, DONE], {}),
}


@pytest.mark.parametrize("case", sorted(EPISODE_CASES))
def test_episode_through_faults(server: Any, case: str) -> None:
    script, options = EPISODE_CASES[case]
    srv, client = server(script, **options)
    with client:
        steps, result = episode_scenario(client, "fake-actor")
    assert result.status == "done", result
    for received in srv.chat_requests:
        assert_well_formed(received.body["messages"])
    assert len(model_calls(steps)) >= 2  # several turns, each recorded
