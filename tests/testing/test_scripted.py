from __future__ import annotations

import json
import threading

import pytest

from agentcorp.errors import LLMUnavailable
from agentcorp.testing import FunctionLLM, ScriptedLLM
from agentcorp.testing.scripted import (
    ScriptExhausted,
    raw_tool_reply,
    text_reply,
    to_response,
    tool_calls_reply,
    tool_reply,
)
from agentcorp.types import ChatModel, ChatRequest, ChatResponse, ToolCall, Usage


def _req(text: str = "hi", purpose: str = "act") -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], purpose=purpose)


def test_answers_in_order_and_records_calls() -> None:
    llm = ScriptedLLM([tool_reply("click", x=10, y=20), text_reply("ok")])
    assert isinstance(llm, ChatModel)
    r1 = llm.complete(_req("one"))
    r2 = llm.complete(_req("two"))
    assert r1.tool_calls[0].name == "click"
    assert json.loads(r1.tool_calls[0].arguments) == {"x": 10, "y": 20}
    assert r1.finish_reason == "tool_calls"
    assert r2.content == "ok" and r2.tool_calls == ()
    assert [c.messages[0]["content"] for c in llm.calls] == ["one", "two"]
    llm.assert_complete()


def test_short_forms() -> None:
    llm = ScriptedLLM(
        [
            ("type", {"text": "hello"}),
            "plain",
            {
                "content": "c",
                "tool_calls": [
                    ("key", {"keys": "Return"}),
                    {"name": "wait", "arguments": {"seconds": 1}},
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2},
            },
        ]
    )
    a = llm.complete(_req())
    assert a.tool_calls[0].name == "type" and json.loads(a.tool_calls[0].arguments) == {
        "text": "hello"
    }
    assert llm.complete(_req()).content == "plain"
    c = llm.complete(_req())
    assert [t.name for t in c.tool_calls] == ["key", "wait"]
    assert c.usage == Usage(prompt_tokens=5, completion_tokens=2)
    assert len({t.id for t in a.tool_calls + c.tool_calls}) == 3


def test_raw_arguments_are_kept_verbatim() -> None:
    r = raw_tool_reply("click", '{"x": 1,')
    assert r.tool_calls[0].arguments == '{"x": 1,'
    r2 = to_response(("click", "not json"))
    assert r2.tool_calls[0].arguments == "not json"


def test_multiple_calls_and_usage() -> None:
    u = Usage(prompt_tokens=10, completion_tokens=3)
    r = tool_calls_reply(("click", {"x": 1, "y": 2}), ToolCall("id9", "done", "{}"), usage=u)
    assert [t.name for t in r.tool_calls] == ["click", "done"]
    assert r.tool_calls[1].id == "id9"
    assert r.usage == u
    assert tool_reply("done", summary="s", usage=u).usage == u


def test_exhausted_raises_assertion_error_naming_the_call() -> None:
    llm = ScriptedLLM([text_reply("only")])
    llm.complete(_req())
    with pytest.raises(ScriptExhausted, match=r"no reply left for call 2 .*'second'"):
        llm.complete(_req("second", purpose="plan"))
    assert isinstance(ScriptExhausted("x"), AssertionError)
    assert len(llm.calls) == 2


def test_assert_complete_fails_when_replies_unused() -> None:
    llm = ScriptedLLM(["a", "b"])
    llm.complete(_req())
    with pytest.raises(AssertionError, match="1 of 2 scripted replies were never requested"):
        llm.assert_complete()
    assert llm.remaining == 1


def test_exception_entries_are_raised() -> None:
    llm = ScriptedLLM([LLMUnavailable("down"), "after"])
    with pytest.raises(LLMUnavailable, match="down"):
        llm.complete(_req())
    assert llm.complete(_req()).content == "after"


def test_garbage_entries_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="cannot read a scripted reply from int"):
        ScriptedLLM([42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="unknown reply keys"):
        ScriptedLLM([{"contnet": "typo"}])
    with pytest.raises(TypeError, match="tool call tuple"):
        ScriptedLLM([("a", {}, "extra")])  # type: ignore[list-item]


def test_thread_safe_each_reply_used_once() -> None:
    llm = ScriptedLLM([str(i) for i in range(200)])
    out: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            r = llm.complete(_req())
            with lock:
                out.append(r.content or "")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out, key=int) == [str(i) for i in range(200)]
    llm.assert_complete()


def test_function_llm() -> None:
    def fn(req: ChatRequest) -> ChatResponse | tuple[str, dict[str, int]]:
        if req.purpose == "plan":
            return text_reply('{"steps": []}')
        return ("click", {"x": len(req.messages), "y": 0})

    llm = FunctionLLM(fn)
    assert isinstance(llm, ChatModel)
    assert llm.complete(_req(purpose="plan")).content == '{"steps": []}'
    r = llm.complete(_req())
    assert r.tool_calls[0].name == "click" and json.loads(r.tool_calls[0].arguments)["x"] == 1
    assert len(llm.calls) == 2
