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


def test_default_is_a_palette_png_scaled_to_the_long_side() -> None:
    data = encode_observation(_frame())
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.mode == "P" and img.size == (1024, 640)


def test_jpeg_is_scaled_to_the_long_side() -> None:
    img = Image.open(io.BytesIO(encode_observation(_frame(), fmt="jpeg")))
    assert img.format == "JPEG" and img.size == (1024, 640)


def test_png_quality_100_is_lossless_at_full_size() -> None:
    frame = _frame(640, 400)
    data = encode_observation(frame, long_side=2000, fmt="png", quality=100)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG" and img.size == (640, 400)
    assert img.convert("RGB").tobytes() == frame.rgb


def test_odd_sizes_and_portrait() -> None:
    assert model_image(_frame(801, 1279), 1024).size == (641, 1024)
    assert model_image(_frame(3, 5), 1024).size == (3, 5)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_lower_quality_sends_fewer_bytes(fmt: str) -> None:
    frame = _frame()
    low = encode_observation(frame, fmt=fmt, quality=30)  # type: ignore[arg-type]
    high = encode_observation(frame, fmt=fmt, quality=90)  # type: ignore[arg-type]
    assert len(low) < len(high)


def _bit_depth(png: bytes) -> int:
    assert png[12:16] == b"IHDR"
    return png[24]


def test_a_grey_screen_is_sent_as_four_greys_at_two_bits_a_pixel() -> None:
    frame = _frame()
    data = encode_observation(frame)
    img = Image.open(io.BytesIO(data))
    assert _bit_depth(data) == 2
    colours = {c for _, c in img.convert("RGB").getcolors(16) or []}
    assert colours <= {(0, 0, 0), (85, 85, 85), (170, 170, 170), (255, 255, 255)}
    assert len(data) * 4 < len(encode_observation(frame, fmt="png", quality=100))


def test_a_coloured_screen_keeps_its_colours() -> None:
    img = Image.new("RGB", (1280, 800), (250, 250, 250))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 1279, 199), fill=(220, 30, 30))  # a quarter of the screen is red
    d.rectangle((0, 600, 1279, 799), fill=(20, 40, 230))
    d.text((10, 300), "Total due 1234.56", fill="black")
    data = encode_observation(Frame.from_pil(img))
    out = Image.open(io.BytesIO(data)).convert("RGB")
    assert _bit_depth(data) == 4
    assert out.getpixel((500, 50)) == (255, 0, 0)
    assert out.getpixel((500, 600)) == (0, 0, 255)
    assert out.getpixel((500, 300)) == (255, 255, 255)


def test_a_coloured_title_bar_alone_does_not_make_a_screen_coloured() -> None:
    img = Image.new("RGB", (1280, 800), "white")
    ImageDraw.Draw(img).rectangle((0, 0, 1279, 29), fill=(120, 160, 210))
    assert _bit_depth(encode_observation(Frame.from_pil(img))) == 2


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 2), (1025, 3), (13, 640)])
def test_palette_png_of_odd_sizes_round_trips(size: tuple[int, int]) -> None:
    img = Image.new("RGB", size, "white")
    img.putpixel((0, 0), (0, 0, 0))
    img.putpixel((size[0] - 1, size[1] - 1), (90, 90, 90))
    for frame_img in (img, Image.blend(img, Image.new("RGB", size, (255, 0, 0)), 0.9)):
        data = encode_observation(Frame.from_pil(frame_img), long_side=4096)
        out = Image.open(io.BytesIO(data))
        out.load()
        assert out.size == size
    grey = Image.open(io.BytesIO(encode_observation(Frame.from_pil(img), long_side=4096)))
    if size != (1, 1):  # otherwise both pixels are the same one
        assert grey.convert("RGB").getpixel((0, 0)) == (0, 0, 0)
    assert grey.convert("RGB").getpixel((size[0] - 1, size[1] - 1)) == (85, 85, 85)


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
        return b"sent-bytes" if (long_side, fmt, quality) == (1024, "png", 50) else None


def test_a_recorded_frame_returns_the_bytes_the_model_was_sent() -> None:
    img = Image.new("RGB", (64, 40), "white")
    frame = _Recorded(img.tobytes(), 64, 40)
    assert encode_observation(frame) == b"sent-bytes"
    assert Image.open(io.BytesIO(encode_observation(frame, quality=60))).format == "PNG"
    assert Image.open(io.BytesIO(encode_observation(frame, fmt="jpeg"))).format == "JPEG"
