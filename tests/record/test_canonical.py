"""The fast canonical text equals the exact form, across a growing conversation and edits."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentcorp.record.canonical import (
    canonical_json,
    canonical_request_hash,
    externalize_images,
    fast_canonical_text,
)

_PNG = base64.b64encode(b"\x89PNG fake pixels").decode()


def _exact(body: Any) -> str:
    return canonical_json(externalize_images(body))


def _image_msg(n: int) -> dict[str, Any]:
    url = f"data:image/png;base64,{base64.b64encode(f'frame {n}'.encode()).decode()}"
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": f"The screen now ({n}):"},
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
        ],
    }


def _body(messages: list[Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "click", "parameters": {"x": 1}}}],
        "temperature": 0.0,
    }


def test_a_growing_conversation_hashes_like_the_exact_form() -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief. ÀÉ€ 你好"}, _image_msg(0)]
    for step in range(30):
        body = _body(messages)
        assert fast_canonical_text(body) == _exact(body)
        assert canonical_request_hash(body) == hashlib.sha256(_exact(body).encode()).hexdigest()
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"c{step}",
                        "type": "function",
                        "function": {"name": "click", "arguments": '{"x": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"c{step}", "content": "ok"},
            _image_msg(step + 1),
        ]
        if len(messages) > 8:  # an old screenshot ages out into a note, mid-conversation
            messages[-7] = {"role": "user", "content": f"(screenshot {step} omitted)"}


def test_a_message_changed_in_place_is_encoded_again() -> None:
    msg: dict[str, Any] = {"role": "assistant", "content": None}
    body = _body([{"role": "system", "content": "s"}, msg])
    before = fast_canonical_text(body)
    msg["content"] = "now with text"
    after = fast_canonical_text(body)
    assert after != before and after == _exact(body)
    body["messages"][0]["content"] = "s2"  # an earlier message, changed in place
    assert fast_canonical_text(body) == _exact(body)


def test_two_conversations_in_turn_do_not_mix() -> None:
    a = _body([{"role": "system", "content": "a"}, _image_msg(1)])
    b = _body([{"role": "system", "content": "b"}, _image_msg(2)])
    for _ in range(3):
        assert fast_canonical_text(a) == _exact(a)
        assert fast_canonical_text(b) == _exact(b)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["role", "content", "name", "x"]), _json, max_size=4),
        max_size=6,
    ),
    st.dictionaries(st.sampled_from(["model", "tools", "a", "zz"]), _json, max_size=3),
    st.integers(0, 5),
)
def test_any_body_matches_the_exact_form(
    messages: list[Any], extra: dict[str, Any], cut: int
) -> None:
    body = {**extra, "messages": messages}
    assert fast_canonical_text(body) == _exact(body)
    # The same conversation again, cut short and extended: the memo must not leak.
    again = {**extra, "messages": [*copy.deepcopy(messages[:cut]), _image_msg(cut)]}
    assert fast_canonical_text(again) == _exact(again)


def test_numbers_that_compare_equal_but_encode_differently_are_not_confused() -> None:
    for value in (1, True, 1.0, 0.0, -0.0, False, 0):
        body = _body([{"role": "user", "content": "x", "n": value}])
        assert fast_canonical_text(body) == _exact(body)


def test_a_message_that_is_not_kept_is_never_reused() -> None:
    for messages in ([{"n": 1}] * 40, [None] * 40, [{"n": 1}] * 40):
        body = _body(list(messages))
        assert fast_canonical_text(body) == _exact(body)


def test_alternating_conversations_keep_their_own_memo(monkeypatch: Any) -> None:
    from agentcorp.record import canonical

    encoded: list[Any] = []
    real = canonical._fast_message
    monkeypatch.setattr(canonical, "_fast_message", lambda m: encoded.append(m) or real(m))
    actor = [{"role": "system", "content": "actor"}] + [
        {"role": "tool", "tool_call_id": str(i), "content": "ok"} for i in range(100)
    ]
    planner = [{"role": "system", "content": "planner"}, {"role": "user", "content": "plan"}]
    assert fast_canonical_text(_body(actor)) == _exact(_body(actor))
    for n in range(3):
        assert fast_canonical_text(_body(planner)) == _exact(_body(planner))
        actor = [*actor, {"role": "user", "content": f"next {n}"}]
        encoded.clear()
        assert fast_canonical_text(_body(actor)) == _exact(_body(actor))
        # The memo key (the system message) and the one new message, not all 100 again.
        assert len(encoded) == 2


def test_the_request_hash_ignores_key_order_and_names_images_by_their_bytes() -> None:
    png = b"\x89PNG" + bytes(range(50))
    b64 = base64.b64encode(png).decode()

    def body(data: str, reordered: bool = False) -> dict[str, Any]:
        parts: list[Any] = [
            {"type": "text", "text": "hé"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        ]
        msg = {"content": parts, "role": "user"}
        if reordered:
            return {"temperature": 0, "messages": [msg], "model": "m"}
        return {"model": "m", "messages": [msg], "temperature": 0}

    h = canonical_request_hash(body(b64))
    assert h == canonical_request_hash(body(b64, reordered=True))
    assert hashlib.sha256(png).hexdigest() in fast_canonical_text(body(b64))
    assert h != canonical_request_hash(body(base64.b64encode(png + b"!").decode()))
    assert len(h) == 64
