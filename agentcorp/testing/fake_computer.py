"""``FakeComputer``: an in-memory screen of named widgets drawn with PIL, for loop tests.

The screen is rendered from a list of ``Widget`` values (buttons, text fields, labels) in a
real TrueType font, so OCR grounders can read it. Clicks focus fields and press buttons (a
button's ``on_click`` may change the screen), typing goes into the focused field, and every
call is recorded in ``.actions`` as a tuple, so tests assert exactly what reached the computer::

    fc = FakeComputer([Widget("save", "button", Box(100, 100, 120, 40), "Save")])
    fc.click(160, 120)
    assert fc.actions == [("click", 160, 120, "left")]
    assert fc.widget("save").clicks == 1

``widget_grounder()`` returns a ``Grounder`` that answers from the widget list itself (exact
boxes, case-insensitive text match): a deterministic stand-in for OCR in unit tests of the
loop's own logic. Nothing here sleeps except ``wait``, which really lets time pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageChops, ImageDraw, ImageFont

from agentcorp.grounding.base import Candidate, Grounder, Hint
from agentcorp.sandbox.base import Button, Computer, Frame, SettleResult, interruptible_sleep
from agentcorp.types import Box, Point

__all__ = ["FakeComputer", "Widget", "WidgetGrounder"]

_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for p in _FONT_PATHS:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size)


@dataclass(slots=True)
class Widget:
    """One thing on the fake screen. ``value`` is a field's content; ``text`` its label."""

    name: str
    kind: Literal["button", "field", "label"]
    box: Box
    text: str = ""
    value: str = ""
    on_click: Callable[[FakeComputer], None] | None = field(default=None, repr=False)
    clicks: int = 0
    visible: bool = True


class FakeComputer(Computer):
    """An in-memory ``Computer``; see the module docstring."""

    def __init__(
        self,
        widgets: Sequence[Widget] = (),
        *,
        size: Point = (1280, 800),
        font_size: int = 20,
        url: str | None = None,
    ) -> None:
        self._size = size
        self.widgets: list[Widget] = list(widgets)
        self.focused: Widget | None = None
        self.actions: list[tuple[Any, ...]] = []
        self.url = url
        self.scroll_offset = (0, 0)
        self._font = _font(font_size)
        self.closed = False

    # --- widgets ----------------------------------------------------------------------

    def add(self, widget: Widget) -> Widget:
        """Put ``widget`` on screen (shown from the next screenshot on)."""
        self.widgets.append(widget)
        return widget

    def widget(self, name: str) -> Widget:
        """The widget called ``name`` (``KeyError`` if none)."""
        for w in self.widgets:
            if w.name == name:
                return w
        raise KeyError(name)

    def at(self, x: int, y: int) -> Widget | None:
        """The topmost visible widget under (x, y)."""
        for w in reversed(self.widgets):
            if w.visible and w.box.contains(x, y):
                return w
        return None

    def render(self) -> Image.Image:
        """Draw the screen as it is now."""
        img = Image.new("RGB", self._size, (255, 255, 255))
        d = ImageDraw.Draw(img)
        for w in self.widgets:
            if not w.visible:
                continue
            b = w.box
            if w.kind == "button":
                d.rectangle(
                    (b.x, b.y, b.right - 1, b.bottom - 1),
                    fill=(225, 225, 225),
                    outline=(90, 90, 90),
                    width=2,
                )
                d.text(
                    (b.x + b.w // 2, b.y + b.h // 2),
                    w.text,
                    fill=(0, 0, 0),
                    font=self._font,
                    anchor="mm",
                )
            elif w.kind == "field":
                d.rectangle(
                    (b.x, b.y, b.right - 1, b.bottom - 1),
                    fill=(255, 255, 255),
                    outline=(0, 0, 200) if w is self.focused else (120, 120, 120),
                    width=2,
                )
                d.text(
                    (b.x + 6, b.y + b.h // 2), w.value, fill=(0, 0, 0), font=self._font, anchor="lm"
                )
            else:
                d.text((b.x, b.y + b.h // 2), w.text, fill=(0, 0, 0), font=self._font, anchor="lm")
        return img

    # --- Computer ---------------------------------------------------------------------

    @property
    def size(self) -> Point:
        """Screen (width, height)."""
        return self._size

    def screenshot(self, region: Box | None = None) -> Frame:
        """Render and return the screen (or ``region`` of it)."""
        frame = Frame.from_pil(self.render(), t=time.monotonic())
        return frame.crop(region) if region is not None else frame

    def click(self, x: int, y: int, button: Button = "left") -> None:
        """Record; a left click focuses a field or presses a button."""
        self.actions.append(("click", x, y, button))
        if button == "left":
            self._press(x, y)

    def double_click(self, x: int, y: int) -> None:
        """Record; acts like one left click."""
        self.actions.append(("double_click", x, y))
        self._press(x, y)

    def _press(self, x: int, y: int) -> None:
        w = self.at(x, y)
        if w is None:
            return
        w.clicks += 1
        if w.kind == "field":
            self.focused = w
        if w.on_click is not None:
            w.on_click(self)

    def move(self, x: int, y: int) -> None:
        """Record only."""
        self.actions.append(("move", x, y))

    def drag(self, path: Sequence[Point]) -> None:
        """Record only."""
        self.actions.append(("drag", tuple(tuple(p) for p in path)))

    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Record and accumulate ``scroll_offset``."""
        self.actions.append(("scroll", x, y, dx, dy))
        self.scroll_offset = (self.scroll_offset[0] + dx, self.scroll_offset[1] + dy)

    def type(self, text: str) -> None:
        """Record; append to the focused field's value (placeholders stay as typed)."""
        self.actions.append(("type", text))
        if self.focused is not None:
            self.focused.value += text

    def key(self, combo: str) -> None:
        """Record; ``BackSpace`` deletes and ``ctrl+a``-then-``BackSpace`` is not modelled."""
        self.actions.append(("key", combo))
        if combo == "BackSpace" and self.focused is not None:
            self.focused.value = self.focused.value[:-1]

    def wait(self, seconds: float) -> None:
        """Record and really let ``seconds`` pass."""
        self.actions.append(("wait", seconds))
        interruptible_sleep(max(0.0, seconds))

    def goto(self, url: str) -> None:
        """Record and set ``url`` (so browser-only steps can be tested)."""
        self.actions.append(("goto", url))
        self.url = url

    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """The fake screen changes synchronously, so it is settled at once."""
        t0 = time.perf_counter()
        frame = self.screenshot()
        changed: Box | None = None
        if since is not None and since.size == frame.size and since.sha256 != frame.sha256:
            bbox = ImageChops.difference(since.pil(), frame.pil()).getbbox()
            if bbox:
                changed = Box(bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1])
        return SettleResult(frame, changed, (time.perf_counter() - t0) * 1000, True)

    def close(self) -> None:
        """Nothing to stop."""
        self.closed = True

    def widget_grounder(self) -> WidgetGrounder:
        """A grounder answering from this computer's widgets (see the module docstring)."""
        return WidgetGrounder(self)


class WidgetGrounder(Grounder):
    """Finds widgets whose text (or field label) equals the target, ignoring case/spaces."""

    def __init__(self, computer: FakeComputer) -> None:
        self.computer = computer

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Every visible widget whose text matches, all with score 1.0 (so >1 = ambiguous)."""
        want = " ".join(target.lower().split())
        out: list[Candidate] = []
        for w in self.computer.widgets:
            if not w.visible or " ".join(w.text.lower().split()) != want:
                continue
            if hint is not None and hint.role == "field" and w.kind != "field":
                continue
            out.append(Candidate(w.box, w.text, 1.0, "ocr"))
        return out
