"""Structured-output negotiation: json_schema → json_object → plain prompt, remembered per run.

Against the fake OpenAI server over real HTTP, whose faults stand for what real servers do:
rejecting ``json_schema`` with HTTP 500 (llama.cpp's Python server), dropping
``response_format`` without a word, or answering in prose around the JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentcorp.errors import LLMUnavailable
from agentcorp.llm import OpenAIClient, RequestRejected, RetryPolicy, custom
from agentcorp.llm.structured import JsonNotFound, OutputModes, extract_json, shape_request
from agentcorp.planner import PlanError, Planner, PlanTask
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import ModelCallStep, PlanStep

Serve = Callable[..., FakeOpenAIServer]
PLAN = {"subgoals": ["save the memo"], "steps": [{"click": "File"}]}
TASK = PlanTask("memo", "Write a memo", role="Clerk")
FAST = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002)


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeOpenAIServer]]:
    servers: list[FakeOpenAIServer] = []

    def start(script: Any, **kw: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(script, **kw).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


def client(srv: FakeOpenAIServer) -> OpenAIClient:
    return OpenAIClient(custom(srv.base_url), retry=FAST, timeout=10)


def formats(srv: FakeOpenAIServer) -> list[str]:
    return [r.response_format for r in srv.chat_requests]


def test_json_schema_first_when_the_server_takes_it(serve: Serve) -> None:
    srv = serve([{"when": {"response_format": "json_schema"}, "json": PLAN}])
    with client(srv) as c:
        steps, plan = drive(Planner(c, model_name="m").plan(TASK))
    assert plan.subgoals == ["save the memo"] and formats(srv) == ["json_schema"]
    assert [type(s) for s in steps] == [ModelCallStep, PlanStep]


@pytest.mark.parametrize("status", [400, 422, 500])
def test_rejected_json_schema_falls_back_to_json_object_once_per_run(
    serve: Serve, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    srv = serve(
        [{"when": {"response_format": "json_object"}, "json": PLAN, "times": 2}],
        reject_response_format=["json_schema"],
        reject_status=status,
    )
    with client(srv) as c, caplog.at_level(logging.WARNING, "agentcorp.llm.structured"):
        # Two tasks of one run: bound views share what the run learned about the endpoint.
        _, p1 = drive(Planner(c.bind(task="a"), model_name="m").plan(TASK))
        _, p2 = drive(Planner(c.bind(task="b"), model_name="m").plan(TASK))
    assert p1 == p2
    assert formats(srv) == ["json_schema", "json_object", "json_object"]
    second = srv.chat_requests[1].body["messages"]
    assert "validates against this JSON Schema" in second[0]["content"]
    assert '"subgoals"' in second[0]["content"]  # the schema itself is in the prompt
    fallbacks = [r for r in caplog.records if "falling back to json_object" in r.message]
    assert len(fallbacks) == 1, caplog.text  # logged once per run, not once per task


def test_dropped_response_format_falls_back_to_strict_extraction(serve: Serve) -> None:
    prose = "Sure! Here is the plan:\n```json\n" + json.dumps(PLAN) + "\n```\nGood luck."
    srv = serve([{"content": prose, "times": 3}], drop_response_format=True)
    with client(srv) as c:
        _, plan = drive(Planner(c, model_name="m").plan(TASK))
    assert plan.model_dump(mode="json", exclude_none=True)["steps"] == [{"click": "File"}]
    assert formats(srv) == ["json_schema", "json_object", "none"]


def test_both_json_modes_rejected_then_plain_prompt(serve: Serve) -> None:
    srv = serve(
        [{"when": {"response_format": "none"}, "content": "Plan: " + json.dumps(PLAN)}],
        reject_response_format=["json_schema", "json_object"],
        reject_status=500,
    )
    with client(srv) as c:
        _, plan = drive(Planner(c, model_name="m").plan(TASK))
        assert c.notes["output_modes"].working(c.endpoint, "m") == "prompt"
    assert plan.subgoals and formats(srv) == ["json_schema", "json_object", "none"]


def test_the_memory_is_per_model(serve: Serve) -> None:
    srv = serve(
        [
            {"when": {"model": "small", "response_format": "json_object"}, "json": PLAN},
            {"when": {"model": "big", "response_format": "json_schema"}, "json": PLAN},
        ],
    )
    modes = OutputModes()
    modes.fails(srv.base_url, "small", "json_schema", "HTTP 500: test")
    with client(srv) as c:
        drive(Planner(c, model_name="small", modes=modes).plan(TASK))
        drive(Planner(c, model_name="big", modes=modes).plan(TASK))
    assert formats(srv) == ["json_object", "json_schema"]


def test_a_tiny_model_that_never_validates_is_a_clean_plan_error(serve: Serve) -> None:
    srv = serve([{"json": {"nonsense": True}, "times": 3}], reject_response_format=["json_schema"])
    with client(srv) as c, pytest.raises(PlanError) as info:
        drive(Planner(c, model_name="m", max_reasks=2).plan(TASK))
    msg = str(info.value)
    assert "\n" not in msg and "no valid plan after 3 attempts" in msg and info.value.exit_code == 1
    assert formats(srv) == ["json_schema", "json_object", "json_object", "json_object"]


def test_a_plain_request_refused_is_not_a_plan_error(serve: Serve) -> None:
    srv = serve([], reject_response_format=["json_schema", "json_object"])
    srv_msgs = serve([{"fault": "status", "status": 400, "times": 3}])
    with client(srv_msgs) as c, pytest.raises(RequestRejected):
        drive(Planner(c, model_name="m").plan(TASK))
    # json_schema and json_object refused, then the plain prompt: nothing scripted → HTTP 400.
    with client(srv) as c, pytest.raises(RequestRejected):
        drive(Planner(c, model_name="m").plan(TASK))
    assert formats(srv) == ["json_schema", "json_object", "none"]


@pytest.mark.parametrize(
    "script",
    [
        [{"fault": "server_error", "status": 502, "times": 3}],
        [{"fault": "garbage", "times": 3}],
        [{"fault": "hang"}],
    ],
)
def test_endpoint_failures_are_exit_3_not_plan_errors(serve: Serve, script: Any) -> None:
    srv = serve(script)
    with (
        OpenAIClient(custom(srv.base_url), retry=FAST, timeout=0.3) as c,
        pytest.raises(LLMUnavailable) as info,
    ):
        drive(Planner(c, model_name="m").plan(TASK))
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


def test_slow_server_gets_one_request(serve: Serve) -> None:
    srv = serve([{"json": PLAN, "delay": 0.5}])
    with client(srv) as c:
        _, plan = drive(Planner(c, model_name="m").plan(TASK))
    assert plan.subgoals and len(srv.chat_requests) == 1


# --- extraction and request shaping ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "strict", "want"),
    [
        ('{"a": 1}', True, '{"a": 1}'),
        ('  {"a": 1}\n', True, '{"a": 1}'),
        ('Here: {"a": {"b": [1, "}"]}} done', False, '{"a": {"b": [1, "}"]}}'),
        ('```json\n{"a": 1}\n```', False, '{"a": 1}'),
        ("[1, 2]", False, "[1, 2]"),  # valid JSON as a whole: the validator will judge it
    ],
)
def test_extract_json(text: str, strict: bool, want: str) -> None:
    assert extract_json(text, strict=strict) == want


@pytest.mark.parametrize(
    ("text", "strict", "msg"),
    [
        ("", False, "the reply is empty"),
        ('Here: {"a": 1}', True, "the reply is not JSON"),
        ("no json here", False, "holds no JSON object"),
        ('{"a": 1} or {"b": 2}', False, "holds 2 JSON objects; send exactly one"),
        ("{broken", False, "holds no JSON object"),
    ],
)
def test_extract_json_refuses_to_guess(text: str, strict: bool, msg: str) -> None:
    with pytest.raises(JsonNotFound, match=msg):
        extract_json(text, strict=strict)


def test_shape_request_per_mode() -> None:
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    schema = {"type": "object"}
    m1, f1 = shape_request("json_schema", msgs, schema, "plan")
    assert m1 == msgs and f1 == {
        "type": "json_schema",
        "json_schema": {"name": "plan", "schema": schema},
    }
    m2, f2 = shape_request("json_object", msgs, schema, "plan")
    assert f2 == {"type": "json_object"} and m2[0]["content"].startswith("S\n\n")
    assert '{"type":"object"}' in m2[0]["content"] and m2[1] == msgs[1]
    m3, f3 = shape_request("prompt", [{"role": "user", "content": "U"}], schema, "plan")
    assert f3 is None and m3[0]["role"] == "system" and len(m3) == 2
    assert msgs[0]["content"] == "S"  # the caller's messages are not changed
