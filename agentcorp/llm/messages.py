"""Helpers to build OpenAI-shape message content, including images as data URLs."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["count_images", "image_part", "text_part", "user_message"]


def text_part(text: str) -> dict[str, Any]:
    """A text content part."""
    return {"type": "text", "text": text}


def image_part(
    data: bytes, *, mime: str = "image/png", detail: Literal["auto", "low", "high"] = "auto"
) -> dict[str, Any]:
    """An ``image_url`` content part carrying ``data`` inline as a base64 data URL."""
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url, "detail": detail}}


def user_message(text: str, images: Iterable[bytes] = ()) -> dict[str, Any]:
    """A user message with text then images (PNG bytes)."""
    parts = [text_part(text)] + [image_part(img) for img in images]
    return {"role": "user", "content": parts}


def count_images(messages: Sequence[Mapping[str, Any]]) -> int:
    """How many ``image_url`` parts the messages carry."""
    n = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            n += sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")
    return n
