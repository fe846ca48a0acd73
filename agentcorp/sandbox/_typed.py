"""Did typed text land? Checks for desktops whose focused element holds no readable text.

The accessibility tree answers exactly when the focused field exposes its text. When it does
not (a spreadsheet cell, an Athena or Tk text widget), typed text still shows somewhere: in
another editable element of the app (a spreadsheet's formula bar mirrors the cell being
edited), else on screen, read by OCR in the lines that changed. These helpers compare what
was there before with what is there after, and say how many characters a retry must erase.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentcorp.sandbox.base import Frame
from agentcorp.types import Box

__all__ = [
    "Insertion",
    "checkable",
    "ends_in_bar",
    "folded",
    "insertion",
    "is_subsequence",
    "line_boxes",
    "ocr_fold",
    "read_lines",
    "shows",
    "shows_more",
]

#: OCR confuses these glyph groups on screen fonts; a dropped key never turns one into another.
#: The upright bars are also how a text caret reads ("|", "l", "]"): see ``ends_in_bar``.
_CONFUSABLE = str.maketrans({"o": "0", "l": "1", "i": "1", "|": "1", "!": "1", "[": "1", "]": "1"})


def ocr_fold(text: str) -> str:
    """Text as compared with an OCR reading: lower case, confusable glyphs merged, no spaces.

    OCR splits and joins words at will ("IN V-1 043"), so spaces are not compared: a dropped
    space key is the one mistake this check cannot see (the accessibility tree can). Accents
    are dropped ("Zoë" reads as "Zoe") and so is what the reader's Latin output cannot spell
    (CJK, emoji): those keys are checked only where the text can be read back another way.
    """
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c) and " " <= c <= "~")
    return "".join(plain.lower().translate(_CONFUSABLE).split())


#: Texts shorter than this (folded) are typed paced and not read back by OCR.
_MIN_CHECKED = 3


def checkable(value: str) -> bool:
    """Whether OCR can read all of ``value`` back: Latin letters (accents aside), digits, marks.

    A text with other characters (another script, emoji), or shorter than three readable
    characters, is typed as before, paced and unchecked, when OCR is the only reader: the
    fold would check only its Latin part, and a misread would fail a step whose text landed.
    """
    plain = unicodedata.normalize("NFKD", value)
    latin = all(unicodedata.combining(c) or c.isspace() or " " <= c <= "~" for c in plain)
    # One or two glyphs beside a label are missed by OCR's line finder often enough (under
    # load, 'Cy' read as nothing) that a check of them would fail texts that landed.
    return latin and len(ocr_fold(value)) >= _MIN_CHECKED


def ends_in_bar(value: str) -> bool:
    """Whether ``value`` ends in a glyph a text caret reads as (an upright bar).

    The caret stands right after what was typed, so a last "1" that was dropped reads back
    as the caret: such a text is only trusted from a frame with the caret blinked off.
    """
    return ocr_fold(value)[-1:] == "1"


def folded(lines: Sequence[str]) -> str:
    """Lines OCR-folded one by one and kept apart (no match may span two of them)."""
    return "\x1f".join(ocr_fold(line) for line in lines)


def shows(lines: Sequence[str], value: str) -> bool:
    """Whether any of ``lines`` shows ``value`` (OCR-folded)."""
    return ocr_fold(value) in folded(lines)


def shows_more(before: Sequence[str], after: Sequence[str], value: str) -> bool:
    """Whether ``after`` shows ``value`` more often than ``before`` did (both OCR-folded)."""
    want = ocr_fold(value)
    if not want:
        return True
    return folded(after).count(want) > folded(before).count(want)


@dataclass(frozen=True, slots=True)
class Insertion:
    """What typing changed in a text: ``inserted`` went in where ``removed`` was."""

    inserted: str
    removed: str


def insertion(before: str, after: str) -> Insertion:
    """The one run of characters that differs between ``before`` and ``after``."""
    p = 0
    while p < min(len(before), len(after)) and before[p] == after[p]:
        p += 1
    s = 0
    while s < min(len(before), len(after)) - p and before[-1 - s] == after[-1 - s]:
        s += 1
    return Insertion(after[p : len(after) - s], before[p : len(before) - s])


def is_subsequence(part: str, whole: str) -> bool:
    """Whether ``part`` is ``whole`` with some characters left out (keys that were dropped)."""
    it = iter(whole)
    return all(ch in it for ch in part)


_ENGINE: Any = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> Any:
    # The grounder's shared engine reads at 32 px for speed; a check of a few lines reads at
    # the model's own 48 px, which gets small editor fonts right where 32 px misreads them
    # (xedit's "helloMemo for today" read "hellMemo forody").
    global _ENGINE
    from agentcorp.grounding.ocr import OcrEngine

    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = OcrEngine(height=48)
        return _ENGINE


def _pixels(frame: Frame) -> np.ndarray:
    return np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)


def line_boxes(frame: Frame, area: Box) -> list[Box]:
    """Text line boxes (screen coordinates) found in ``area`` of ``frame``."""
    from agentcorp.grounding.ocr import detect_text_boxes

    px = _pixels(frame)
    ox, oy = frame.origin
    x0, y0 = max(0, area.x - ox), max(0, area.y - oy)
    x1, y1 = min(frame.width, area.right - ox), min(frame.height, area.bottom - oy)
    if x1 <= x0 or y1 <= y0:
        return []
    crop = np.ascontiguousarray(px[y0:y1, x0:x1])
    found = [Box(b.x + x0 + ox, b.y + y0 + oy, b.w, b.h) for b in detect_text_boxes(crop)]
    return sorted(found, key=lambda b: (b.y, b.x))


def read_lines(frame: Frame, boxes: Sequence[Box]) -> list[str]:
    """The text in each of ``boxes`` of ``frame``, in their order ("" where none was read)."""
    if not boxes:
        return []
    ox, oy = frame.origin
    px, engine = _pixels(frame), _engine()
    out = []
    for b in boxes:  # one by one: a box read as nothing must keep its place
        lines = engine.read(px, boxes=[Box(b.x - ox, b.y - oy, b.w, b.h)])
        out.append(" ".join(ln.text for ln in lines))
    return out
