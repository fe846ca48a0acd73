"""A real HTTP server on loopback that speaks OpenAI chat completions from a script.

Use it in-process::

    with FakeOpenAIServer([{"content": "hi"}, {"fault": "rate_limit", "retry_after_ms": 5}]) as srv:
        client = OpenAIClient(custom(srv.base_url, planner_model="fake"))
        ...
        assert len(srv.requests) == 2

or as a program: ``python -m agentcorp.testing.fake_openai --script FILE --port 0`` prints its
base URL (``http://127.0.0.1:PORT/v1``) as the first line on stdout and serves until stopped.

Each request takes the first unused script entry whose ``when`` matches it (entries without
``when`` match anything), so one script can serve a planner and an actor. The format is
documented in docs/fake_openai.md. Every received request is kept in ``.requests`` so tests can
assert the exact number of HTTP attempts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from agentcorp.errors import ConfigError
from agentcorp.types import ChatResponse

__all__ = ["FakeOpenAIServer", "FakeScriptError", "ReceivedRequest", "ScriptEntry", "load_script"]

PURPOSE_HEADER = "x-agentcorp-purpose"
PROBE = "probe"  # the purpose of agentcorp's vision probe (agentcorp.llm.capabilities)

FAULTS = (
    "rate_limit",
    "quota",
    "server_error",
    "unauthorized",
    "forbidden",
    "not_found",
    "status",
    "garbage",
    "drop",
    "hang",
    "bad_json",
    "unknown_tool",
    "off_screen",
    "missing_args",
)
_COMMON_KEYS = {"when", "times", "delay", "fault"}
_REPLY_KEYS = {"content", "tool_calls", "usage", "finish_reason", "model", "json"}
_FAULT_KEYS: dict[str, set[str]] = {
    "rate_limit": {"retry_after", "retry_after_ms", "message"},
    "quota": {"style"},
    "server_error": {"status", "message"},
    "unauthorized": {"message"},
    "forbidden": {"message"},
    "not_found": {"message"},
    "status": {"status", "body", "retry_after", "retry_after_ms"},
    "garbage": {"body", "content_type", "status"},
    "drop": set(),
    "hang": set(),
    "bad_json": {"tool"},
    "unknown_tool": {"tool"},
    "off_screen": {"tool"},
    "missing_args": {"tool"},
}
_WHEN_KEYS = {
    "purpose",
    "response_format",
    "model",
    "system_contains",
    "user_contains",
    "text_contains",
    "has_images",
    "has_tools",
}
# What a tool-call fault sends: (default tool name, raw arguments).
_TOOL_FAULTS = {
    "bad_json": ("click", '{"x": 10, "y": '),
    "unknown_tool": ("teleport", '{"x": 10, "y": 20}'),
    "off_screen": ("click", '{"x": 99999, "y": -40}'),
    "missing_args": ("click", '{"x": 10}'),
}
_XAI_QUOTA = (
    "Your team 00000000-fake has either used all available credits or reached its monthly "
    "spending limit. To continue making API requests, please purchase more credits or raise "
    "your spending limit."
)


class FakeScriptError(ConfigError):
    """A fake-server script is unreadable or has an invalid entry; the message names both."""


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    """One validated script entry; ``spec`` is the entry as written (a plain dict)."""

    index: int
    spec: dict[str, Any]
    times: int | None  # None: forever

    @property
    def when(self) -> dict[str, Any]:
        """The match conditions (empty: matches anything)."""
        when = self.spec.get("when") or {}
        return dict(when)


@dataclass(slots=True)
class ReceivedRequest:
    """One HTTP request the server received, whatever it answered."""

    index: int
    method: str
    path: str
    body: Any
    purpose: str | None
    images: int
    authorization: str | None = field(repr=False)
    entry: int | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    refused: bool = False  # turned away by a server-wide option (reject_response_format)
    seen_as_vision_model: bool = False  # a vision probe answered without a script entry

    @property
    def response_format(self) -> str:
        """The ``response_format.type`` the client sent (``none`` without one)."""
        return _format_type(self.body)

    @property
    def model(self) -> str | None:
        """The requested model, if the body had one."""
        return self.body.get("model") if isinstance(self.body, dict) else None


# --- script loading and validation ---------------------------------------------------------


def _entry_from_response(resp: ChatResponse) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if resp.content is not None:
        entry["content"] = resp.content
    if resp.tool_calls:
        entry["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in resp.tool_calls
        ]
    if resp.usage.total_tokens:
        entry["usage"] = {
            "prompt_tokens": resp.usage.prompt_tokens,
            "completion_tokens": resp.usage.completion_tokens,
        }
        if resp.usage.cached_tokens:
            entry["usage"]["cached_tokens"] = resp.usage.cached_tokens
    return entry


def _check_type(where: str, key: str, value: Any, types: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise FakeScriptError(f"{where}: {key} must be {_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise FakeScriptError(f"{where}: {key} must be {_names(types)}, got {value!r}")


def _names(types: type | tuple[type, ...]) -> str:
    seq = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in seq)


def _validate_entry(where: str, index: int, raw: Any) -> ScriptEntry:
    if isinstance(raw, ChatResponse):
        raw = _entry_from_response(raw)
    if not isinstance(raw, Mapping):
        raise FakeScriptError(f"{where}: an entry must be a mapping, got {type(raw).__name__}")
    spec = dict(raw)
    fault = _check_keys(where, spec)
    times = _times(where, spec.get("times", 1))
    _check_scalars(where, spec, fault)
    if "usage" in spec:
        _check_usage(where, spec["usage"])
    if "tool_calls" in spec and not isinstance(spec["tool_calls"], list):
        raise FakeScriptError(f"{where}: tool_calls must be a list")
    for i, call in enumerate(spec.get("tool_calls") or []):
        _check_tool_call(f"{where}: tool_calls[{i}]", call)
    if spec.get("when") is not None:
        _check_when(where, spec["when"])
    return ScriptEntry(index=index, spec=spec, times=times)


def _check_keys(where: str, spec: dict[str, Any]) -> str | None:
    """The entry's fault (None for a reply), once every key is known for it."""
    fault = spec.get("fault")
    if fault is not None and fault not in FAULTS:
        raise FakeScriptError(
            f"{where}: unknown fault {fault!r} (expected one of {', '.join(FAULTS)})"
        )
    allowed = _COMMON_KEYS | (_FAULT_KEYS[fault] if fault else set())
    if fault is None or fault in ("hang",):
        allowed |= _REPLY_KEYS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise FakeScriptError(f"{where}: unknown key {unknown[0]!r} for this entry")
    if fault is None and not (set(spec) & _REPLY_KEYS):
        raise FakeScriptError(f"{where}: needs content, tool_calls, json or a fault")
    return str(fault) if fault is not None else None


def _times(where: str, raw: Any) -> int | None:
    """How often an entry answers; None for ``forever``."""
    if raw == "forever":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    raise FakeScriptError(f"{where}: times must be a positive integer or 'forever'")


def _check_scalars(where: str, spec: dict[str, Any], fault: str | None) -> None:
    for key in ("delay", "retry_after_ms"):
        if key in spec:
            _check_type(where, key, spec[key], (int, float))
            if spec[key] < 0:
                raise FakeScriptError(f"{where}: {key} must not be negative")
    if "retry_after" in spec:
        _check_type(where, "retry_after", spec["retry_after"], (int, float, str))
    if "status" in spec:
        _check_type(where, "status", spec["status"], int)
        if not 100 <= spec["status"] <= 599:
            raise FakeScriptError(f"{where}: status must be an HTTP status, got {spec['status']}")
    if fault == "status" and "status" not in spec:
        raise FakeScriptError(f"{where}: fault 'status' needs a status")
    if "style" in spec and spec["style"] not in ("xai", "openai"):
        raise FakeScriptError(f"{where}: style must be 'xai' or 'openai'")
    if "content" in spec and spec["content"] is not None:
        _check_type(where, "content", spec["content"], str)


def _check_usage(where: str, usage: Any) -> None:
    _check_type(where, "usage", usage, Mapping)
    for k, v in usage.items():
        if k not in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            raise FakeScriptError(f"{where}: usage.{k} is not a usage field")
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise FakeScriptError(f"{where}: usage.{k} must be a non-negative integer")


def _check_tool_call(cw: str, call: Any) -> None:
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise FakeScriptError(f"{cw} needs a name")
    extra = set(call) - {"name", "arguments", "id"}
    if extra:
        raise FakeScriptError(f"{cw}: unknown key {sorted(extra)[0]!r}")
    args = call.get("arguments", {})
    if not isinstance(args, Mapping | str):
        raise FakeScriptError(f"{cw}: arguments must be a mapping or a raw string")


def _check_when(where: str, when: Any) -> None:
    if not isinstance(when, Mapping):
        raise FakeScriptError(f"{where}: when must be a mapping")
    bad = sorted(set(when) - _WHEN_KEYS)
    if bad:
        raise FakeScriptError(
            f"{where}: when.{bad[0]} is not a condition "
            f"(expected one of {', '.join(sorted(_WHEN_KEYS))})"
        )


def load_script(
    source: str | Path | Iterable[Mapping[str, Any] | ChatResponse] | Mapping[str, Any],
) -> tuple[list[ScriptEntry], dict[str, Any]]:
    """Read and validate a script; returns (entries, options).

    ``source`` is a file path (YAML or JSON), a list of entries, or a mapping
    ``{replies: [...], require_key: str, models: [...], drop_images: bool,
    drop_response_format: bool, reject_response_format: [...], reject_status: int}``.

    Raises ``FakeScriptError`` with one line naming the file and the entry.
    """
    name = "<script>"
    data: Any = source
    if isinstance(source, str | Path):
        path = Path(source)
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FakeScriptError(f"{name}: cannot read script: {exc.strerror}") from None
        data = _parse_text(name, text, json_only=path.suffix == ".json")
    options: dict[str, Any] = {}
    if isinstance(data, Mapping):
        extra = sorted(set(data) - {"replies", *_OPTION_KEYS})
        if extra:
            raise FakeScriptError(f"{name}: unknown top-level key {extra[0]!r}")
        options = {k: v for k, v in data.items() if k != "replies"}
        validate_options(name, options)
        data = data.get("replies")
    if data is None or isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise FakeScriptError(f"{name}: the script must be a list of entries (or have replies:)")
    entries = [_validate_entry(f"{name}: replies[{i}]", i, e) for i, e in enumerate(data)]
    return entries, options


_OPTION_KEYS = (
    "require_key",
    "models",
    "drop_images",
    "drop_response_format",
    "reject_response_format",
    "reject_status",
)
_FORMAT_TYPES = ("json_schema", "json_object", "text")


def validate_options(name: str, options: Mapping[str, Any]) -> None:
    """Check the server-wide options; ``FakeScriptError`` names the option."""
    if "require_key" in options and not isinstance(options["require_key"], str):
        raise FakeScriptError(f"{name}: require_key must be a string")
    for m in options.get("models") or []:
        ok = isinstance(m, str) or (isinstance(m, Mapping) and isinstance(m.get("id"), str))
        if not ok:
            raise FakeScriptError(f"{name}: models must be names or mappings with an id")
    if not isinstance(options.get("models", []), list):
        raise FakeScriptError(f"{name}: models must be a list of names")
    for key in ("drop_images", "drop_response_format"):
        if not isinstance(options.get(key, False), bool):
            raise FakeScriptError(f"{name}: {key} must be true or false")
    rejected = options.get("reject_response_format", [])
    if not isinstance(rejected, list) or any(t not in _FORMAT_TYPES for t in rejected):
        raise FakeScriptError(
            f"{name}: reject_response_format must be a list of {', '.join(_FORMAT_TYPES)}"
        )
    status = options.get("reject_status", 400)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise FakeScriptError(f"{name}: reject_status must be an HTTP error status")


def _parse_text(name: str, text: str, *, json_only: bool) -> Any:
    if json_only:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FakeScriptError(
                f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from None
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise FakeScriptError(f"{where}: invalid YAML: {exc.problem}") from None
    except YAMLError as exc:
        raise FakeScriptError(f"{name}: invalid YAML: {' '.join(str(exc).split())}") from None


# --- request matching and replies ----------------------------------------------------------


def _texts(messages: Any, role: str | None) -> list[str]:
    out: list[str] = []
    if not isinstance(messages, list):
        return out
    for m in messages:
        if not isinstance(m, dict) or (role is not None and m.get("role") != role):
            continue
        content = m.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return out


def _count_images(body: Any) -> int:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return 0
    n = 0
    for m in body["messages"]:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            n += sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
    return n


def _format_type(body: Any) -> str:
    fmt = body.get("response_format") if isinstance(body, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return str(kind) if kind else "none"


def _drop_images(body: dict[str, Any]) -> dict[str, Any]:
    """The body as a server that ignores images sees it: image parts removed."""
    out = dict(body)
    messages = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            parts = [
                p for p in content if not (isinstance(p, dict) and p.get("type") == "image_url")
            ]
            m = {**m, "content": parts}
        messages.append(m)
    out["messages"] = messages
    return out


def _read_probe(body: dict[str, Any]) -> str:
    """What a vision model answers to agentcorp's probe: the number in its picture."""
    from agentcorp.llm.capabilities import read_digits_image

    for m in body.get("messages") or []:
        for part in m.get("content") or [] if isinstance(m, dict) else []:
            url = part.get("image_url", {}).get("url", "") if isinstance(part, dict) else ""
            if isinstance(url, str) and url.startswith("data:image/png;base64,"):
                number = read_digits_image(base64.b64decode(url.split(",", 1)[1]))
                if number:
                    return number
    return "I see no picture."


def _matches(when: Mapping[str, Any], body: Any, purpose: str | None, images: int) -> bool:
    if not when:
        return True
    if not isinstance(body, dict):
        return False
    messages = body.get("messages")
    for key, want in when.items():
        if key == "purpose" and purpose != want:
            return False
        if key == "response_format" and _format_type(body) != want:
            return False
        if key == "model" and body.get("model") != want:
            return False
        if key == "system_contains" and not any(str(want) in t for t in _texts(messages, "system")):
            return False
        if key == "user_contains" and not any(str(want) in t for t in _texts(messages, "user")):
            return False
        if key == "text_contains" and not any(str(want) in t for t in _texts(messages, None)):
            return False
        if key == "has_images" and bool(want) != (images > 0):
            return False
        if key == "has_tools" and bool(want) != bool(body.get("tools")):
            return False
    return True


def _error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    drop: bool = False


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), dict(headers or {}))


def _retry_headers(spec: Mapping[str, Any]) -> dict[str, str]:
    headers = {}
    if "retry_after_ms" in spec:
        headers["retry-after-ms"] = f"{spec['retry_after_ms']:g}"
    if "retry_after" in spec:
        ra = spec["retry_after"]
        headers["Retry-After"] = ra if isinstance(ra, str) else f"{ra:g}"
    return headers


def _completion(spec: Mapping[str, Any], body: Any, serial: int, images: int) -> dict[str, Any]:
    fault = spec.get("fault")
    calls: list[dict[str, Any]] = []
    for i, call in enumerate(spec.get("tool_calls") or []):
        args = call.get("arguments", {})
        raw = args if isinstance(args, str) else json.dumps(dict(args))
        cid = call.get("id") or f"call_fake_{serial}_{i}"
        calls.append(
            {"id": cid, "type": "function", "function": {"name": call["name"], "arguments": raw}}
        )
    if fault in _TOOL_FAULTS:
        default_tool, raw = _TOOL_FAULTS[fault]
        calls.append(
            {
                "id": f"call_fake_{serial}_f",
                "type": "function",
                "function": {"name": spec.get("tool", default_tool), "arguments": raw},
            }
        )
    content = spec.get("content")
    if "json" in spec:
        content = json.dumps(spec["json"])
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    model = spec.get("model") or (body.get("model") if isinstance(body, dict) else None) or "fake"
    usage: dict[str, Any] = dict(spec.get("usage") or {})
    cached = usage.pop("cached_tokens", None)
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if "prompt_tokens" not in usage:
        text_chars = sum(
            len(t) for t in _texts(body.get("messages") if isinstance(body, dict) else None, None)
        )
        usage["prompt_tokens"] = 10 + text_chars // 4 + 85 * images
    if "completion_tokens" not in usage:
        out_chars = len(content or "") + sum(len(c["function"]["arguments"]) for c in calls)
        usage["completion_tokens"] = 1 + out_chars // 4
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": f"chatcmpl-fake-{serial}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": spec.get("finish_reason", "tool_calls" if calls else "stop"),
            }
        ],
        "usage": usage,
    }


def _reply_for(spec: Mapping[str, Any], body: Any, serial: int, images: int) -> _Reply:
    fault = spec.get("fault")
    if fault == "rate_limit":
        msg = spec.get("message", "Rate limit reached for requests (fake)")
        return _json_reply(
            429, _error_body(msg, "rate_limit_error", "rate_limit_exceeded"), _retry_headers(spec)
        )
    if fault == "quota":
        if spec.get("style", "xai") == "openai":
            return _json_reply(
                429,
                _error_body(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            )
        return _json_reply(429, {"code": "Some resource has been exhausted", "error": _XAI_QUOTA})
    if fault == "server_error":
        status = int(spec.get("status", 500))
        msg = spec.get("message", "The server had an error processing your request (fake)")
        return _json_reply(status, _error_body(msg, "server_error"))
    if fault == "unauthorized":
        msg = spec.get("message", "Incorrect API key provided (fake)")
        return _json_reply(401, _error_body(msg, "invalid_request_error", "invalid_api_key"))
    if fault == "forbidden":
        msg = spec.get("message", "The caller does not have permission (fake)")
        return _json_reply(403, _error_body(msg, "permission_error"))
    if fault == "not_found":
        msg = spec.get("message", "The model does not exist (fake)")
        return _json_reply(404, _error_body(msg, "invalid_request_error", "model_not_found"))
    if fault == "status":
        payload = spec.get("body", _error_body(f"HTTP {spec['status']} (fake)", "fake"))
        if isinstance(payload, str):
            return _Reply(int(spec["status"]), payload.encode(), _retry_headers(spec))
        return _json_reply(int(spec["status"]), payload, _retry_headers(spec))
    if fault == "garbage":
        payload = spec.get("body", "<html><body>502 Bad Gateway (fake)</body></html>")
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        ctype = spec.get(
            "content_type", "text/html" if isinstance(payload, str) else "application/json"
        )
        return _Reply(int(spec.get("status", 200)), raw, {"Content-Type": str(ctype)})
    if fault == "drop":
        return _Reply(0, b"", {}, drop=True)
    return _json_reply(
        200, _completion(spec, body, serial, images), {"x-request-id": f"req-fake-{serial}"}
    )


# --- the server ----------------------------------------------------------------------------


class _State:
    """Script position and request log, shared by handler threads."""

    def __init__(self, entries: list[ScriptEntry], options: Mapping[str, Any]) -> None:
        self.entries = entries
        self.used = [0] * len(entries)
        self.require_key: str | None = options.get("require_key")
        self.models: list[Any] = list(options.get("models") or ["fake-planner", "fake-actor"])
        self.drop_images = bool(options.get("drop_images", False))
        self.drop_response_format = bool(options.get("drop_response_format", False))
        self.reject_response_format: list[str] = list(options.get("reject_response_format", []))
        self.reject_status = int(options.get("reject_status", 400))
        self.requests: list[ReceivedRequest] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.serial = itertools.count(1)

    def pick(self, body: Any, purpose: str | None, images: int) -> ScriptEntry | None:
        for entry in self.entries:
            if entry.times is not None and self.used[entry.index] >= entry.times:
                continue
            if purpose == PROBE and entry.when.get("purpose") != PROBE:
                continue  # a vision probe takes only entries written for it
            if _matches(entry.when, body, purpose, images):
                self.used[entry.index] += 1
                return entry
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per reply and no Nagle: otherwise headers and body go out as two
    # segments and delayed ACKs add ~40 ms to every call.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        """Track the connection so ``stop()`` can end idle keep-alive threads."""
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        """Forget the connection."""
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client went away first
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``FakeOpenAIServer.requests``."""

    def _send(self, reply: _Reply) -> None:
        if reply.drop:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout) while we were slow on purpose.
            self.close_connection = True

    def _record(self, body: Any) -> ReceivedRequest:
        state = self.server.state
        with state.lock:
            req = ReceivedRequest(
                index=len(state.requests),
                method=self.command,
                path=self.path,
                body=body,
                purpose=self.headers.get(PURPOSE_HEADER),
                images=_count_images(body),
                authorization=self.headers.get("Authorization"),
                headers={
                    k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"
                },
            )
            state.requests.append(req)
        return req

    def _key_ok(self, req: ReceivedRequest) -> bool:
        want = self.server.state.require_key
        return want is None or req.authorization == f"Bearer {want}"

    def _route_ok(self, req: ReceivedRequest, *paths: str) -> bool:
        """Answer 404 for an unknown path and 401 for a wrong key; True when neither."""
        if self.path.rstrip("/") not in paths:
            req.status = 404
            self._send(_json_reply(404, _error_body(f"no route {self.path}", "not_found")))
            return False
        if not self._key_ok(req):
            req.status = 401
            self._send(
                _json_reply(
                    401,
                    _error_body(
                        "Incorrect API key provided (fake)",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                )
            )
            return False
        return True

    def do_GET(self) -> None:
        """``GET /v1/models``."""
        req = self._record(None)
        if not self._route_ok(req, "/v1/models", "/models"):
            return
        data = [
            {"object": "model", "owned_by": "agentcorp-fake", **m}
            if isinstance(m, Mapping)
            else {"id": m, "object": "model", "owned_by": "agentcorp-fake"}
            for m in self.server.state.models
        ]
        req.status = 200
        self._send(_json_reply(200, {"object": "list", "data": data}))

    def do_POST(self) -> None:
        """``POST /v1/chat/completions``."""
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            body = None
        req = self._record(body)
        if not self._route_ok(req, "/v1/chat/completions", "/chat/completions"):
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            req.status = 400
            self._send(
                _json_reply(
                    400,
                    _error_body(
                        "body must be a JSON object with messages", "invalid_request_error"
                    ),
                )
            )
            return
        kind = _format_type(body)
        if kind in state.reject_response_format:
            req.status = state.reject_status
            req.refused = True
            msg = f"response_format type {kind!r} is not supported by this server (fake)"
            self._send(_json_reply(req.status, _error_body(msg, "invalid_request_error")))
            return
        seen = body
        if state.drop_response_format:
            seen = {k: v for k, v in seen.items() if k != "response_format"}
        if state.drop_images:
            seen = _drop_images(seen)
        with state.lock:
            entry = state.pick(seen, req.purpose, _count_images(seen))
            serial = next(state.serial)
        if entry is None and req.purpose == PROBE:
            # Unscripted, the fake is a vision model: it reads the probe's number (or, with
            # drop_images, sees no picture), so a run's vision check needs no script entry.
            req.seen_as_vision_model = True
            req.status = 200
            spec = {"content": _read_probe(seen)}
            self._send(_json_reply(200, _completion(spec, seen, serial, _count_images(seen))))
            return
        if entry is None:
            req.status = 400
            msg = (
                f"fake_openai: no script entry left that matches request {req.index} "
                f"(purpose={req.purpose!r}, model={body.get('model')!r})"
            )
            self._send(
                _json_reply(400, _error_body(msg, "invalid_request_error", "script_exhausted"))
            )
            return
        req.entry = entry.index
        delay = float(entry.spec.get("delay", 0))
        if entry.spec.get("fault") == "hang":
            delay = max(delay, 3600.0)
        if delay and state.stop.wait(delay):
            req.status = 0
            self.close_connection = True
            return
        reply = (
            _Reply(0, b"", {}, drop=True)
            if entry.spec.get("fault") == "hang"
            else _reply_for(entry.spec, seen, serial, _count_images(seen))
        )
        req.status = reply.status
        self._send(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, port: int, state: _State) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)


class FakeOpenAIServer:
    """The fake server in a background thread; a context manager.

    ``script``: a path (YAML/JSON), a list of entries (dicts or ``ChatResponse``), or a mapping
    with ``replies``. ``base_url`` is ``http://127.0.0.1:PORT/v1``; ``requests`` lists every
    HTTP request received, in order.
    """

    def __init__(
        self,
        script: str | Path | Sequence[Mapping[str, Any] | ChatResponse] | Mapping[str, Any] = (),
        *,
        port: int = 0,
        require_key: str | None = None,
        **options: Any,
    ) -> None:
        entries, script_options = load_script(script)
        if require_key is not None:
            script_options["require_key"] = require_key
        unknown = sorted(set(options) - set(_OPTION_KEYS))
        if unknown:
            raise FakeScriptError(f"FakeOpenAIServer: unknown option {unknown[0]!r}")
        validate_options("FakeOpenAIServer", options)
        options = {**script_options, **options}
        self._state = _State(entries, options)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAIServer:
        """Bind and serve in a daemon thread."""
        self._server = _Server(self._port, self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; slow or hanging replies are cut short."""
        self._state.stop.set()
        if self._server is not None:
            self._server.shutdown()
            with self._server.conn_lock:
                open_connections = list(self._server.connections)
            for conn in open_connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for a provider's base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def chat_requests(self) -> list[ReceivedRequest]:
        """The chat-completions requests the script answered (or failed to).

        Left out: vision probes the fake answered itself as a vision model (no script entry
        was written for them, see ``requests`` for every request), so a run's vision check
        does not change the count a test expects of its scripted exchange.
        """
        return [r for r in self.requests if r.method == "POST" and not r.seen_as_vision_model]

    @property
    def remaining(self) -> int:
        """How many finite-count entries still have uses left."""
        with self._state.lock:
            return sum(
                e.times - self._state.used[e.index]
                for e in self._state.entries
                if e.times is not None
            )

    def assert_complete(self) -> None:
        """Raise ``AssertionError`` unless every entry was used and every request matched."""
        unmatched = [r.index for r in self.chat_requests if r.entry is None and not r.refused]
        if unmatched:
            raise AssertionError(f"fake_openai: requests {unmatched} matched no script entry")
        if self.remaining:
            raise AssertionError(f"fake_openai: {self.remaining} scripted replies never requested")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentcorp.testing.fake_openai --script FILE --port N``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentcorp.testing.fake_openai",
        description="Serve OpenAI chat completions on 127.0.0.1 from a script.",
    )
    parser.add_argument("--script", required=True, help="YAML or JSON script (docs/fake_openai.md)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--require-key", default=None, help="answer 401 unless this key is sent")
    args = parser.parse_args(argv)
    try:
        server = FakeOpenAIServer(args.script, port=args.port, require_key=args.require_key)
        server.start()
    except FakeScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 3
    print(server.base_url, flush=True)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done.wait()
    server.stop()
    reqs = server.chat_requests
    print(
        f"fake_openai: served {len(reqs)} chat requests, {server.remaining} entries unused",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
