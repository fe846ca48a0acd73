"""OCR on real desktop widgets the accessibility tree cannot help with (Athena, no AT-SPI)."""

from __future__ import annotations

import pytest

from agentcorp.grounding.base import Candidate
from agentcorp.grounding.ocr_grounder import OcrGrounder
from agentcorp.grounding.resolve import resolve
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop


@pytest.mark.timeout(120)
def test_short_labels_in_rounded_buttons_are_read() -> None:
    # Issue 14: "OK" and "Find and Replace" in a row of rounded buttons were read as one
    # noisy line ("nd a d Res") while the message above them was read.
    argv = ["xmessage", "-center", "-buttons", "OK,Cancel,Find and Replace", "Short labels here"]
    with XvfbDesktop(apps=[AppSpec("msg", argv, "xmessage", timeout=60)]) as desk:
        frame = desk.settle().frame
        box = desk.window_box("xmessage")
        assert box is not None
        ocr = OcrGrounder()
        xs = []
        for label in ("OK", "Cancel", "Find and Replace", "Short labels here"):
            found = resolve(ocr.locate(frame, label), None, label)
            assert isinstance(found, Candidate), (label, found)
            assert box.contains(*found.box.center), (label, found)
            xs.append(found.box.x)
        # The buttons are where their labels are: left to right as declared.
        assert xs[:3] == sorted(xs[:3])
