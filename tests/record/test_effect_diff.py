"""Action replay's "lost effect" check: what the region holds after the action and what the
action changed there must both differ before a replay diverges."""

from __future__ import annotations

from PIL import Image, ImageDraw

from agentcorp.record.replay import _REGION_THRESHOLD, _effect_diff
from agentcorp.sandbox.base import Frame
from agentcorp.types import Box

BOX = Box(20, 10, 600, 20)


def _frame(title: str, body: str = "") -> Frame:
    im = Image.new("RGB", (640, 120), "white")
    d = ImageDraw.Draw(im)
    d.text((24, 12), title, fill="black")
    if body:
        d.text((24, 60), body, fill="black")
    return Frame.from_pil(im)


def test_a_title_showing_another_home_path_is_the_same_effect() -> None:
    """ctrl+s in mousepad: the title shows the home's path, long when recorded, short live;
    the save only drops the '*'. The whole-region ink differed by 51% and the replay diverged."""
    long = "/tmp/pytest-of-root/pytest-850/sessions0/.agentcorp/state/sandboxes/notes/home/n.txt"
    short = "/tmp/agentcorp-home-j2/notes.txt"
    recorded = (_frame(f"*{long} - Mousepad"), _frame(f"{long} - Mousepad"))
    live = (_frame(f"*{short} - Mousepad"), _frame(f"{short} - Mousepad"))
    assert _effect_diff(recorded, live, BOX) <= _REGION_THRESHOLD


def test_typing_that_never_landed_is_a_lost_effect() -> None:
    box = Box(20, 55, 600, 20)
    line = "2026-11-02 Call from Globex: asked about invoice INV-1043. Ticket opened."
    recorded = (_frame("notes.txt"), _frame("notes.txt", line))
    assert _effect_diff(recorded, (_frame("other"), _frame("other")), box) == 1.0
    half = (_frame("notes.txt"), _frame("notes.txt", line[: len(line) // 4]))
    assert _effect_diff(recorded, half, box) > _REGION_THRESHOLD
    assert _effect_diff(recorded, recorded, box) == 0.0


def test_a_view_scrolled_back_by_another_amount_is_the_same_effect() -> None:
    """Return at the end of a long line scrolls the view back to column 0: the recorded and the
    live view had scrolled right by different amounts, so the change differed, not the result."""
    box = Box(0, 55, 640, 20)
    line = "2026-11-02 Call from Globex: asked about invoice INV-1043. Ticket opened."
    rec_before = _frame("t", line[40:])
    live_before = _frame("t", line[20:])
    after = _frame("t", line)
    assert _effect_diff((rec_before, after), (live_before, after), box) <= _REGION_THRESHOLD
