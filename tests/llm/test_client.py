"""OpenAIClient through the real openai SDK over HTTP against the fake server on loopback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest

import agentcorp.llm
from agentcorp.errors import (
    BudgetExceeded,
    ConfigError,
    LLMError,
    LLMUnavailable,
    QuotaExhausted,
    RealRequestBlocked,
)
from agentcorp.llm import (
    XAI,
    OpenAIClient,
    PriceTable,
    RequestRejected,
    RetryPolicy,
    UsageMeter,
    budget_check,
    custom,
    image_part,
    redact_key,
    resolve_timeout,
    user_message,
)
from agentcorp.record.canonical import canonical_request_hash
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import ChatRequest, ChatResponse, Usage
from tests.llm.conftest import FakeClock, client_for

Serve = Callable[..., FakeOpenAIServer]
KEY = "sk-test-SECRET-0123456789"
OK = {"content": "fine", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}


def req(text: str = "hello", **kw: Any) -> ChatRequest:
    kw.setdefault("model", "grok-4")
    return ChatRequest(messages=[{"role": "user", "content": text}], **kw)


# --- retries -------------------------------------------------------------------------------


def test_storm_ends_in_success_with_exact_attempts(serve: Serve) -> None:
    srv = serve(
        [
            {"fault": "rate_limit", "retry_after_ms": 1},
            {"fault": "server_error", "status": 500},
            {"fault": "server_error", "status": 503},
            {"fault": "drop"},  # the connection closes without a reply
            {"fault": "rate_limit", "retry_after": "0"},
            OK,
        ]
    )
    client = client_for(srv, timeout=5)
    resp = client.complete(req())
    assert resp.content == "fine"
    assert [r.status for r in srv.chat_requests] == [429, 500, 503, 0, 429, 200]
    assert len(srv.chat_requests) == 6  # exactly the policy's 6 attempts: no SDK retries
    srv.assert_complete()


def test_storm_longer_than_policy_fails_after_exactly_max_attempts(serve: Serve) -> None:
    srv = serve([{"fault": "server_error", "status": 502, "times": 10}])
    client = client_for(srv, retry=RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002))
    # An endpoint still failing after every retry is the environment, not the task: exit 3.
    with pytest.raises(LLMUnavailable) as info:
        client.complete(req())
    assert info.value.exit_code == 3
    assert len(srv.chat_requests) == 3
    msg = str(info.value)
    assert "\n" not in msg and "after 3 attempts" in msg and "HTTP 502" in msg


@pytest.mark.parametrize("status", [408, 409, 429, 500, 504])
def test_each_retryable_status_is_retried(serve: Serve, status: int) -> None:
    srv = serve([{"fault": "status", "status": status}, OK])
    assert client_for(srv).complete(req()).content == "fine"
    assert len(srv.chat_requests) == 2


def test_a_timeout_is_not_resent_and_says_the_value_applied(serve: Serve) -> None:
    # A slow server still working on the request must not get it a second time.
    srv = serve([{"fault": "hang", "times": 2}])
    client = client_for(srv, timeout=0.2, timeout_source="--timeout")
    with pytest.raises(LLMUnavailable) as info:
        client.complete(req())
    msg = str(info.value)
    assert "did not answer within 0.2s (--timeout)" in msg and "not re-sent" in msg
    assert "AGENTCORP_TIMEOUT" in msg and "\n" not in msg and info.value.exit_code == 3
    assert len(srv.chat_requests) == 1


def test_timeout_cut_by_the_deadline_says_so(serve: Serve) -> None:
    srv = serve([{"fault": "hang"}])
    client = client_for(srv, timeout=30.0).bind(deadline=time.monotonic() + 0.3)
    with pytest.raises(LLMUnavailable, match=r"within 0\.\d+s \(cut from 30s to fit the run's"):
        client.complete(req())
    assert len(srv.chat_requests) == 1


def test_a_slow_reply_within_the_timeout_is_waited_for(serve: Serve) -> None:
    srv = serve([{**OK, "delay": 0.3}])
    assert client_for(srv, timeout=20).complete(req()).content == "fine"
    assert len(srv.chat_requests) == 1


@pytest.mark.parametrize(
    ("flag", "env", "configured", "want"),
    [
        (None, {}, None, (60.0, "default")),
        (None, {}, 90, (90.0, "config timeout_s")),
        (None, {"AGENTCORP_TIMEOUT": "120"}, 90, (120.0, "AGENTCORP_TIMEOUT")),
        ("7.5", {"AGENTCORP_TIMEOUT": "120"}, 90, (7.5, "--timeout")),
        (None, {"AGENTCORP_TIMEOUT": "  "}, None, (60.0, "default")),
    ],
)
def test_timeout_resolution_order(
    flag: str | None, env: dict[str, str], configured: float | None, want: tuple[float, str]
) -> None:
    assert resolve_timeout(flag, env, configured) == want


@pytest.mark.parametrize(
    ("flag", "env", "msg"),
    [
        ("soon", {}, "--timeout: expected a number of seconds > 0, got 'soon'"),
        ("0", {}, "--timeout: expected a number of seconds > 0, got '0'"),
        (None, {"AGENTCORP_TIMEOUT": "-3"}, "AGENTCORP_TIMEOUT: expected a number of seconds"),
        (None, {"AGENTCORP_TIMEOUT": "nan"}, "AGENTCORP_TIMEOUT: expected"),
        (None, {"AGENTCORP_TIMEOUT": "inf"}, "AGENTCORP_TIMEOUT: expected"),
    ],
)
def test_bad_timeouts_are_one_line_config_errors(
    flag: str | None, env: dict[str, str], msg: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_timeout(flag, env)
    assert str(info.value).startswith(msg) and info.value.exit_code == 2


def test_dropped_connection_is_retried(serve: Serve) -> None:
    srv = serve([{"fault": "drop"}, OK])
    assert client_for(srv).complete(req()).content == "fine"
    assert len(srv.chat_requests) == 2


def test_retry_after_is_honoured(serve: Serve, fake_clock: FakeClock) -> None:
    date = formatdate(time.time() + 30, usegmt=True)
    srv = serve(
        [
            {"fault": "rate_limit", "retry_after": 7},
            {"fault": "rate_limit", "retry_after_ms": 250},
            {"fault": "rate_limit", "retry_after": date},
            {"fault": "status", "status": 503, "retry_after": "2"},
            OK,
        ]
    )
    policy = RetryPolicy(max_attempts=6, sleep=fake_clock.sleep, clock=fake_clock.clock)
    client_for(srv, retry=policy).complete(req())
    assert fake_clock.sleeps[:2] == [7.0, 0.25]
    assert 27.0 <= fake_clock.sleeps[2] <= 31.0
    assert fake_clock.sleeps[3] == 2.0
    assert len(srv.chat_requests) == 5


def test_backoff_without_retry_after_is_jittered_and_bounded(
    serve: Serve, fake_clock: FakeClock
) -> None:
    srv = serve([{"fault": "server_error", "times": 5}, OK])
    policy = RetryPolicy(
        max_attempts=6,
        initial_wait=0.5,
        max_wait=3.0,
        sleep=fake_clock.sleep,
        clock=fake_clock.clock,
    )
    client_for(srv, retry=policy).complete(req())
    assert len(fake_clock.sleeps) == 5
    assert all(0.0 <= s <= 3.0 for s in fake_clock.sleeps)


def test_retry_after_over_the_limit_gives_up_at_once(serve: Serve) -> None:
    srv = serve([{"fault": "rate_limit", "retry_after": 3600}, OK])
    with pytest.raises(LLMUnavailable, match=r"server asked to wait 3600s, over the 60s limit"):
        client_for(srv).complete(req())
    assert len(srv.chat_requests) == 1


def test_deadline_stops_retries(serve: Serve, fake_clock: FakeClock) -> None:
    srv = serve([{"fault": "rate_limit", "retry_after": 4, "times": 5}, OK])
    policy = RetryPolicy(max_attempts=10, sleep=fake_clock.sleep, clock=fake_clock.clock)
    client = client_for(srv, retry=policy).bind(deadline=10.0)
    with pytest.raises(LLMUnavailable, match="wall-clock budget is used up"):
        client.complete(req())
    # t=0 attempt, wait 4; t=4 attempt, wait 4; t=8 attempt: the next wait would pass t=10.
    assert len(srv.chat_requests) == 3
    assert fake_clock.sleeps == [4.0, 4.0]


def test_no_time_left_sends_nothing(serve: Serve, fake_clock: FakeClock) -> None:
    srv = serve([OK])
    fake_clock.now = 20.0
    policy = RetryPolicy(sleep=fake_clock.sleep, clock=fake_clock.clock)
    with pytest.raises(BudgetExceeded, match="wall_clock"):
        client_for(srv, retry=policy, deadline=10.0).complete(req())
    assert srv.chat_requests == []


# --- fatal answers -------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["xai", "openai"])
def test_quota_429_fails_fast(serve: Serve, style: str) -> None:
    srv = serve([{"fault": "quota", "style": style}, OK])
    with pytest.raises(QuotaExhausted) as info:
        client_for(srv).complete(req())
    assert len(srv.chat_requests) == 1
    msg = str(info.value)
    assert "\n" not in msg and "out of credits or quota (HTTP 429" in msg
    assert info.value.exit_code == 3


def test_bad_key_401_is_llm_unavailable(serve: Serve) -> None:
    srv = serve([OK, OK], require_key="the-right-key")
    with pytest.raises(LLMUnavailable) as info:
        client_for(srv, api_key="wrong-key").complete(req())
    assert "bad or missing API key (set AGENTCORP_API_KEY)" in str(info.value)
    assert not isinstance(info.value, QuotaExhausted)
    assert len(srv.chat_requests) == 1
    assert client_for(srv, api_key="the-right-key").complete(req()).content == "fine"


def test_403_names_the_key_variable(serve: Serve) -> None:
    srv = serve([{"fault": "forbidden"}])
    with pytest.raises(LLMUnavailable, match=r"set AGENTCORP_API_KEY.*HTTP 403"):
        client_for(srv).complete(req())
    assert len(srv.chat_requests) == 1


def test_404_is_setup_error_and_400_is_not_retried(serve: Serve) -> None:
    srv = serve([{"fault": "not_found"}, {"fault": "status", "status": 400}])
    with pytest.raises(LLMUnavailable, match="check the base URL and the model name"):
        client_for(srv).complete(req())
    with pytest.raises(RequestRejected, match="HTTP 400") as info:
        client_for(srv).complete(req())
    assert info.value.status == 400 and isinstance(info.value, LLMError)
    assert len(srv.chat_requests) == 2


@pytest.mark.parametrize(
    "entry",
    [
        {"fault": "status", "status": 422, "body": {"detail": [{"msg": "field required"}]}},
        # llama.cpp's Python server answers a request it cannot handle with HTTP 500.
        {"fault": "server_error", "status": 500, "message": "response_format not supported"},
        {
            "fault": "server_error",
            "status": 500,
            "message": "Requested tokens (9000) exceed context window of 2048",
        },
        {
            "fault": "status",
            "status": 503,
            "body": {"error": {"message": "bad", "type": "invalid_request_error"}},
        },
        # llama.cpp's server with a chat template that cannot take content parts (images).
        {
            "fault": "server_error",
            "status": 500,
            "message": 'can only concatenate str (not "list") to str',
        },
        # An error inside a 200 reply that says the request is invalid.
        {"fault": "garbage", "body": {"error": {"message": "Validation error: messages"}}},
    ],
)
def test_deterministic_refusals_are_not_retried(serve: Serve, entry: dict[str, Any]) -> None:
    srv = serve([entry, OK])
    with pytest.raises(RequestRejected) as info:
        client_for(srv).complete(req())
    assert len(srv.chat_requests) == 1 and "not retried" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_200_with_an_error_is_retried_like_a_5xx(serve: Serve) -> None:
    srv = serve([{"fault": "garbage", "body": {"error": {"message": "overloaded"}}}, OK])
    assert client_for(srv).complete(req()).content == "fine"
    assert len(srv.chat_requests) == 2


def test_connection_refused_is_llm_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = OpenAIClient(
        custom(f"http://127.0.0.1:{port}/v1"),
        retry=RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.002),
    )
    with pytest.raises(LLMUnavailable, match=rf"cannot reach http://127.0.0.1:{port}/v1 after 3 "):
        client.complete(req())


# --- the tripwire --------------------------------------------------------------------------


def test_tripwire_blocks_real_endpoints_without_network_io(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert agentcorp.llm.ALLOW_REAL_REQUESTS is False  # set by tests/conftest.py
    touched: list[str] = []

    def no_dns(*args: Any, **kw: Any) -> Any:
        touched.append(f"getaddrinfo {args[0]}")
        raise OSError("network used")

    def no_connect(self: socket.socket, address: Any) -> None:
        touched.append(f"connect {address}")
        raise OSError("network used")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    client = OpenAIClient(XAI, api_key=KEY)
    with pytest.raises(RealRequestBlocked, match=r"request to api.x.ai blocked") as info:
        client.complete(req())
    with pytest.raises(RealRequestBlocked):
        client.list_models()
    assert touched == []
    assert info.value.exit_code == 3 and KEY not in str(info.value)


def test_tripwire_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    client = OpenAIClient(custom("http://10.255.255.1:9/v1"), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RealRequestBlocked):
        client.complete(req())
    assert agentcorp.llm.is_loopback("http://127.0.0.2:1/v1")
    assert agentcorp.llm.is_loopback("http://[::1]:1/v1")
    assert agentcorp.llm.is_loopback("http://localhost:1/v1")
    assert not agentcorp.llm.is_loopback("https://api.x.ai/v1")
    assert not agentcorp.llm.is_loopback("http://127.0.0.1.example.com/v1")


# --- accounting, hook, request shape -------------------------------------------------------


def test_usage_and_cost_accounting(serve: Serve) -> None:
    srv = serve(
        [
            {"content": "a", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}},
            {"content": "b", "usage": {"prompt_tokens": 2000, "completion_tokens": 0}},
            {
                "content": "c",
                "usage": {"prompt_tokens": 500, "completion_tokens": 50},
                "model": "grok-4-1-fast-non-reasoning",
            },
            {
                "content": "d",
                "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                "model": "mystery-model",
            },
        ]
    )
    meter = UsageMeter()
    base = client_for(srv, meter=meter)
    t1 = base.bind(task="t1", company="acme")
    t2 = base.bind(task="t2", company="acme")
    r1 = t1.complete(req())
    t1.complete(req())
    r3 = t2.complete(req())
    t2.complete(req())
    assert r1.usage == Usage(1000, 100, 0, pytest.approx(0.0045))  # 3$/M in, 15$/M out
    assert r3.usage.cost_usd == pytest.approx((500 * 0.20 + 50 * 0.50) / 1e6)
    assert meter.task("t1") == Usage(3000, 100, 0, pytest.approx(0.0045 + 0.006))
    assert meter.task("t2").total_tokens == 560
    assert meter.company("acme").total_tokens == 3000 + 100 + 560
    assert meter.total.cost_usd == pytest.approx(0.0105 + 0.000125)
    assert meter.calls == 4
    assert meter.unpriced == {"mystery-model"}
    assert meter.model("grok-4").prompt_tokens == 3000


def test_price_override_changes_cost(serve: Serve) -> None:
    srv = serve([{"content": "a", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}}])
    prices = PriceTable().with_overrides({"grok-4": {"input": 1.5, "output": 2}})
    assert client_for(srv, prices=prices).complete(req()).usage.cost_usd == pytest.approx(1.5)


def test_budget_check_stops_before_sending(serve: Serve) -> None:
    srv = serve([{"content": "a", "usage": {"prompt_tokens": 900, "completion_tokens": 200}}, OK])
    client = client_for(srv).bind(task="t", budget_check=budget_check(max_tokens=1000, task="t"))
    client.complete(req())
    with pytest.raises(BudgetExceeded, match=r"tokens: task t used 1100 of 1000 allowed"):
        client.complete(req())
    assert len(srv.chat_requests) == 1


def test_hook_sees_exact_body_and_never_the_key(serve: Serve) -> None:
    seen: list[tuple[ChatRequest, dict[str, Any], ChatResponse]] = []
    srv = serve([OK])
    tools = [
        {
            "type": "function",
            "function": {
                "name": "click",
                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
            },
        }
    ]
    schema = {"type": "json_schema", "json_schema": {"name": "plan", "schema": {"type": "object"}}}
    request = ChatRequest(
        model="grok-4",
        messages=[
            {"role": "system", "content": "be brief"},
            user_message("look", [b"\x89PNG-one", b"\x89PNG-two"]),
        ],
        tools=tools,
        tool_choice="auto",
        response_format=schema,
        temperature=0.0,
        max_tokens=64,
        purpose="plan",
    )
    client = client_for(srv, on_call=lambda q, b, r: seen.append((q, b, r)))
    resp = client.complete(request)
    ((q, body, r),) = seen
    received = srv.chat_requests[0]
    assert body == received.body  # the exact JSON the server got
    assert q is request and r is resp
    assert received.images == 2 and resp.usage.images == 2
    assert received.purpose == "plan"
    assert body["tools"] == tools and body["response_format"] == schema
    assert KEY not in json.dumps(body) and KEY not in repr(seen) and KEY not in repr(client)
    assert received.authorization == f"Bearer {KEY}"  # the key did go where it belongs
    assert len(canonical_request_hash(body)) == 64


def test_key_echoed_by_server_is_redacted(serve: Serve) -> None:
    srv = serve([{"fault": "server_error", "message": f"bad things for {KEY}", "times": 2}])
    client = client_for(srv, retry=RetryPolicy(max_attempts=2, initial_wait=0.001))
    with pytest.raises(LLMUnavailable) as info:
        client.complete(req())
    assert KEY not in str(info.value) and "bad things for ***" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "want"),
    [
        ("expected x", "x", "expected x"),  # too short to be a key: nothing replaced
        ("expected secret", "e", "expected secret"),
        (f"key={KEY}.", KEY, "key=***."),
        (f"'{KEY}'", KEY, "'***'"),
        (f"{KEY}-suffix and {KEY}", KEY, f"{KEY}-suffix and ***"),  # a longer token stays
        (f"Bearer {KEY}", KEY, "Bearer ***"),
        ("no key here", KEY, "no key here"),
    ],
)
def test_redaction_replaces_whole_keys_only(text: str, key: str, want: str) -> None:
    assert redact_key(text, key) == want


def test_short_key_leaves_error_text_readable(serve: Serve) -> None:
    srv = serve([{"fault": "status", "status": 400, "body": {"error": {"message": "expected x"}}}])
    with pytest.raises(RequestRejected) as info:
        client_for(srv, api_key="x").complete(req())
    assert "expected x" in str(info.value) and "***" not in str(info.value)


def test_tool_calls_are_returned_raw(serve: Serve) -> None:
    srv = serve(
        [
            {
                "tool_calls": [
                    {"name": "click", "arguments": {"x": 5, "y": 6}},
                    {"name": "type", "arguments": '{"text": "hi"}'},
                ]
            },
            {"fault": "bad_json"},
            {"fault": "unknown_tool"},
            {"fault": "off_screen"},
            {"fault": "missing_args", "tool": "drag"},
        ]
    )
    client = client_for(srv)
    r = client.complete(req())
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [
        ("click", {"x": 5, "y": 6}),
        ("type", {"text": "hi"}),
    ]
    assert r.finish_reason == "tool_calls" and r.request_id == "req-fake-1"
    bad = client.complete(req()).tool_calls[0]
    assert bad.name == "click" and bad.arguments == '{"x": 10, "y": '
    assert client.complete(req()).tool_calls[0].name == "teleport"
    assert json.loads(client.complete(req()).tool_calls[0].arguments) == {"x": 99999, "y": -40}
    missing = client.complete(req()).tool_calls[0]
    assert missing.name == "drag" and json.loads(missing.arguments) == {"x": 10}


def test_image_parts_are_data_urls() -> None:
    part = image_part(b"abc", mime="image/jpeg", detail="low")
    assert part == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64,YWJj", "detail": "low"},
    }


def test_missing_model_name_is_one_line_error(serve: Serve) -> None:
    srv = serve([OK])
    with pytest.raises(LLMError, match="no model name given"):
        client_for(srv).complete(req(model=""))
    assert srv.chat_requests == []


def test_list_models(serve: Serve) -> None:
    srv = serve({"replies": [], "models": ["m1", "m2"]})
    assert client_for(srv).list_models() == ["m1", "m2"]


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ("<html>502 Bad Gateway</html>", "body is not JSON (text/html, starts '<html>502"),
        ("", "body is not JSON"),
        ([1, 2], "body is a JSON list, not an object"),
        ({"id": "x"}, "no choices"),
        ({"choices": []}, "no choices"),
        ({"choices": ["text"]}, "choices[0].message is missing or not an object"),
        ({"choices": [{"message": {"content": 42}}]}, "choices[0].message.content is a int"),
        (
            {"choices": [{"message": {"content": None, "tool_calls": "click"}}]},
            "choices[0].message.tool_calls is not a list",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},
            "choices[0].message.tool_calls[0].function.name is missing",
        ),
        (
            {"choices": [{"message": {"tool_calls": [{"type": "function"}]}}]},
            "choices[0].message.tool_calls[0].function is missing or not an object",
        ),
        (
            {
                "choices": [
                    {"message": {"tool_calls": [{"function": {"name": "c", "arguments": 5}}]}}
                ]
            },
            "choices[0].message.tool_calls[0].function.arguments is a int",
        ),
        ({"choices": [{"message": {"content": "x"}}], "usage": "lots"}, "usage is not an object"),
        (
            {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "9"}},
            "usage.prompt_tokens is '9', not a non-negative integer",
        ),
        ({"error": {"message": "overloaded"}}, "error in a 200 reply: overloaded"),
    ],
)
def test_garbage_replies_are_retried_then_one_line_exit_3(
    serve: Serve, body: Any, msg: str
) -> None:
    srv = serve([{"fault": "garbage", "body": body, "times": 2}])
    client = client_for(srv, retry=RetryPolicy(max_attempts=2, initial_wait=0.001))
    with pytest.raises(LLMUnavailable) as info:
        client.complete(req())
    text = str(info.value)
    assert "\n" not in text and "malformed chat completion after 2 attempts" in text, text
    assert msg in text, text
    assert len(srv.chat_requests) == 2 and info.value.exit_code == 3


def test_one_garbage_reply_then_a_good_one(serve: Serve) -> None:
    srv = serve([{"fault": "garbage"}, OK])
    assert client_for(srv).complete(req()).content == "fine"
    assert len(srv.chat_requests) == 2


def test_lenient_shapes_from_local_servers(serve: Serve) -> None:
    srv = serve(
        [
            {
                "fault": "garbage",
                "body": {
                    "choices": [
                        {
                            "message": {
                                "content": [{"type": "text", "text": "a"}, {"text": "b"}],
                                "tool_calls": [
                                    {"function": {"name": "wait", "arguments": {"seconds": 1}}}
                                ],
                            }
                        }
                    ],
                },
            }
        ]
    )
    r = client_for(srv).complete(req())
    assert r.content == "ab" and r.tool_calls[0].id.startswith("call_agentcorp_")
    assert json.loads(r.tool_calls[0].arguments) == {"seconds": 1}
    assert r.usage == Usage() and r.model == "grok-4"


def test_loopback_ignores_proxy_settings(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy that does not exist: going through it would fail to connect.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    srv = serve([OK])
    assert client_for(srv, retry=RetryPolicy(max_attempts=1)).complete(req()).content == "fine"


def test_dropped_client_releases_its_sockets(serve: Serve) -> None:
    import gc
    import warnings

    srv = serve([OK])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = OpenAIClient(custom(srv.base_url), api_key="k")
        view = client.bind(task="t")
        assert view.complete(req()).content == "fine"
        del client, view
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
