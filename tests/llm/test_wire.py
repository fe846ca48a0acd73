"""Wire hygiene over real HTTP: prompt-cache header, cached tokens, unknown prices, tool ids."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from agentcorp.llm import XAI, OpenAIClient, RequestRejected, RetryPolicy, UsageMeter, custom
from agentcorp.testing.fake_openai import FakeOpenAIServer, FakeScriptError
from agentcorp.types import ChatRequest

Serve = Callable[..., FakeOpenAIServer]
FAST = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002)


def req(text: str = "hello", model: str = "grok-4.3", **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **kw)


def xai_at(srv: FakeOpenAIServer, **kw: Any) -> OpenAIClient:
    """The xAI preset pointed at the fake server: what a real Grok run sends, on loopback."""
    return OpenAIClient(XAI.with_base_url(srv.base_url), api_key="xai-test-key-0123", **kw)


def test_grok_conversation_header_on_every_call_of_a_task(serve: Serve) -> None:
    srv = serve([{"content": "ok", "times": "forever"}])
    with xai_at(srv, retry=FAST) as client:
        t1 = client.bind(task="t1")
        t2 = client.bind(task="t2")
        for _ in range(3):
            t1.complete(req(purpose="act"))
        t1.complete(req(purpose="plan"))
        t2.complete(req())
        client.complete(req())
    ids = [r.headers.get("x-grok-conv-id") for r in srv.chat_requests]
    assert all(ids), ids  # present on every call
    assert len(set(ids[:4])) == 1  # planner and actor of one task: one conversation
    assert ids[4] != ids[0] and ids[5] not in (ids[0], ids[4])  # another task: another


def test_retries_keep_the_conversation_id(serve: Serve) -> None:
    srv = serve([{"fault": "server_error"}, {"content": "ok"}])
    with xai_at(srv, retry=FAST) as client:
        client.bind(task="t").complete(req())
    ids = {r.headers.get("x-grok-conv-id") for r in srv.chat_requests}
    assert len(srv.chat_requests) == 2 and len(ids) == 1 and None not in ids


def test_no_conversation_header_for_other_providers(serve: Serve) -> None:
    srv = serve([{"content": "ok"}])
    with OpenAIClient(custom(srv.base_url), retry=FAST) as client:
        client.bind(task="t").complete(req())
    assert "x-grok-conv-id" not in srv.chat_requests[0].headers


def test_cached_tokens_are_reported_and_priced_lower(serve: Serve) -> None:
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0, "cached_tokens": 750_000}
    srv = serve([{"content": "ok", "usage": usage}])
    meter = UsageMeter()
    with xai_at(srv, retry=FAST, meter=meter) as client:
        resp = client.bind(task="t").complete(req(model="grok-4.3"))
    assert resp.usage.cached_tokens == 750_000
    # grok-4.3: $1.25/M fresh input, $0.20/M cached input.
    assert resp.usage.cost_usd == pytest.approx(0.25 * 1.25 + 0.75 * 0.20)
    assert meter.task("t").cached_tokens == 750_000


def test_a_model_with_no_price_has_an_unknown_cost(serve: Serve) -> None:
    srv = serve([{"content": "ok", "usage": {"prompt_tokens": 9, "completion_tokens": 1}}])
    meter = UsageMeter()
    with OpenAIClient(custom(srv.base_url), retry=FAST, meter=meter) as client:
        resp = client.bind(task="t").complete(req(model="smollm2-135m"))
    assert not resp.usage.cost_known and resp.usage.cost_text() == "unknown"
    assert not meter.task("t").cost_known and meter.unpriced == {"smollm2-135m"}


def test_tool_call_ids_and_names_round_trip_exactly(serve: Serve) -> None:
    odd_id = "call/ä 1:{x}"
    srv = serve(
        [
            {"tool_calls": [{"id": odd_id, "name": "click", "arguments": {"x": 1, "y": 2}}]},
            {"content": "done"},
        ]
    )
    with OpenAIClient(custom(srv.base_url), retry=FAST) as client:
        first = client.complete(req())
        call = first.tool_calls[0]
        assert (call.id, call.name) == (odd_id, "click")
        assistant = {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        }
        tool = {"role": "tool", "tool_call_id": call.id, "content": "ok"}
        client.complete(
            ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}, assistant, tool])
        )
    sent = srv.chat_requests[1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == odd_id and sent[2]["tool_call_id"] == odd_id
    assert sent[1]["tool_calls"][0]["function"]["name"] == "click"


def test_missing_tool_call_ids_are_unique_across_the_run(serve: Serve) -> None:
    no_id = {
        "choices": [
            {"message": {"tool_calls": [{"function": {"name": "wait", "arguments": "{}"}}]}}
        ]
    }
    srv = serve([{"fault": "garbage", "body": no_id, "times": 2}])
    with OpenAIClient(custom(srv.base_url), retry=FAST) as client:
        a = client.bind(task="a").complete(req()).tool_calls[0].id
        b = client.bind(task="b").complete(req()).tool_calls[0].id
    assert a != b and a.startswith("call_agentcorp_")


# --- the fake server's server-wide behaviours ------------------------------------------------


def test_fake_server_rejects_or_drops_response_format(serve: Serve) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    srv = serve(
        [{"when": {"response_format": "none"}, "json": {"a": 1}}],
        reject_response_format=["json_object"],
        reject_status=500,
        drop_response_format=True,
    )
    with OpenAIClient(custom(srv.base_url), retry=FAST) as client:
        assert json.loads(client.complete(req(response_format=fmt)).content or "") == {"a": 1}
    assert srv.chat_requests[0].response_format == "json_schema"  # what was sent
    srv2 = serve([{"json": {}}], reject_response_format=["json_schema"], reject_status=500)
    with (
        OpenAIClient(custom(srv2.base_url), retry=FAST) as client,
        pytest.raises(RequestRejected, match=r"HTTP 500.*not supported"),
    ):
        client.complete(req(response_format=fmt))
    assert len(srv2.chat_requests) == 1  # a deterministic refusal: not retried


def test_fake_server_drops_images_before_matching(serve: Serve) -> None:
    srv = serve(
        [
            {"when": {"has_images": True}, "content": "I see it"},
            {"when": {"has_images": False}, "content": "what picture?"},
        ],
        drop_images=True,
    )
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    }
    with OpenAIClient(custom(srv.base_url), retry=FAST) as client:
        resp = client.complete(ChatRequest(model="m", messages=[msg]))
    assert resp.content == "what picture?" and srv.chat_requests[0].images == 1


@pytest.mark.parametrize(
    ("options", "msg"),
    [
        ({"drop_images": "yes"}, "drop_images must be true or false"),
        ({"reject_response_format": ["xml"]}, "reject_response_format must be a list of"),
        ({"reject_status": 200}, "reject_status must be an HTTP error status"),
        ({"melt": True}, "unknown option 'melt'"),
    ],
)
def test_fake_server_options_are_checked(options: dict[str, Any], msg: str) -> None:
    with pytest.raises(FakeScriptError, match=msg):
        FakeOpenAIServer([], **options)
