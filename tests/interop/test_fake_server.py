"""The interop scenarios against the fake server with the faults real servers show.

Slow replies, garbage, 502s, errors inside a 200, ``response_format`` dropped or rejected, and
images dropped: the planner ends with a plan or one clean ``PlanError``, the actor episode is a
well-formed exchange that ends with a status, a text-only model is refused up front, and an
endpoint that keeps failing is one line with exit 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentcorp.errors import LLMUnavailable
from agentcorp.llm import OpenAIClient, RetryPolicy, VisionUnsupported, check_vision, custom
from agentcorp.planner import Plan, PlanError
from agentcorp.testing.fake_openai import FakeOpenAIServer
from tests.interop.scenarios import (
    episode_scenario,
    plan_scenario,
)

FAST = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002)
PLAN = {"subgoals": ["press Save"], "steps": [{"type": "hello", "into": "Memo"}]}
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


# --- the planner -----------------------------------------------------------------------------

PLAN_CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], str]] = {
    "slow": ([{"json": PLAN, "delay": 0.5}], {}, "json_schema"),
    "garbage-then-ok": ([{"fault": "garbage"}, {"json": PLAN}], {}, "json_schema"),
    "502-then-ok": ([{"fault": "server_error", "status": 502}, {"json": PLAN}], {}, "json_schema"),
    "200-with-error": (
        [{"fault": "garbage", "body": {"error": {"message": "busy"}}}, {"json": PLAN}],
        {},
        "json_schema",
    ),
    "response_format-rejected": (
        [{"json": PLAN}],
        {"reject_response_format": ["json_schema"], "reject_status": 500},
        "json_object",
    ),
    "response_format-dropped": (
        [{"content": "Plan below.\n" + str(PLAN).replace("'", '"'), "times": 3}],
        {"drop_response_format": True},
        "prompt",
    ),
}


@pytest.mark.parametrize("case", sorted(PLAN_CASES))
def test_plan_through_faults(server: Any, case: str) -> None:
    script, options, mode = PLAN_CASES[case]
    srv, client = server(script, **options)
    with client:
        _, outcome = plan_scenario(client, "fake-planner")
        assert isinstance(outcome, Plan), outcome
        assert client.notes["output_modes"].working(client.endpoint, "fake-planner") == mode
    srv.assert_complete()


def test_plan_from_a_model_that_never_complies_is_a_clean_plan_error(server: Any) -> None:
    _, client = server([{"json": {"plan": "none"}, "times": "forever"}])
    with client:
        _, outcome = plan_scenario(client, "fake-planner")
    assert isinstance(outcome, PlanError)


@pytest.mark.parametrize(
    "script",
    [
        [{"fault": "server_error", "status": 502, "times": "forever"}],
        [{"fault": "garbage", "times": "forever"}],
        [{"fault": "hang"}],
    ],
    ids=["502-forever", "garbage-forever", "hang"],
)
def test_an_endpoint_that_keeps_failing_is_exit_3(server: Any, script: Any) -> None:
    _, client = server(script)
    with client, pytest.raises(LLMUnavailable) as info:
        client._timeout = 0.3  # the hang: no need to wait the default
        plan_scenario(client, "fake-planner")
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


# --- the actor episode -----------------------------------------------------------------------


def test_episode_against_an_endpoint_that_dies_is_exit_3(server: Any) -> None:
    _, client = server([CLICK_SAVE, {"fault": "server_error", "status": 502, "times": "forever"}])
    with client, pytest.raises(LLMUnavailable) as info:
        episode_scenario(client, "fake-actor")
    assert info.value.exit_code == 3 and "after 3 attempts" in str(info.value)


# --- vision, up front ------------------------------------------------------------------------


def test_text_only_model_behind_an_image_dropping_server_is_refused(server: Any) -> None:
    srv, client = server(
        [{"when": {"purpose": "probe", "has_images": False}, "content": "It says 12."}],
        drop_images=True,
    )
    with client, pytest.raises(VisionUnsupported) as info:
        check_vision(client, "fake-actor", number=47)
    assert "'fake-actor'" in str(info.value) and info.value.exit_code == 3
    assert len(srv.chat_requests) == 1  # one probe, then no episode at all
