from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from agentcorp.sandbox.base import Frame
from agentcorp.sandbox.encode import encode_observation, model_image


def _frame(w: int = 1280, h: int = 800) -> Frame:
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    for i in range(0, h, 20):
        d.text((10, i), f"row {i} invoice total 1234.56", fill="black")
    return Frame.from_pil(img)


def test_jpeg_default_is_scaled_to_the_long_side() -> None:
    data = encode_observation(_frame())
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.size == (1024, 640)


def test_png_is_lossless_at_full_size() -> None:
    frame = _frame(640, 400)
    data = encode_observation(frame, long_side=2000, fmt="png")
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (640, 400)
    assert img.convert("RGB").tobytes() == frame.rgb


def test_odd_sizes_and_portrait() -> None:
    assert model_image(_frame(801, 1279), 1024).size == (641, 1024)
    assert model_image(_frame(3, 5), 1024).size == (3, 5)


def test_lower_quality_sends_fewer_bytes() -> None:
    frame = _frame()
    assert len(encode_observation(frame, quality=30)) < len(encode_observation(frame, quality=90))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fmt": "webp"}, "jpeg' or 'png"),
        ({"quality": 0}, "quality"),
        ({"long_side": 0}, "long_side"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        encode_observation(_frame(64, 64), **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


class _Recorded(Frame):
    __slots__ = ()

    def encoded(self, long_side: int, fmt: str, quality: int) -> bytes | None:
        return b"sent-bytes" if (long_side, fmt, quality) == (1024, "jpeg", 50) else None


def test_a_recorded_frame_returns_the_bytes_the_model_was_sent() -> None:
    img = Image.new("RGB", (64, 40), "white")
    frame = _Recorded(img.tobytes(), 64, 40)
    assert encode_observation(frame) == b"sent-bytes"
    assert Image.open(io.BytesIO(encode_observation(frame, quality=60))).format == "JPEG"
