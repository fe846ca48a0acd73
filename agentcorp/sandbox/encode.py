"""Model-ready observations: a frame scaled to a long side and encoded as JPEG or PNG.

xAI accepts only JPEG and PNG. Defaults (long side 1024, JPEG quality 50) come from
``bench/step_latency.py`` on a 1280x800 desktop full of text: OCR still reads at least 95 %
of the words it reads on the lossless frame, while quality 75 buys no legibility for a
third more bytes. Dense text is JPEG's worst case, so the bytes sent are about 0.7-0.8 of
the lossless PNG there (figures and the discussion in docs/benchmarks.md).

Scaling uses OpenCV's SIMD bilinear resize (about 1 ms for 1280x800 -> 1024x640, against
10-16 ms for Pillow's) because the encode is on every step's critical path.
"""

from __future__ import annotations

import io
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from agentcorp.sandbox.base import Frame
from agentcorp.sandbox.coords import ScreenMap

__all__ = ["encode_observation", "model_image"]


def model_image(frame: Frame, long_side: int = 1024) -> Image.Image:
    """The frame as a PIL image scaled (never up) so its longer side is ``long_side``."""
    if ScreenMap.fit(frame.size, long_side).model_size == frame.size:
        return frame.pil()
    return Image.fromarray(_model_array(frame, long_side))


def encode_observation(
    frame: Frame,
    long_side: int = 1024,
    fmt: Literal["jpeg", "png"] = "jpeg",
    quality: int = 50,
) -> bytes:
    """Encode ``frame`` for the model: scaled to ``long_side``, as JPEG (``quality``) or PNG."""
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"observation format must be 'jpeg' or 'png', got {fmt!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
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
            ".jpg", bgr,
            [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
             cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420],
        )
        if not ok:
            raise ValueError("JPEG encoding failed")
        return data.tobytes()
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
