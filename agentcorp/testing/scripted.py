"""In-process ``ChatModel`` fakes: a scripted model and a function model.

``ScriptedLLM`` answers from a list, in order, and records every request in ``.calls``; running
out of replies raises ``ScriptExhausted`` (an ``AssertionError``) naming the request it could
not answer. ``FunctionLLM`` answers with whatever a Python function returns.

Replies may be given as ``ChatResponse`` values or in a shorter form (see ``to_response``)::

    ScriptedLLM([
        tool_reply("click", x=10, y=20),
        ("type", {"text": "hello"}),
        {"content": "thinking", "tool_calls": [("key", {"keys": "Return"})]},
        "plain text answer",
        LLMUnavailable("endpoint down"),   # raised instead of answered
    ])
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from agentcorp.types import ChatModel, ChatRequest, ChatResponse, ToolCall, Usage

__all__ = [
    "FunctionLLM",
    "Reply",
    "ScriptExhausted",
    "ScriptedLLM",
    "raw_tool_reply",
    "text_reply",
    "to_response",
    "tool_calls_reply",
    "tool_reply",
]

#: A tool call in short form: ``(name, arguments)`` where arguments is a dict (JSON-encoded for
#: you) or a raw string (sent as is, so malformed JSON can be scripted).
ToolCallLike: TypeAlias = ToolCall | tuple[str, Mapping[str, Any] | str] | Mapping[str, Any]
#: Anything a script entry may be; an exception instance is raised instead of answered.
Reply: TypeAlias = ChatResponse | str | tuple[str, Mapping[str, Any] | str] | Mapping[str, Any]

_ids = itertools.count(1)


class ScriptExhausted(AssertionError):
    """A scripted model was asked more often than its script allows.

    An ``AssertionError`` on purpose, not an ``AgentcorpError``: it is a broken test, and code
    under test that handles ``AgentcorpError`` (the loop turns those into error steps) must not
    swallow it.
    """


def _next_id() -> str:
    return f"call_{next(_ids)}"


def _usage(value: Usage | Mapping[str, Any] | None) -> Usage:
    if value is None:
        return Usage()
    if isinstance(value, Usage):
        return value
    return Usage(
        prompt_tokens=int(value.get("prompt_tokens", 0)),
        completion_tokens=int(value.get("completion_tokens", 0)),
        images=int(value.get("images", 0)),
        cost_usd=float(value.get("cost_usd", 0.0)),
    )


def _tool_call(value: ToolCallLike) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[0], str):
            raise TypeError(f"a tool call tuple must be (name, arguments), got {value!r}")
        name, args = value
        raw = args if isinstance(args, str) else json.dumps(dict(args))
        return ToolCall(id=_next_id(), name=name, arguments=raw)
    if isinstance(value, Mapping):
        args = value.get("arguments", {})
        raw = args if isinstance(args, str) else json.dumps(dict(args))
        call_id = str(value.get("id") or _next_id())
        return ToolCall(id=call_id, name=str(value["name"]), arguments=raw)
    raise TypeError(f"cannot read a tool call from {type(value).__name__}: {value!r}")


def to_response(reply: Reply, *, model: str = "scripted") -> ChatResponse:
    """Turn one short-form reply into a ``ChatResponse``.

    - ``ChatResponse``: returned unchanged;
    - ``str``: a text answer;
    - ``(name, args)``: one tool call (``args`` a dict, or a raw string for malformed JSON);
    - a mapping with any of ``content``, ``tool_calls`` (list of the tool-call forms above or
      ``{"name", "arguments", "id"}`` mappings), ``usage`` (``Usage`` or a dict of its fields),
      ``model``, ``finish_reason``, ``request_id``.
    """
    if isinstance(reply, ChatResponse):
        return reply
    if isinstance(reply, str):
        return ChatResponse(content=reply, model=model, finish_reason="stop")
    if isinstance(reply, tuple):
        return ChatResponse(
            content=None, tool_calls=(_tool_call(reply),), model=model, finish_reason="tool_calls"
        )
    if isinstance(reply, Mapping):
        unknown = set(reply) - {
            "content",
            "tool_calls",
            "usage",
            "model",
            "finish_reason",
            "request_id",
        }
        if unknown:
            raise TypeError(f"unknown reply keys {sorted(unknown)} in {dict(reply)!r}")
        calls = tuple(_tool_call(c) for c in reply.get("tool_calls") or ())
        content = reply.get("content")
        return ChatResponse(
            content=None if content is None else str(content),
            tool_calls=calls,
            usage=_usage(reply.get("usage")),
            model=str(reply.get("model", model)),
            request_id=reply.get("request_id"),
            finish_reason=reply.get("finish_reason", "tool_calls" if calls else "stop"),
        )
    raise TypeError(f"cannot read a scripted reply from {type(reply).__name__}: {reply!r}")


def text_reply(content: str, *, usage: Usage | None = None) -> ChatResponse:
    """A plain text answer."""
    return ChatResponse(
        content=content, usage=usage or Usage(), model="scripted", finish_reason="stop"
    )


def tool_reply(
    name: str, /, *, usage: Usage | None = None, content: str | None = None, **arguments: Any
) -> ChatResponse:
    """An answer with one tool call, arguments as keywords: ``tool_reply("click", x=1, y=2)``."""
    return tool_calls_reply((name, arguments), usage=usage, content=content)


def raw_tool_reply(name: str, arguments: str, *, usage: Usage | None = None) -> ChatResponse:
    """One tool call whose arguments text is sent verbatim (for malformed-JSON tests)."""
    return tool_calls_reply((name, arguments), usage=usage)


def tool_calls_reply(
    *calls: ToolCallLike, usage: Usage | None = None, content: str | None = None
) -> ChatResponse:
    """An answer with several tool calls, each in any tool-call form."""
    return ChatResponse(
        content=content,
        tool_calls=tuple(_tool_call(c) for c in calls),
        usage=usage or Usage(),
        model="scripted",
        finish_reason="tool_calls",
    )


class ScriptedLLM(ChatModel):
    """Answers each request with the next scripted reply; records requests in ``.calls``.

    An entry that is an exception instance is raised for that call instead of answered (e.g.
    ``LLMUnavailable(...)``), so error paths can be scripted too. Thread-safe.
    """

    def __init__(self, replies: Iterable[Reply | BaseException], *, model: str = "scripted"):
        self._script: list[ChatResponse | BaseException] = [
            r if isinstance(r, BaseException) else to_response(r, model=model) for r in replies
        ]
        self._next = 0
        self._lock = threading.Lock()
        self.calls: list[ChatRequest] = []

    @property
    def remaining(self) -> int:
        """How many scripted replies are still unused."""
        return len(self._script) - self._next

    def complete(self, request: ChatRequest) -> ChatResponse:
        """Record the request and return (or raise) the next scripted entry."""
        with self._lock:
            self.calls.append(request)
            if self._next >= len(self._script):
                raise ScriptExhausted(
                    f"ScriptedLLM has no reply left for call {len(self.calls)} "
                    f"(script has {len(self._script)}; purpose={request.purpose!r}, "
                    f"last message: {_summary(request.messages)})"
                )
            entry = self._script[self._next]
            self._next += 1
        if isinstance(entry, BaseException):
            raise entry
        return entry

    def assert_complete(self) -> None:
        """Raise ``ScriptExhausted``-style ``AssertionError`` if some replies were never used."""
        if self.remaining:
            raise AssertionError(
                f"ScriptedLLM: {self.remaining} of {len(self._script)} scripted replies "
                f"were never requested (got {len(self.calls)} calls)"
            )


class FunctionLLM(ChatModel):
    """Answers with ``fn(request)``; ``fn`` may return any short reply form. Records ``.calls``."""

    def __init__(self, fn: Callable[[ChatRequest], Reply], *, model: str = "function") -> None:
        self._fn = fn
        self._model = model
        self._lock = threading.Lock()
        self.calls: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> ChatResponse:
        """Record the request and answer with the function's reply."""
        with self._lock:
            self.calls.append(request)
        return to_response(self._fn(request), model=self._model)


def _summary(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last message's role and first text, short, for error messages."""
    if not messages:
        return "(no messages)"
    last = messages[-1]
    content = last.get("content")
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        content = " ".join(t for t in texts if t) or f"[{len(content)} parts]"
    text = str(content or "").replace("\n", " ")
    return f"{last.get('role', '?')}: {text[:80]!r}"
