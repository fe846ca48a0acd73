"""Sandbox backend: a ``Computer`` that shows the frames of a recorded session.

``RecordedFramesComputer(session)`` lets the actor loop run with no desktop at all (decision
replay with ``--no-sandbox``). Actions are accepted and logged in ``calls``; every capture
(``screenshot`` or ``settle``) serves the recorded observations in order. Frames are grouped
by *epoch*, the number of screen-changing actions executed before them: after an action the
next capture moves to the next epoch's frames, and repeated captures within an epoch walk
through that epoch's frames and then stay on the last. ``wait`` does not start an epoch (the
loop also waits while polling), which keeps polling loops aligned with the recording.

Frames are ``RecordedFrame`` objects: their pixel hash is known from the recording and their
pixels are decoded from the PNG blob only when someone looks at them, so replays that only
hash frames never decode one. ``model_images`` holds the exact encoded bytes the model was
sent, keyed by ``(long_side, format, quality)``, for encoders that want to reuse them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentcorp.errors import RecordingError
from agentcorp.sandbox.base import Button, Computer, Frame, SettleResult
from agentcorp.types import (
    ActionResultStep,
    ActionStep,
    Box,
    ObservationStep,
    Point,
    PolicyStep,
)

if TYPE_CHECKING:
    from PIL import Image

    from agentcorp.record.session import Session

__all__ = ["RecordedCall", "RecordedFrame", "RecordedFramesComputer"]

# Actions that do not change the screen by themselves, so they do not start a new epoch.
_NO_EPOCH = frozenset({"done", "fail", "wait", "wait_for", "zoom", "request_help"})
# Actions the loop answers itself: the computer never runs them, so they have no notes.
_NOT_RUN = frozenset({"done", "fail", "zoom", "request_help"})


class RecordedFrame(Frame):
    """A frame from a recording: hash known up front, pixels decoded on first use."""

    __slots__ = ("_load", "_rgb", "model_images")

    def __init__(
        self,
        sha256: str,
        size: Point,
        load: Callable[[], Frame],
        model_images: dict[tuple[int, str, int], Callable[[], bytes]] | None = None,
    ) -> None:
        # Frame.__init__ would need the pixels; set its slots directly instead.
        self.width, self.height = size
        self.origin = (0, 0)
        self.t = 0.0
        self._pil = None
        self._sha = sha256
        self._rgb: bytes | None = None
        self._load = load
        # (long side, format, quality) -> loader of the bytes the model was sent.
        self.model_images: dict[tuple[int, str, int], Callable[[], bytes]] = model_images or {}

    @property
    def rgb(self) -> bytes:
        """The raw pixels, decoded from the recording on first access."""
        if self._rgb is None:
            frame = self._load()
            if frame.size != self.size:
                raise RecordingError(
                    f"frame {self._sha}: stored size {frame.size} != recorded {self.size}"
                )
            self._rgb = frame.rgb
        return self._rgb

    @rgb.setter
    def rgb(self, value: bytes) -> None:
        self._rgb = value

    def encoded(self, long_side: int, fmt: str, quality: int) -> bytes | None:
        """The exact bytes the model was sent for this frame with these settings, if recorded.

        Encoders may return these instead of re-encoding (same pixels and settings give the
        same bytes), which spares decoding the lossless frame at all.
        """
        load = self.model_images.get((long_side, fmt, quality))
        return load() if load is not None else None

    def pil(self) -> Image.Image:
        """The frame as a PIL RGB image (decoded once)."""
        if self._pil is None:
            from PIL import Image

            self._pil = Image.frombuffer("RGB", (self.width, self.height), self.rgb, "raw")
        return self._pil


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call the loop made on the recorded-frames computer."""

    method: str
    args: tuple[Any, ...]
    epoch: int


class RecordedFramesComputer(Computer):
    """Serves a session's recorded frames; accepts and logs every action."""

    def __init__(self, session: Session, *, image_key: tuple[int, str, int] | None = None) -> None:
        self.session = session
        self.calls: list[RecordedCall] = []
        self._epochs: list[list[RecordedFrame]] = [[]]
        self._expected: list[list[Any]] = [[]]
        # The notes of each action the computer ran (a dialog, a new tab), in order.
        self._notes: list[list[str]] = []
        cache: dict[str, RecordedFrame] = {}
        denied: set[int] = set()
        pending: ActionStep | None = None
        events = session.events
        for i, ev in enumerate(events):
            step = ev.step
            if isinstance(step, PolicyStep) and step.decision in ("denied", "rejected"):
                denied.add(step.step)
            if isinstance(step, ActionStep):
                pending = step
            elif isinstance(step, ActionResultStep) and pending is not None:
                if pending.action.kind not in _NOT_RUN and pending.step not in denied:
                    self._notes.append(list(step.notes))
                if pending.action.kind not in _NO_EPOCH and pending.step not in denied:
                    self._expected[-1].append(pending.action)
                    self._epochs.append([])
                    self._expected.append([])
                pending = None
            elif isinstance(step, ObservationStep):
                sha = ev.refs.get("frame") or step.frame_sha256
                frame = cache.get(sha)
                if frame is None:
                    frame = cache[sha] = RecordedFrame(
                        sha, step.size, _loader(session, ev.refs.get("frame"), i)
                    )
                img = ev.refs.get("image")
                # A blanked image is not what encoding the stored frame gives: never reuse it.
                reusable = "blanked" not in ev.refs
                if (
                    img
                    and reusable
                    and image_key is not None
                    and (image_key not in frame.model_images)
                ):
                    frame.model_images[image_key] = _blob_loader(session, img)
                self._epochs[-1].append(frame)
        if not any(self._epochs):
            raise RecordingError(f"{session.folder}: the session holds no observation frames")
        first = next(f for e in self._epochs for f in e)
        self._size: Point = first.size
        self._epoch = 0
        self._dirty = False
        self._cursor = -1
        self._last: Frame = first

    # --- capture -----------------------------------------------------------------------
    @property
    def size(self) -> Point:
        """Screen size of the recording."""
        return self._size

    @property
    def epoch(self) -> int:
        """How many screen-changing actions the replay has executed."""
        return self._epoch

    def _next_frame(self) -> Frame:
        if self._dirty:
            self._epoch += 1
            self._cursor = -1
            self._dirty = False
        frames = self._epochs[self._epoch] if self._epoch < len(self._epochs) else []
        if frames:
            self._cursor = min(self._cursor + 1, len(frames) - 1)
            self._last = frames[self._cursor]
        # An epoch with no recorded frame (the session ended there) keeps the last frame.
        return self._last

    def screenshot(self, region: Box | None = None) -> Frame:
        """The next recorded frame (or its ``region``)."""
        self.calls.append(RecordedCall("screenshot", (region,), self._epoch))
        frame = self._next_frame()
        return frame.crop(region) if region is not None else frame

    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """The next recorded frame, reported as settled at once."""
        self.calls.append(RecordedCall("settle", (timeout,), self._epoch))
        frame = self._next_frame()
        changed = None
        if since is not None and since.sha256 != frame.sha256:
            changed = Box(0, 0, frame.width, frame.height)
        return SettleResult(frame, changed, 0.0, True)

    # --- actions: accepted, logged ------------------------------------------------------
    def _act(self, method: str, *args: Any) -> None:
        self.calls.append(RecordedCall(method, args, self._epoch))
        self._dirty = True

    def click(self, x: int, y: int, button: Button = "left") -> None:
        """Log a click."""
        self._act("click", x, y, button)

    def double_click(self, x: int, y: int) -> None:
        """Log a double click."""
        self._act("double_click", x, y)

    def move(self, x: int, y: int) -> None:
        """Log a pointer move."""
        self._act("move", x, y)

    def drag(self, path: Sequence[Point]) -> None:
        """Log a drag."""
        self._act("drag", tuple(tuple(p) for p in path))

    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Log a scroll."""
        self._act("scroll", x, y, dx, dy)

    def type(self, text: str) -> None:
        """Log typed text."""
        self._act("type", text)

    def key(self, combo: str) -> None:
        """Log a key combination."""
        self._act("key", combo)

    def goto(self, url: str) -> None:
        """Log a navigation (browser sessions)."""
        self._act("goto", url)

    def wait(self, seconds: float) -> None:
        """Time does not pass in a replay; the wait is only logged."""
        self.calls.append(RecordedCall("wait", (seconds,), self._epoch))

    def take_notes(self) -> list[str]:
        """The recorded notes of the next action the recording ran, as the run took them."""
        return self._notes.pop(0) if self._notes else []

    def seek_end(self) -> None:
        """Jump to the last recorded frame (the final state), e.g. for regrading checks."""
        for epoch in range(len(self._epochs) - 1, -1, -1):
            if self._epochs[epoch]:
                self._epoch, self._cursor, self._dirty = epoch, len(self._epochs[epoch]) - 2, False
                self._last = self._epochs[epoch][-1]
                return

    def expected_actions(self, epoch: int) -> list[Any]:
        """The recorded actions that ended ``epoch`` (for comparing with ``calls``)."""
        return list(self._expected[epoch]) if epoch < len(self._expected) else []


def _loader(session: Session, frame_sha: str | None, index: int) -> Callable[[], Frame]:
    def load() -> Frame:
        if not frame_sha:
            raise RecordingError(
                f"{session.folder}: observation {index + 1} has no stored frame to show"
            )
        return session.frame(frame_sha)

    return load


def _blob_loader(session: Session, sha: str) -> Callable[[], bytes]:
    return lambda: session.blob(sha)
