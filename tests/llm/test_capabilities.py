"""The actor model must take images: declared, vendor lineup, server metadata, or a probe."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from agentcorp.errors import LLMUnavailable
from agentcorp.llm import XAI, OpenAIClient, RetryPolicy, custom
from agentcorp.llm.capabilities import (
    VisionUnsupported,
    check_vision,
    digits_image,
    read_digits_image,
    vision_from_metadata,
)
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import ChatRequest

Serve = Callable[..., FakeOpenAIServer]
FAST = RetryPolicy(max_attempts=2, initial_wait=0.001, max_wait=0.002)


def at(srv: FakeOpenAIServer) -> OpenAIClient:
    return OpenAIClient(custom(srv.base_url), retry=FAST, timeout=10)


def refused(srv: FakeOpenAIServer, model: str, **kw: Any) -> str:
    with at(srv) as c, pytest.raises(VisionUnsupported) as info:
        check_vision(c, model, **kw)
    msg = str(info.value)
    assert info.value.exit_code == 3 and "\n" not in msg and repr(model) in msg, msg
    return msg


def test_declared_text_only_is_refused_without_a_request(serve: Serve) -> None:
    srv = serve([])
    msg = refused(srv, "local-llm", declared=False)
    assert "declared: vision: false" in msg and srv.requests == []


def test_declared_vision_is_trusted(serve: Serve) -> None:
    srv = serve([])
    with at(srv) as c:
        assert check_vision(c, "whatever", declared=True).how == "declared"
    assert srv.requests == []


def test_server_metadata_decides_before_any_probe(serve: Serve) -> None:
    srv = serve(
        {
            "models": [
                {"id": "seer", "input_modalities": ["text", "image"]},
                {"id": "blind", "architecture": {"input_modalities": ["text"]}},
            ],
            "replies": [],
        }
    )
    with at(srv) as c:
        assert check_vision(c, "seer").how == "server metadata"
    msg = refused(srv, "blind")
    assert "server metadata" in msg and srv.chat_requests == []


def test_probe_reads_the_number(serve: Serve) -> None:
    srv = serve(
        [{"when": {"purpose": "probe", "has_images": True}, "content": "The number is 47."}]
    )
    with at(srv) as c:
        verdict = check_vision(c, "local-vlm", number=47)
        assert verdict.takes_images and verdict.how == "probe"
        check_vision(c.bind(task="t"), "local-vlm", number=47)  # remembered for the run
    assert len(srv.chat_requests) == 1 and srv.chat_requests[0].images == 1


def test_probe_a_model_that_never_saw_the_picture(serve: Serve) -> None:
    # The server drops the image and the text-only model answers anyway.
    srv = serve(
        [
            {"when": {"purpose": "probe", "has_images": True}, "content": "47"},
            {"when": {"purpose": "probe", "has_images": False}, "content": "I think it is 12."},
        ],
        drop_images=True,
    )
    msg = refused(srv, "smol", number=47)
    assert "asked for the number 47 in a picture, it answered 'I think it is 12.'" in msg


def test_probe_refused_by_the_server_is_text_only(serve: Serve) -> None:
    srv = serve(
        [
            {
                "when": {"purpose": "probe"},
                "fault": "status",
                "status": 400,
                "body": {"error": {"message": "image input is not supported by this model"}},
            }
        ]
    )
    msg = refused(srv, "txt", number=47)
    assert "the server refused an image: image input is not supported" in msg


def test_vendor_lineup_for_presets_only(serve: Serve) -> None:
    srv = serve([])
    with OpenAIClient(XAI.with_base_url(srv.base_url), api_key="xai-k-0123456789") as c:
        assert check_vision(c, "grok-4.20-0309-non-reasoning").how == "vendor lineup"
        with pytest.raises(VisionUnsupported, match="'grok-code-fast-1'"):
            check_vision(c, "grok-code-fast-1")
    assert srv.requests == []


def test_unreachable_endpoint_is_not_a_vision_verdict() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        OpenAIClient(custom(f"http://127.0.0.1:{port}/v1"), retry=FAST) as c,
        pytest.raises(LLMUnavailable, match="cannot reach") as info,
    ):
        check_vision(c, "m", number=47)
    assert not isinstance(info.value, VisionUnsupported)


@pytest.mark.parametrize(
    ("entry", "want"),
    [
        ({"id": "m"}, None),
        ({"input_modalities": ["text"]}, False),
        ({"modalities": {"input": ["text", "image"]}}, True),
        ({"architecture": {"modality": "text+image->text"}}, True),
        ({"architecture": {"modality": "text->text"}}, False),
        ({"capabilities": ["completion", "vision"]}, True),
        ({"capabilities": {"vision": False}}, False),
        ({"vision": True}, True),
        ({"input_modalities": "text"}, None),
    ],
)
def test_metadata_shapes(entry: dict[str, Any], want: bool | None) -> None:
    assert vision_from_metadata(entry) is want


def test_unscripted_fake_server_is_a_vision_model(serve: Serve) -> None:
    # Scripts written for the actor need no probe entry: the fake reads the probe's number,
    # and entries without ``when: {purpose: probe}`` are never spent on a probe.
    srv = serve([{"content": "for the actor"}])
    with at(srv) as c:
        assert check_vision(c, "any-model").how == "probe"
        assert c.complete(ChatRequest(model="m", messages=[{"role": "user", "content": "x"}]))
    probe, actor = [r for r in srv.requests if r.method == "POST"]
    assert probe.seen_as_vision_model and probe.purpose == "probe" and probe.images == 1
    assert [r.index for r in srv.chat_requests] == [actor.index]  # the scripted exchange
    srv.assert_complete()
    blind = serve([], drop_images=True)
    assert "it answered 'I see no picture.'" in refused(blind, "any-model")


@pytest.mark.parametrize("number", [10, 47, 99, 1234])
def test_probe_digits_read_back(number: int) -> None:
    assert read_digits_image(digits_image(number)) == str(number)
    assert read_digits_image(b"not a png") is None


def test_digits_image_is_a_png_of_the_right_size() -> None:
    img = Image.open(io.BytesIO(digits_image(47)))
    assert img.format == "PNG" and img.size[0] > img.size[1] > 50
    assert img.convert("L").getextrema() == (0, 255)  # black strokes on white
