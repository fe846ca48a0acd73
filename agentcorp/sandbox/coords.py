"""The one place that maps the model's downscaled frame to screen pixels and back."""

from __future__ import annotations

from dataclasses import dataclass

from agentcorp.types import Point

__all__ = ["ScreenMap"]


def _check(size: tuple[int, int], what: str) -> tuple[int, int]:
    w, h = size
    if not (isinstance(w, int) and isinstance(h, int)) or w < 1 or h < 1:
        raise ValueError(f"{what} must be two positive integers, got {size!r}")
    return (w, h)


@dataclass(frozen=True, slots=True)
class ScreenMap:
    """Maps between screen pixels and the model's frame of ``model_size`` pixels.

    Pixel centres are mapped onto pixel centres, so a model pixel maps to the screen pixel
    under its centre and back to itself (within one model pixel, the scale permitting).
    """

    screen: tuple[int, int]
    model_size: tuple[int, int]

    def __post_init__(self) -> None:
        _check(self.screen, "screen")
        _check(self.model_size, "model_size")

    @classmethod
    def fit(cls, screen: tuple[int, int], long_side: int) -> ScreenMap:
        """The map for a model frame whose longer side is ``long_side``, same aspect ratio.

        A screen already smaller than ``long_side`` is not upscaled.
        """
        w, h = _check(screen, "screen")
        if long_side < 1:
            raise ValueError(f"long_side must be positive, got {long_side}")
        scale = min(1.0, long_side / max(w, h))
        return cls((w, h), (max(1, round(w * scale)), max(1, round(h * scale))))

    @property
    def scale(self) -> tuple[float, float]:
        """Screen pixels per model pixel, horizontally and vertically."""
        return (self.screen[0] / self.model_size[0], self.screen[1] / self.model_size[1])

    def to_screen(self, x: float, y: float) -> Point:
        """Model (x, y) to screen pixels, clamped onto the screen."""
        sx, sy = self.scale
        return (
            _clamp(int((x + 0.5) * sx), self.screen[0]),
            _clamp(int((y + 0.5) * sy), self.screen[1]),
        )

    def to_model(self, x: float, y: float) -> Point:
        """Screen (x, y) to model pixels, clamped onto the model frame."""
        sx, sy = self.scale
        return (
            _clamp(int((x + 0.5) / sx), self.model_size[0]),
            _clamp(int((y + 0.5) / sy), self.model_size[1]),
        )


def _clamp(v: int, n: int) -> int:
    return 0 if v < 0 else n - 1 if v >= n else v
