"""Fixtures for the sandbox tests: real Xvfb desktops with real apps, text-line finding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.base import Frame
from agentcorp.sandbox.xvfb import XvfbDesktop

LINES = "".join(f"line {i:03d} alpha\n" for i in range(1, 121))


def text_rows(frame: Frame, x0: int = 8, x1: int = 140, top: int = 66) -> list[tuple[int, int]]:
    """(top, bottom) pixel rows of each run of dark text in a column band, top to bottom.

    Used only to *aim* (where is line N on screen); tests verify through the app's saved file.
    """
    a = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    band = a[top:, x0:x1].min(axis=2) < 110
    dark = band.any(axis=1)
    runs: list[tuple[int, int]] = []
    start = None
    for y, d in enumerate(dark):
        if d and start is None:
            start = y
        elif not d and start is not None:
            runs.append((top + start, top + y))
            start = None
    return [r for r in runs if r[1] - r[0] >= 5]


def mousepad_desktop(tmp_path: Path, text: str = LINES, name: str = "notes.txt") -> XvfbDesktop:
    src = tmp_path / f"src-{name}"
    src.write_text(text, encoding="utf-8")
    return XvfbDesktop(
        apps=[AppSpec("notes", ["mousepad", f"~/{name}"], wait_for_window=name, maximize=True)],
        files={f"~/{name}": src},
        home=tmp_path / "home",
    )


@pytest.fixture
def notes_desktop(tmp_path: Path) -> Iterator[XvfbDesktop]:
    (tmp_path / "home").mkdir()
    with mousepad_desktop(tmp_path) as desk:
        yield desk


def saved_after(desk: XvfbDesktop, path: Path, before: float, timeout: float = 10.0) -> str:
    """Wait (event-driven on the file's mtime, polled) until ``path`` was rewritten; read it."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns > before:
            text = path.read_text(encoding="utf-8")
            return text
        time.sleep(0.02)
    raise AssertionError(f"{path} was not saved within {timeout}s")
