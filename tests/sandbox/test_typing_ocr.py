"""Typing into elements whose text the tree cannot read is checked where it shows (issue 14).

A real Tk entry (Tk exposes nothing over AT-SPI) on a real Xvfb desktop, in four moods:
taking every key, dropping characters that arrive in a burst (as apps busy drawing the key
before do), dropping a repeated key, and ignoring every key. The app writes the entry's
text to ``~/entry.txt`` on every change: that file, not the desktop's own check, says what
really landed. And Gnumeric, whose cells expose no text but whose formula bar mirrors them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from agentcorp.errors import SandboxError
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop

pytestmark = pytest.mark.timeout(180)

ENTRY_APP = r"""
import pathlib, sys, time, tkinter as tk
mode = sys.argv[1]
out = pathlib.Path.home() / "entry.txt"
root = tk.Tk()
root.title("Entry form")
root.geometry("900x200+0+0")
root.configure(bg="white")
font = ("DejaVu Sans", 16)
tk.Label(root, text="Reference", font=font, bg="white").place(x=20, y=40)
var = tk.StringVar(value="kept ")
entry = tk.Entry(root, textvariable=var, font=font, width=40)
entry.place(x=200, y=40)
last = [0.0, ""]

def key(ev):
    if not (ev.char and ev.char.isprintable()):
        return None
    if mode == "ignore":
        return "break"
    now = time.monotonic()
    if mode == "drop" and now - last[0] < 0.04:
        return "break"  # still busy with the character before: this one is lost
    if mode == "repeat" and now - last[0] < 0.04 and ev.char == last[1]:
        return "break"  # the same key again too soon (galculator: "800" became "80")
    last[:] = [now, ev.char]
    return None

var.trace_add("write", lambda *a: out.write_text(var.get()))
entry.bind("<KeyPress>", key)
entry.focus_force()
entry.icursor("end")
root.mainloop()
"""


def _desktop(tmp_path: Path, mode: str) -> XvfbDesktop:
    app = tmp_path / "entry_app.py"
    app.write_text(ENTRY_APP, encoding="utf-8")
    return XvfbDesktop(
        apps=[AppSpec("form", [sys.executable, str(app), mode], "Entry form", timeout=60)]
    )


def _entry_text(desk: XvfbDesktop, want: str, timeout: float = 3.0) -> str:
    path = desk.home / "entry.txt"
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = path.read_text(encoding="utf-8") if path.exists() else ""
        if got == want:
            break
        time.sleep(0.05)
    return got


def test_a_tk_entry_that_ignores_keys_fails_the_type_saying_what_shows(tmp_path: Path) -> None:
    with _desktop(tmp_path, "ignore") as desk:
        assert desk.focused_element() is None  # Tk shows nothing over AT-SPI: OCR decides
        with pytest.raises(SandboxError, match=r"typed 'order 4711' but nothing on the screen"):
            desk.type("order 4711")
        assert not (desk.home / "entry.txt").exists()


def test_typing_into_a_tk_entry_that_takes_the_keys_passes(tmp_path: Path) -> None:
    with _desktop(tmp_path, "ok") as desk:
        desk.type("order 4711")
        assert _entry_text(desk, "kept order 4711") == "kept order 4711"


def test_keys_dropped_in_a_burst_are_erased_and_typed_again_slower(tmp_path: Path) -> None:
    with _desktop(tmp_path, "drop") as desk:
        desk.type("order 4711")
        # What the first, unpaced burst left is taken back; the earlier text is untouched.
        assert _entry_text(desk, "kept order 4711") == "kept order 4711"
        # The pause that worked is kept for the next text on this desktop.
        assert desk._learned_delay > 0


def test_a_dropped_last_digit_is_not_mistaken_for_the_caret(tmp_path: Path) -> None:
    # "4711" typed at once lands as "471" followed by the caret, which OCR reads as "1" or
    # "|": only a reading with the caret blinked off may say the text is there.
    with _desktop(tmp_path, "repeat") as desk:
        desk.type("order 4711")
        assert _entry_text(desk, "kept order 4711") == "kept order 4711"


def test_typing_into_a_spreadsheet_cell_is_read_back_from_its_formula_bar(
    tmp_path: Path,
) -> None:
    # A Gnumeric cell exposes no text over AT-SPI (focus is on the sheet's panel); the
    # formula bar, an editable element of the same app, shows what the cell is being given.
    books = tmp_path / "books.csv"
    books.write_text("number,amount\nINV-1,12.50\n", encoding="utf-8")
    with XvfbDesktop(
        apps=[AppSpec("office", ["gnumeric", "~/books.csv"], "books.csv", timeout=60)],
        files={"~/books.csv": books},
    ) as desk:
        focus = desk.focused_element()
        assert focus is not None and not focus.editable, focus
        desk.key("ctrl+End")
        desk.key("Down")
        desk.type("INV-2")
        assert desk._textless is not None  # checked through a mirror, not paced key by key
        _, _, mirrors = desk._textless
        assert desk._a11y is not None
        assert "INV-2" in desk._a11y.texts_of(mirrors)
        desk.key("Tab")
        desk.type("7.25")  # the same cell area keeps the focus: no new snapshot needed
        assert "7.25" in desk._a11y.texts_of(mirrors)
        # Tab moves on: each cell's piece is checked before the key that leaves it.
        desk.key("Return")
        desk.type("INV-3\t9.75")
        assert "9.75" in desk._a11y.texts_of(mirrors)
        desk.key("Return")
        desk.key("Up")
        desk.settle()
        assert "INV-3" in desk._a11y.texts_of(mirrors), desk._a11y.texts_of(mirrors)
