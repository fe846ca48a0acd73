"""The ``Computer`` contract every sandbox backend implements, and the ``Frame`` it returns.

Backends live in their own modules (``xvfb``, ``browser``, ``recorded``) and are wired together
only in the application layer (``agentcorp.app``) and ``agentcorp.fleet``; the actor loop and
planner see this module only. Coordinates are always *screen* pixels here; the model's
downscaled frame is mapped in ``agentcorp.sandbox.coords``.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from agentcorp.errors import ActionInterrupted, UnsupportedAction
from agentcorp.types import Action, Box, Point

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["COMPUTER_ACTIONS", "Button", "Computer", "Frame", "SettleResult", "execute_action"]

Button = Literal["left", "middle", "right"]


class Frame:
    """One captured image of the screen (or of a region of it).

    Pixels are kept as raw RGB bytes; ``pil()``, ``encode()`` and ``sha256`` are computed on
    demand and cached, so a frame that is never sent to a model is never encoded.
    """

    __slots__ = ("_pil", "_sha", "height", "origin", "rgb", "t", "width")

    def __init__(
        self, rgb: bytes, width: int, height: int, origin: Point = (0, 0), t: float = 0.0
    ) -> None:
        if len(rgb) != width * height * 3:
            raise ValueError(f"frame of {width}x{height} needs {width * height * 3} bytes")
        self.rgb = rgb
        self.width = width
        self.height = height
        self.origin = origin
        self.t = t
        self._pil: Image.Image | None = None
        self._sha: str | None = None

    @property
    def size(self) -> Point:
        """(width, height) in pixels."""
        return (self.width, self.height)

    @property
    def sha256(self) -> str:
        """Hash of the raw pixels and size: equal frames have equal hashes."""
        if self._sha is None:
            h = hashlib.sha256(f"{self.width}x{self.height}:".encode())
            h.update(self.rgb)
            self._sha = h.hexdigest()
        return self._sha

    def pil(self) -> Image.Image:
        """The frame as a PIL RGB image (cached)."""
        if self._pil is None:
            from PIL import Image

            self._pil = Image.frombuffer("RGB", (self.width, self.height), self.rgb, "raw")
        return self._pil

    def crop(self, box: Box) -> Frame:
        """A sub-frame; its ``origin`` keeps screen coordinates."""
        img = self.pil().crop((box.x, box.y, box.right, box.bottom))
        return Frame(
            img.tobytes(),
            img.width,
            img.height,
            (self.origin[0] + box.x, self.origin[1] + box.y),
            self.t,
        )

    @classmethod
    def from_pil(cls, img: Image.Image, origin: Point = (0, 0), t: float = 0.0) -> Frame:
        """Wrap a PIL image (converted to RGB)."""
        rgb = img.convert("RGB")
        return cls(rgb.tobytes(), rgb.width, rgb.height, origin, t)


@dataclass(frozen=True, slots=True)
class SettleResult:
    """What ``Computer.settle`` saw: the settled frame and what changed since the action."""

    frame: Frame
    changed: Box | None
    elapsed_ms: float
    stable: bool
    #: Of ``elapsed_ms``, the time spent capturing frames (the rest is waiting).
    capture_ms: float = 0.0


class Computer(ABC):
    """A screen the actor can see and drive. All coordinates are screen pixels.

    Backends must not sleep a fixed time after an action: ``settle()`` waits for the screen to
    stop changing instead. Use as a context manager; ``close()`` stops everything it started.
    """

    @property
    @abstractmethod
    def size(self) -> Point:
        """Screen (width, height) in pixels."""

    @abstractmethod
    def screenshot(self, region: Box | None = None) -> Frame:
        """Capture the whole screen, or only ``region``."""

    @abstractmethod
    def click(self, x: int, y: int, button: Button = "left") -> None:
        """Move to (x, y) and click once with ``button``."""

    @abstractmethod
    def double_click(self, x: int, y: int) -> None:
        """Move to (x, y) and double-click the left button."""

    @abstractmethod
    def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) without clicking."""

    @abstractmethod
    def drag(self, path: Sequence[Point]) -> None:
        """Press the left button at ``path[0]``, move through each point, release at the last."""

    @abstractmethod
    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Scroll at (x, y): ``dy`` > 0 scrolls down, ``dx`` > 0 right, in wheel notches."""

    @abstractmethod
    def type(self, text: str) -> None:
        """Type ``text`` exactly, including Unicode that has no key on the keyboard."""

    @abstractmethod
    def key(self, combo: str) -> None:
        """Press a key combination such as ``"ctrl+s"``, ``"alt+F4"`` or ``"Return"``."""

    @abstractmethod
    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass (only when the model or a script asks for it)."""

    @abstractmethod
    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """Return once the screen stopped changing (or ``timeout`` passed).

        ``changed`` is the bounding box of what differs from ``since`` (the frame before the
        action) when given, so later stages can look only there.
        """

    def check_editable_focus(self, label: str) -> None:  # noqa: B027  (optional check)
        """Raise ``SandboxError`` when focus is known to be outside any editable element.

        That is the ``into: label`` of a typing step having clicked something else. A
        backend that cannot tell does nothing (the default); the desktop asks its
        accessibility tree.
        """

    def take_notes(self) -> list[str]:
        """What the screen did beyond the last actions, since the last call; then forgotten.

        A browser answers the page's own dialogs and follows the tabs it opens: each is one
        line here ("the page asked (confirm) 'Really delete?': accepted"). Text in a note may
        come from the page: it is untrusted. Backends with nothing to tell return ``[]``.
        """
        return []

    def close(self) -> None:  # noqa: B027  (optional hook; a no-op for backends owning nothing)
        """Stop everything this backend started. Safe to call twice."""

    def __enter__(self) -> Computer:
        return self

    def __exit__(
        self,
        exc_type: builtins.type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- interruptible actions ----------------------------------------------------------------
#
# A long action (typing a page of text, a wait) checks ``checkpoint()`` between chunks, so
# a budget that runs out, or a run being aborted, stops it part-way instead of after it.

_abort_reason: str | None = None
_local = threading.local()


def abort_actions(reason: str) -> None:
    """Make every running and future action in this process stop at its next checkpoint."""
    global _abort_reason
    _abort_reason = reason


def clear_abort() -> None:
    """Undo ``abort_actions`` (a new run in the same process)."""
    global _abort_reason
    _abort_reason = None


def checkpoint() -> None:
    """Raise ``ActionInterrupted`` if the run aborts or this thread's action deadline passed."""
    if _abort_reason is not None:
        raise ActionInterrupted(f"interrupted: {_abort_reason}")
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise ActionInterrupted("interrupted: the wall-clock budget ran out mid-action")


@contextmanager
def action_deadline(deadline: float | None) -> Iterator[None]:
    """Bound this thread's actions by ``deadline`` (monotonic; ``None``: no deadline).

    Within the block, ``checkpoint()`` fails once the deadline has passed.
    """
    before = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = before


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that honours ``checkpoint()`` every 50 ms."""
    end = time.monotonic() + seconds
    while True:
        checkpoint()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


#: Action kinds that drive a ``Computer`` (the rest — wait_for, done, fail — are the loop's).
COMPUTER_ACTIONS = frozenset(
    {
        "click",
        "right_click",
        "double_click",
        "move",
        "scroll",
        "drag",
        "type",
        "key",
        "wait",
        "open_url",
    }
)


def execute_action(computer: Computer, a: Action, deadline: float | None = None) -> None:
    """Perform ``a`` on ``computer``: the one place an ``Action`` becomes ``Computer`` calls.

    Raises ``UnsupportedAction`` for a kind the computer cannot do (``open_url`` without a
    browser, or a kind outside ``COMPUTER_ACTIONS``), and ``ActionInterrupted`` when
    ``deadline`` (monotonic) passes or the run aborts while it runs (backends check between
    chunks of a long action).
    """
    with action_deadline(deadline):
        checkpoint()
        _execute(computer, a)


def _execute(computer: Computer, a: Action) -> None:
    if a.kind in ("click", "right_click", "double_click", "move", "scroll"):
        if a.x is None or a.y is None:
            raise UnsupportedAction(f"{a.kind} needs x and y")
        if a.kind == "click":
            computer.click(a.x, a.y)
        elif a.kind == "right_click":
            computer.click(a.x, a.y, "right")
        elif a.kind == "double_click":
            computer.double_click(a.x, a.y)
        elif a.kind == "move":
            computer.move(a.x, a.y)
        else:
            computer.scroll(a.x, a.y, a.dx, a.dy)
    elif a.kind == "drag":
        computer.drag(a.path)
    elif a.kind == "type":
        if a.into:
            computer.check_editable_focus(a.into)
        computer.type(a.text or "")
    elif a.kind == "key":
        computer.key(a.keys or "")
    elif a.kind == "wait":
        computer.wait(a.seconds or 0.0)
    elif a.kind == "open_url":
        goto = getattr(computer, "goto", None)
        if goto is None:
            name = type(computer).__name__
            raise UnsupportedAction(f"open_url needs a browser sandbox, not {name}")
        goto(a.url)
    else:
        raise UnsupportedAction(f"action {a.kind!r} cannot be executed")
