"""Model-ready observations: a frame scaled to a long side and encoded as PNG or JPEG.

xAI accepts only JPEG and PNG. The model needs legibility, not fidelity, so the default is a
*legible PNG*: the frame scaled to a long side of 1024, each channel cut into a few equal bins
and mapped onto a small fixed palette (the bins' greys plus 12 saturated colours), packed 4
bits a pixel; a nearly grey frame (clearly coloured pixels under 1/16 of it) is sent as its
luma in those greys, 2 bits a pixel. On a 1280x800 screen full of text
(``bench/step_latency.py``) that is about a quarter of the lossless PNG's bytes while OCR reads
as many words as on the lossless frame; a JPEG needs about three quarters of the PNG's bytes
for the same legibility, because text is JPEG's worst case. ``quality`` sets the bins per
channel (1-39: 3, 40-69: 4, 70-99: 6); ``quality=100`` sends the lossless PNG. ``fmt="jpeg"``
encodes with libjpeg-turbo at ``quality`` with 4:2:0 chroma (figures and the discussion in
docs/benchmarks.md).

Scaling uses OpenCV's SIMD bilinear resize (about 0.5 ms for 1280x800 -> 1024x640, against
10-16 ms for Pillow's) and the palette PNG is written directly (row filter 0, run-length deflate)
because the encode is on every step's critical path.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from agentcorp.sandbox.base import Frame
from agentcorp.sandbox.coords import ScreenMap

__all__ = ["encode_observation", "model_image"]

# Saturated colours kept by the legible PNG (two intensities of the six primary hues), so
# coloured UI cues (errors, links, selections, status lights) stay coloured.
_COLOURS: tuple[tuple[int, int, int], ...] = tuple(
    (r * v, g * v, b * v)
    for v in (255, 128)
    for r, g, b in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1))
)


# A pixel is clearly coloured when its channels differ by at least this much, and a frame
# is sent in greys when fewer than this share of its pixels are: a coloured title bar or a
# few icons do not pay for colour (the text stays legible, which is what the model reads);
# a small red label then reaches the model as grey text. Measured trade-off: the colour
# path costs ~1 ms more per step (bench/step_latency.py); ``fmt="jpeg"`` keeps all colour.
_CHROMA = 48
_COLOUR_SHARE = 1 / 16


def model_image(frame: Frame, long_side: int = 1024) -> Image.Image:
    """The frame as a PIL image scaled (never up) so its longer side is ``long_side``."""
    if ScreenMap.fit(frame.size, long_side).model_size == frame.size:
        return frame.pil()
    return Image.fromarray(_model_array(frame, long_side))


def encode_observation(
    frame: Frame,
    long_side: int = 1024,
    fmt: Literal["jpeg", "png"] = "png",
    quality: int = 50,
) -> bytes:
    """Encode ``frame`` for the model, scaled to ``long_side``.

    ``fmt="png"``: a palette PNG of a few levels per channel (``quality`` 1-99), or the
    lossless PNG (``quality=100``). ``fmt="jpeg"``: JPEG at ``quality``.
    """
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"observation format must be 'jpeg' or 'png', got {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"observation quality must be 1..100, got {quality}")
    # A recorded frame can carry the exact bytes the model was sent with these settings;
    # returning them spares decoding the lossless frame during replay.
    recorded = getattr(frame, "encoded", None)
    if callable(recorded):
        cached = recorded(long_side, fmt, quality)
        if isinstance(cached, bytes):
            return cached
    if fmt == "jpeg":
        # OpenCV's libjpeg-turbo path skips a PIL round trip (~0.5 ms per step); it wants BGR.
        bgr = cv2.cvtColor(_model_array(frame, long_side), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(
            ".jpg",
            bgr,
            [
                cv2.IMWRITE_JPEG_QUALITY,
                quality,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
            ],
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        return data.tobytes()
    if quality < 100:
        levels = _levels(quality)
        if _nearly_grey(frame):
            return _grey_png(frame, long_side, levels)
        return _legible_png(_model_array(frame, long_side), levels)
    buf = io.BytesIO()
    model_image(frame, long_side).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _model_array(frame: Frame, long_side: int) -> np.ndarray:  # type: ignore[type-arg]
    """The frame's pixels (H x W x 3 RGB) scaled like ``model_image``."""
    size = ScreenMap.fit(frame.size, long_side).model_size
    src = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    if size == frame.size:
        return src
    # Bilinear is enough above half scale (every source pixel still contributes).
    interp = cv2.INTER_LINEAR if size[0] * 2 >= frame.width else cv2.INTER_AREA
    return cv2.resize(src, size, interpolation=interp)


def _nearly_grey(frame: Frame) -> bool:
    """Whether clearly coloured pixels cover less than ``_COLOUR_SHARE`` of the frame.

    Judged on a nearest-neighbour sample of every 8th pixel of every 8th row (~16k samples
    for 1280x800, a few hundredths of a ms): a coloured title bar or a few icons do not pay
    for colour; a coloured page does.
    """
    src = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    size = (max(1, frame.width // 8), max(1, frame.height // 8))
    r, g, b = cv2.split(cv2.resize(src, size, interpolation=cv2.INTER_NEAREST))
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    coloured = int(np.count_nonzero(chroma >= _CHROMA))
    return coloured < _COLOUR_SHARE * size[0] * size[1]


def _grey_png(frame: Frame, long_side: int, levels: int) -> bytes:
    """The legible PNG of a nearly grey frame: luma only, ``levels`` greys (2 or 4 bits)."""
    size = ScreenMap.fit(frame.size, long_side).model_size
    src = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    # Luma first, then scale one plane instead of three (about half the work).
    grey = cv2.cvtColor(src, cv2.COLOR_RGB2GRAY)
    if size != frame.size:
        interp = cv2.INTER_LINEAR if size[0] * 2 >= frame.width else cv2.INTER_AREA
        grey = cv2.resize(grey, size, interpolation=interp)
    luts, _, plte = _palette(levels)
    return _png_indexed(cv2.LUT(grey, luts[2]), plte[: 3 * levels], 2 if levels <= 4 else 4)


def _levels(quality: int) -> int:
    return 3 if quality < 40 else 4 if quality < 70 else 6


@lru_cache(maxsize=4)
def _palette(
    levels: int,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, bytes]:  # type: ignore[type-arg]
    """(per-channel LUT to the cube index, cube index -> palette index, PLTE bytes).

    Each channel is cut into ``levels`` equal bins; the ``levels**3`` resulting colours map to
    the nearest entry of a palette that holds the ``levels`` greys first (so a grey screen
    uses only the first entries and packs at 2 bits a pixel) and then ``_COLOURS``.
    """
    # Equal-width bins (0-63, 64-127, ... for 4 levels) rather than rounding to the nearest
    # level: faint anti-aliasing fades into the background and dark strokes go fully dark,
    # which keeps small text crisper (OCR reads more of it).
    q = (np.arange(256, dtype=np.int32) * levels // 256).astype(np.uint8)
    luts = tuple((q.astype(np.int32) * m).astype(np.uint8) for m in (levels * levels, levels, 1))
    values = [round(i * 255 / (levels - 1)) for i in range(levels)]
    palette = np.array([(v, v, v) for v in values] + list(_COLOURS), np.int32)
    cube = np.array(
        [
            (values[i], values[j], values[k])
            for i in range(levels)
            for j in range(levels)
            for k in range(levels)
        ],
        np.int32,
    )
    dist = ((cube[:, None, :] - palette[None, :, :]) ** 2).sum(axis=2)
    nearest = np.zeros(256, np.uint8)
    nearest[: len(cube)] = dist.argmin(axis=1).astype(np.uint8)
    return luts, nearest, palette.astype(np.uint8).tobytes()


def _legible_png(rgb: np.ndarray, levels: int) -> bytes:  # type: ignore[type-arg]
    luts, nearest, plte = _palette(levels)
    # Each channel's LUT already carries its place value (r*L*L, g*L, b), so the cube index
    # is their saturating sum (at most 215); one more LUT gives the palette index.
    r, g, b = cv2.split(rgb)
    cube = cv2.LUT(r, luts[0])
    cv2.add(cube, cv2.LUT(g, luts[1]), dst=cube)
    cv2.add(cube, cv2.LUT(b, luts[2]), dst=cube)
    idx = cv2.LUT(cube, nearest)
    if int(idx.max()) < levels:  # only greys on screen
        plte = plte[: 3 * levels]
    entries = len(plte) // 3
    bits = 2 if entries <= 4 else 4 if entries <= 16 else 8
    return _png_indexed(idx, plte, bits)


def _png_indexed(idx: np.ndarray, plte: bytes, bits: int) -> bytes:  # type: ignore[type-arg]
    """A palette PNG of ``idx`` (H x W palette indices, each < 2**bits) at ``bits`` a pixel."""
    h, w = idx.shape
    per = 8 // bits
    pad = (-w) % per
    if pad:
        idx = np.pad(idx, ((0, 0), (0, pad)))
    stride = idx.shape[1] // per
    rows = np.empty((h, stride + 1), np.uint8)
    rows[:, 0] = 0  # PNG row filter 0: text rows gain little from the others
    if per == 1:
        rows[:, 1:] = idx
    else:
        # Pack ``per`` pixels a byte with whole-word shifts instead of strided slices: a
        # little-endian word holds pixel k in byte k, and PNG wants pixel 0 in the high bits.
        words = np.ascontiguousarray(idx).view(np.uint16 if per == 2 else np.uint32)
        acc = np.left_shift(words, 8 - bits)
        for k in range(1, per):
            np.bitwise_or(acc, np.right_shift(words, 8 * k - (8 - bits * (k + 1))), out=acc)
        rows[:, 1:] = acc.astype(np.uint8)
    # Run-length deflate: a few colours in long runs, so it is both faster than level 1's
    # string matching (~1.4 vs ~2.1 ms here) and smaller.
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = z.compress(rows.data) + z.flush()
    header = struct.pack(">IIBBBBB", w, h, bits, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"PLTE", plte)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
