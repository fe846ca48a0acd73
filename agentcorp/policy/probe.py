"""``SandboxProbe``: facts the gate reads from the sandbox itself, never from the model.

The loop's ``GateContext`` may leave fields empty (a desktop loop may not know the window
class; a model's click names no target). Given the ``Computer``, the gate fills them from the
backend's own optional methods, found by duck typing so this module imports no backend:
``url`` (property), ``window_class()``, ``window_title()``, ``focused_field()`` →
``(Box, is_password) | None`` and ``text_at(x, y)`` → ``str | None``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentcorp.types import Box

__all__ = ["SandboxProbe"]


class SandboxProbe:
    """Reads what a backend offers; a missing method answers ``None``, a failing one raises."""

    def __init__(
        self,
        computer: object | None = None,
        text_at: Callable[[int, int], str | None] | None = None,
    ) -> None:
        self._computer = computer
        self._text_at = text_at if text_at is not None else _method(computer, "text_at")
        self._window_class = _method(computer, "window_class")
        self._window_title = _method(computer, "window_title")
        self._focused = _method(computer, "focused_field")

    @property
    def has_text_at(self) -> bool:
        """Whether screen text at a point can be read."""
        return self._text_at is not None

    def url(self) -> str | None:
        """The page URL, when the backend has one."""
        value = getattr(self._computer, "url", None) if self._computer is not None else None
        return value if isinstance(value, str) and value else None

    def window(self) -> tuple[str | None, str | None]:
        """(class, title) of the focused window, when the backend knows them."""
        cls = self._window_class() if self._window_class is not None else None
        title = self._window_title() if self._window_title is not None else None
        return (cls if isinstance(cls, str) else None, title if isinstance(title, str) else None)

    def focused_field(self) -> tuple[Box, bool] | None:
        """(box, is_password) of the focused input field, when the backend can tell."""
        if self._focused is None:
            return None
        got = self._focused()
        if got is None:
            return None
        box, is_password = got
        return (box, bool(is_password)) if isinstance(box, Box) else None

    def text_at(self, x: int, y: int) -> str | None:
        """The visible text at screen point (x, y), when the backend can read it."""
        if self._text_at is None:
            return None
        value = self._text_at(x, y)
        return value if isinstance(value, str) else None


def _method(obj: object | None, name: str) -> Callable[..., Any] | None:
    if obj is None:
        return None
    fn = getattr(obj, name, None)
    return fn if callable(fn) else None
