"""Canonical request bodies: one JSON form, one hash, and the first difference between two.

A chat-completions body is made canonical by (1) dropping ``None`` fields, (2) replacing every
inline ``data:`` image by a ``blob:sha256:<hex>`` reference to its decoded bytes (so a body that
carries ten screenshots hashes in microseconds and stores each screenshot once), and (3) dumping
with sorted keys and no whitespace. Two requests match when their canonical hashes are equal.

``agentcorp.llm`` may expose its own ``canonical_request_hash``; the recorder and replayer use
the one here on both sides, so the two never have to agree byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
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


def _externalize(body: Any, store: Callable[[bytes, str], str] | None, cache: dict[str, str] | None
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
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _image_ref(url: str) -> str:
    ref = externalize_images(url)
    return ref if isinstance(ref, str) else url


def fast_canonical_text(body: Any) -> str:
    """``canonical_json(externalize_images(body))`` for the usual request shape, quickly.

    Only image parts of ``messages`` (``{"image_url": {"url": "data:..."}}``) are looked at,
    so the tools and the text are never walked in Python. For a body that carries data URLs
    anywhere else the result differs from the exact form; callers that must match the exact
    form compare with it when the fast one does not match.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return canonical_json(externalize_images(body))
    messages: list[Any] = []
    for m in body["messages"]:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            parts: list[Any] = []
            for p in content:
                img = p.get("image_url") if isinstance(p, dict) else None
                if isinstance(img, dict) and isinstance(img.get("url"), str):
                    p = {**p, "image_url": {**img, "url": _image_ref(img["url"])}}
                parts.append(p)
            m = {**m, "content": parts}
        messages.append(m)
    return canonical_json({**body, "messages": messages})


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
