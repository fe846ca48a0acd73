from __future__ import annotations

import base64
import hashlib
from email.utils import formatdate

import pytest

from agentcorp.llm import canonical_json, canonical_request_hash, redact_images, user_message
from agentcorp.llm.retry import RetryPolicy, retry_after_seconds


def _body(png: bytes, wrap: bool = False, order: int = 0) -> dict[str, object]:
    b64 = base64.b64encode(png).decode()
    if wrap:
        b64 = "\n".join(b64[i : i + 4] for i in range(0, len(b64), 4))
    msg = {
        "role": "user",
        "content": [
            {"type": "text", "text": "hé"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64}"}},
        ],
    }
    if order:
        return {"temperature": 0, "messages": [msg], "model": "m"}
    return {"model": "m", "messages": [msg], "temperature": 0}


def test_hash_ignores_key_order_and_base64_wrapping() -> None:
    png = b"\x89PNG" + bytes(range(50))
    h = canonical_request_hash(_body(png))
    assert h == canonical_request_hash(_body(png, wrap=True, order=1))
    assert h != canonical_request_hash(_body(png + b"!"))
    assert len(h) == 64


def test_canonical_json_shape() -> None:
    png = b"pixels"
    text = canonical_json(_body(png))
    digest = hashlib.sha256(png).hexdigest()
    assert text.startswith('{"messages":[{"content":[{"text":"hé","type":"text"}')
    assert f'"url":"sha256:{digest}"' in text and " " not in text
    assert canonical_request_hash(_body(png)) == hashlib.sha256(text.encode()).hexdigest()


def test_redact_images_keeps_other_strings() -> None:
    msg = user_message("data: not an image", [b"a"])
    out = redact_images({"messages": [msg], "note": "data:text/plain,hello"})
    assert out["note"] == "data:text/plain,hello"
    assert out["messages"][0]["content"][0]["text"] == "data: not an image"
    assert out["messages"][0]["content"][1]["image_url"]["url"].startswith("sha256:")
    assert msg["content"][1]["image_url"]["url"].startswith("data:image/png")  # not mutated


@pytest.mark.parametrize(
    ("headers", "want"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], want: float | None) -> None:
    assert retry_after_seconds(headers) == want


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    headers = {"retry-after": formatdate(now + 12, usegmt=True)}
    assert retry_after_seconds(headers, now=lambda: now) == pytest.approx(12, abs=1)
    past = {"retry-after": formatdate(now - 100, usegmt=True)}
    assert retry_after_seconds(past, now=lambda: now) == 0.0


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="must not be negative"):
        RetryPolicy(initial_wait=-1)
