"""Canonical request bodies: one JSON form, one hash, and the first difference between two.

A chat-completions body is made canonical by (1) dropping ``None`` fields, (2) replacing every
inline ``data:`` image by a ``blob:sha256:<hex>`` reference to its decoded bytes (so a body that
carries ten screenshots hashes in microseconds and stores each screenshot once), and (3) dumping
with sorted keys and no whitespace. Two requests match when their canonical hashes are equal.

This is agentcorp's one request hash: the loop and planner name their model calls with it, the
recorder stores it, and the replayer matches on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agentcorp.types import ChatRequest

__all__ = [
    "BLOB_REF_PREFIX",
    "canonical_json",
    "canonical_request_hash",
    "externalize_images",
    "fast_canonical_text",
    "first_difference",
    "internalize_images",
    "request_body",
]

BLOB_REF_PREFIX = "blob:sha256:"
_DATA_PREFIX = "data:"
# Hash-only references of recently seen data URLs (a conversation resends the same few
# screenshots in every request); bounded, and cleared when full.
_HASH_CACHE: dict[str, str] = {}
_HASH_CACHE_MAX = 64
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The OpenAI wire body of ``request`` (``None`` fields dropped; ``purpose`` is ours)."""
    body: dict[str, Any] = {"model": request.model, "messages": request.messages}
    for name in ("tools", "tool_choice", "response_format", "temperature", "max_tokens"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    return body


def externalize_images(
    body: Any,
    store: Callable[[bytes, str], str] | None = None,
    cache: dict[str, str] | None = None,
) -> Any:
    """A copy of ``body`` with every base64 ``data:`` URL replaced by a blob reference.

    ``store(data, media_type)`` is called with each decoded payload and returns its sha256;
    without it the bytes are only hashed. Non-base64 or malformed data URLs are kept as they are.
    ``cache`` maps URLs already seen to their reference (the same screenshots recur in every
    request of a conversation; Python caches a string's hash, so lookups are cheap).
    """
    if cache is None and store is None:
        if len(_HASH_CACHE) > _HASH_CACHE_MAX:
            _HASH_CACHE.clear()
        cache = _HASH_CACHE
    return _externalize(body, store, cache)


def _externalize(
    body: Any, store: Callable[[bytes, str], str] | None, cache: dict[str, str] | None
) -> Any:
    if isinstance(body, dict):
        return {k: _externalize(v, store, cache) for k, v in body.items()}
    if isinstance(body, list):
        return [_externalize(v, store, cache) for v in body]
    if isinstance(body, str) and body.startswith(_DATA_PREFIX):
        if cache is not None:
            hit = cache.get(body)
            if hit is not None:
                return hit
        head, sep, payload = body.partition(",")
        if sep and head.endswith(";base64"):
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return body
            media = head[len(_DATA_PREFIX) : -len(";base64")]
            sha = store(data, media) if store else hashlib.sha256(data).hexdigest()
            ref = f"{BLOB_REF_PREFIX}{sha};{media}"
            if cache is not None:
                cache[body] = ref
            return ref
    return body


def internalize_images(body: Any, load: Callable[[str], bytes]) -> Any:
    """The inverse of ``externalize_images``: blob references become ``data:`` URLs again."""
    if isinstance(body, dict):
        return {k: internalize_images(v, load) for k, v in body.items()}
    if isinstance(body, list):
        return [internalize_images(v, load) for v in body]
    if isinstance(body, str) and body.startswith(BLOB_REF_PREFIX):
        sha, _, media = body[len(BLOB_REF_PREFIX) :].partition(";")
        return f"data:{media};base64,{base64.b64encode(load(sha)).decode('ascii')}"
    return body


def canonical_json(body: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept: the one text form that is hashed."""
    # The bodies are JSON trees built by our own code; skipping the circular-reference
    # bookkeeping (an id() set insert per container) makes the dump ~20 % faster on a long
    # conversation, and a real cycle still fails (RecursionError) rather than looping.
    return _ENCODER.encode(body)


def _image_ref(url: str) -> str:
    ref = externalize_images(url)
    return ref if isinstance(ref, str) else url


def fast_canonical_text(body: Any) -> str:
    """``canonical_json(externalize_images(body))`` for the usual request shape, quickly.

    Only image parts of ``messages`` (``{"image_url": {"url": "data:..."}}``) are looked at,
    so the tools and the text are never walked in Python. For a body that carries data URLs
    anywhere else the result differs from the exact form; callers that must match the exact
    form compare with it when the fast one does not match.

    Every request of a conversation resends all earlier messages, so the canonical text of
    each message is kept (with a deep copy of the message it was made from) and reused while
    the message at the same position still equals its copy: a session of n requests costs
    O(n) message encodings instead of O(n^2). Equality is checked against the copies, not by
    identity, so a message changed in place is encoded again; only messages made of strings,
    ``None``, dicts and lists are kept (numbers and booleans compare equal across types).
    Memos are kept per thread and first message (the system prompt), 16 at most.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return canonical_json(externalize_images(body))
    if not all(isinstance(k, str) for k in body):
        return canonical_json({**body, "messages": [_fast_message(m) for m in body["messages"]]})
    messages_text = _memo_for(body["messages"]).messages_text(body["messages"])
    parts = [
        _ENCODER.encode(key) + ":" + (messages_text if key == "messages" else canonical_json(value))
        for key, value in sorted(body.items())
    ]
    return "{" + ",".join(parts) + "}"


def _fast_message(m: Any) -> Any:
    """One message with its inline images replaced by blob references (see above)."""
    content = m.get("content") if isinstance(m, dict) else None
    if not isinstance(content, list):
        return m
    parts: list[Any] = []
    for p in content:
        img = p.get("image_url") if isinstance(p, dict) else None
        if isinstance(img, dict) and isinstance(img.get("url"), str):
            p = {**p, "image_url": {**img, "url": _image_ref(img["url"])}}
        parts.append(p)
    return {**m, "content": parts}


def _plain_copy(value: Any) -> Any:
    """A deep copy of a value made of dicts (str keys), lists, strings, ``None``; else a marker.

    ``_UNCACHED`` is returned for anything else. Equality is exact for such values (a string
    equals only the same string), whereas ``1 == 1.0 == True`` would let messages that encode
    differently look the same. Strings are shared with the original, so comparing the two
    later is mostly identity checks.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            c = _plain_copy(v)
            if not isinstance(k, str) or c is _UNCACHED:
                return _UNCACHED
            out[k] = c
        return out
    if isinstance(value, list):
        items = [_plain_copy(v) for v in value]
        return _UNCACHED if any(c is _UNCACHED for c in items) else items
    return _UNCACHED


class _MessageMemo:
    """The canonical texts of the messages of the last conversation seen, with copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: list[Any] = []
        self._texts: list[str] = []

    def messages_text(self, messages: list[Any]) -> str:
        with self._lock:
            old_copies, old_texts = self._copies, self._texts
            n_old = len(old_copies)
            copies: list[Any] = []
            texts: list[str] = []
            i, n = 0, len(messages)
            while i < n:
                # Whole runs first: one C-level deep comparison of a slice with the copies
                # (strings shared with them compare by identity) costs far less than a
                # Python step per message, let alone encoding the messages again.
                j = min(i + _RUN, n_old)
                if j - i == _RUN and messages[i:j] == old_copies[i:j]:
                    copies += old_copies[i:j]
                    texts += old_texts[i:j]
                    i = j
                    continue
                for m in messages[i : i + _RUN]:
                    if i < n_old and m == old_copies[i]:
                        copies.append(old_copies[i])
                        texts.append(old_texts[i])
                    else:
                        texts.append(canonical_json(_fast_message(m)))
                        copies.append(_plain_copy(m))
                    i += 1
            self._copies, self._texts = copies, texts
            return "[" + ",".join(texts) + "]"


_RUN = 32  # messages compared at once
# Stands for the copy of a message that is not kept: equal to nothing but itself.
_UNCACHED = object()
# One memo per (thread, first message): the actor and the planner (different system
# prompts), or actors on several threads, each keep their own conversation instead of
# evicting each other's on every request.
_MEMOS: OrderedDict[tuple[int, str], _MessageMemo] = OrderedDict()
_MEMOS_MAX = 16
_MEMOS_LOCK = threading.Lock()


def _memo_for(messages: list[Any]) -> _MessageMemo:
    first = canonical_json(_fast_message(messages[0])) if messages else ""
    key = (threading.get_ident(), first)
    with _MEMOS_LOCK:
        memo = _MEMOS.get(key)
        if memo is None:
            memo = _MEMOS[key] = _MessageMemo()
            if len(_MEMOS) > _MEMOS_MAX:
                _MEMOS.popitem(last=False)
        else:
            _MEMOS.move_to_end(key)
        return memo


def canonical_request_hash(body: Any) -> str:
    """sha256 of the canonical form of ``body`` (a wire dict or a ``ChatRequest``)."""
    if isinstance(body, ChatRequest):
        body = request_body(body)
    return hashlib.sha256(fast_canonical_text(body).encode()).hexdigest()


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _text_diff(a: str, b: str) -> str:
    """The two strings around their first differing character, so the change is visible."""
    i = 0
    n = min(len(a), len(b))
    while i < n and a[i] == b[i]:
        i += 1
    start = max(0, i - 20)
    lead = "…" if start else ""
    return f"{_short(lead + a[start:])} vs {_short(lead + b[start:])} (at character {i})"


def first_difference(recorded: Any, live: Any, path: str = "") -> str | None:
    """Where two JSON values first differ, as ``path: what`` (``None`` when equal)."""
    where = path or "body"
    if isinstance(recorded, dict) and isinstance(live, dict):
        # The prompt is what people change most: report it before sampling settings.
        keys = sorted(set(recorded) | set(live), key=lambda k: (k != "messages", str(k)))
        for key in keys:
            sub = f"{path}.{key}" if path else str(key)
            if key not in live:
                return f"{sub} missing (recorded {_short(recorded[key])})"
            if key not in recorded:
                return f"{sub} added ({_short(live[key])})"
            found = first_difference(recorded[key], live[key], sub)
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(live, list):
        for i, (a, b) in enumerate(zip(recorded, live, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(recorded) != len(live):
            return f"{where} has {len(live)} items, recorded {len(recorded)}"
        return None
    if recorded == live and type(recorded) is type(live):
        return None
    if isinstance(recorded, str) and isinstance(live, str):
        return f"{where} differs: {_text_diff(recorded, live)}"
    return f"{where} differs: {_short(recorded)} vs {_short(live)}"
