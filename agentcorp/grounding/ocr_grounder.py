"""``OcrGrounder``: find text targets on desktop frames by OCR, re-reading only what changed.

The grounder keeps the text lines of the last frame it read. A new frame is compared with
that one (a pixel diff costs a few ms); only the changed region plus a margin is read again
and merged in (old lines overlapping the region are dropped). ``update(frame, changed)``
does the same when the caller already knows the changed box (``Computer.settle`` reports
it). So a typical step costs a crop, never a full frame.

``Hint(role="field")`` asks for the input field *labelled* by the target (the ``into:`` of a
typing step): the field right of the label on the same row when a field border is there,
else the one below it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentcorp.grounding.base import Candidate, Grounder, Hint
from agentcorp.grounding.ocr import OcrEngine, TextLine
from agentcorp.grounding.text import find_matches
from agentcorp.types import Box

__all__ = ["OcrGrounder", "frame_array"]


def frame_array(frame: Any) -> np.ndarray:
    """An H x W x 3 uint8 view of a ``sandbox.base.Frame`` (or a PIL image / ndarray)."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame array must be HxWx3, got {frame.shape}")
        return frame
    rgb = getattr(frame, "rgb", None)
    if isinstance(rgb, bytes | bytearray | memoryview):
        return np.frombuffer(rgb, np.uint8).reshape(frame.height, frame.width, 3)
    if hasattr(frame, "convert"):  # a PIL image
        return np.asarray(frame.convert("RGB"))
    raise TypeError(f"cannot read pixels from a {type(frame).__name__}")


def diff_box(a: np.ndarray, b: np.ndarray) -> Box | None:
    """Bounding box of the pixels that differ between two equal-sized frames."""
    if a.shape != b.shape:
        raise ValueError("frames differ in size")
    ne = np.any(a != b, axis=2)
    rows = np.flatnonzero(ne.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ne[rows[0] : rows[-1] + 1].any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


@dataclass(slots=True)
class _State:
    pixels: np.ndarray
    lines: list[TextLine]
    source: Any = None  # the frame object last read: the same object needs no diff


#: The height of the strip read to confirm a target another source found (see ``drawn``).
_BAND = 96


class OcrGrounder(Grounder):
    """Grounds text targets on any frame by OCR (desktop apps, or a browser without a DOM).

    ``margin`` pixels are added around a changed region before it is read again; lines the
    region touches are then re-read whole, so text cut by its edge is never half-read.
    ``min_score`` drops weak matches entirely. A change covering ``full_fraction`` of the
    screen or more is read as a full frame. Without an ``engine`` the process-wide
    ``OcrEngine.shared()`` is used, so the model loads once and every grounder shares the
    crop cache (a menu read on one screen is not recognised again on the next).
    """

    reads_pixels = True

    def __init__(
        self,
        engine: OcrEngine | None = None,
        margin: int = 6,
        min_score: float = 0.8,
        full_fraction: float = 0.6,
    ) -> None:
        self.engine = engine or OcrEngine.shared()
        self.margin = margin
        self.min_score = min_score
        self.full_fraction = full_fraction
        self._state: _State | None = None
        self._lock = threading.Lock()
        #: How the last frame was read: "cached", "incremental" or "full" (for benchmarks).
        self.last_read = ""
        self._whole = False  # the lines held come from one full read (no merged re-reads)
        self._deferred: np.ndarray | None = None  # a frame a poll left unread, see _defer

    # --- reading -------------------------------------------------------------------------

    def lines(self, frame: Any) -> list[TextLine]:
        """The text lines of ``frame``, reusing the last read for unchanged pixels."""
        with self._lock:
            st = self._state
            if st is not None and st.source is frame:
                self.last_read = "cached"
                return st.lines
            px = frame_array(frame)
            if st is not None and st.pixels.shape == px.shape:
                changed = diff_box(st.pixels, px)
                if changed is None:
                    st.pixels, st.source = px, frame
                    self.last_read = "cached"
                    return st.lines
                return self._update(px, changed, frame)
            return self._full(px, frame)

    def update(self, frame: Any, changed: Box | None) -> list[TextLine]:
        """Take a new frame whose differences from the last one lie inside ``changed``.

        ``changed=None`` means "unknown": the grounder diffs the frames itself.
        """
        px = frame_array(frame)
        with self._lock:
            st = self._state
            if st is None or st.pixels.shape != px.shape:
                return self._full(px, frame)
            if changed is None:
                changed = diff_box(st.pixels, px)
                if changed is None:
                    st.pixels, st.source = px, frame
                    self.last_read = "cached"
                    return st.lines
            return self._update(px, changed, frame)

    def reread(self, frame: Any) -> list[TextLine]:
        """Read ``frame`` whole, dropping what partial re-reads had merged."""
        px = frame_array(frame)
        with self._lock:
            return self._full(px, frame)

    def reset(self) -> None:
        """Forget the last frame, so the next one is read in full."""
        with self._lock:
            self._state = None

    def _full(self, px: np.ndarray, source: Any = None) -> list[TextLine]:
        lines = self.engine.read(px)
        self._state = _State(px, lines, source)
        self.last_read = "full"
        self._whole = True
        return lines

    def _update(self, px: np.ndarray, changed: Box, source: Any = None) -> list[TextLine]:
        assert self._state is not None
        h, w = px.shape[:2]
        region = changed.expand(self.margin, w, h)
        if region.w * region.h >= self.full_fraction * w * h:
            return self._full(px, source)
        # Lines touching the region may have changed or been cut by it: grow the region to
        # cover them so they are dropped and read again whole.
        for ln in self._state.lines:
            if _overlaps(ln.box, region):
                region = region.union(ln.box)
        region = region.expand(2, w, h)
        crop = np.ascontiguousarray(px[region.y : region.bottom, region.x : region.right])
        fresh = self.engine.read(crop, origin=(region.x, region.y))
        kept = [ln for ln in self._state.lines if not _overlaps(ln.box, region)]
        lines = sorted([*kept, *fresh], key=lambda t: (t.box.y, t.box.x))
        self._state = _State(px, lines, source)
        self.last_read = "incremental"
        self._whole = False
        return lines

    # --- locating ------------------------------------------------------------------------

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Candidates for ``target`` best first; see the module docstring for ``role="field"``.

        A poll (``hint.thorough`` False) leaves a frame that would need a whole read unread
        the first time it sees it (no candidates): a screen that changed that much is
        usually still changing (a dialog closing, a page loading), and a whole read costs
        0.5-3 s of CPU the app needs to finish drawing. The same pixels polled again (the
        screen held still) are read.
        """
        if hint is not None and not hint.thorough and self._defer(frame):
            return []
        lines = self.lines(frame)
        cands = self._match(lines, target)
        if not cands and not self._whole and (hint is None or hint.thorough):
            # Lines merged from partial re-reads can lose a line a crop cut badly; before
            # saying "not found", read this frame whole once (about a full read's cost).
            lines = self.reread(frame)
            cands = self._match(lines, target)
        if hint is not None:
            if hint.near:
                cands = _prefer_near(cands, self._match(lines, hint.near))
            if hint.role == "field":
                px = frame_array(frame)
                cands = [_field_of(px, c) for c in cands]
        ox, oy = getattr(frame, "origin", (0, 0))
        if ox or oy:
            # A region capture: its pixels start at ``origin`` on the screen.
            cands = [
                Candidate(
                    Box(c.box.x + ox, c.box.y + oy, c.box.w, c.box.h), c.text, c.score, c.source
                )
                for c in cands
            ]
        if hint is not None and hint.region is not None:
            region = hint.region  # screen coordinates
            cands = [c for c in cands if region.contains(*c.box.center)]
        return cands

    def drawn(self, frame: object, target: str, found: list[Candidate]) -> bool:
        """Whether OCR reads ``target`` where another source placed it (``found``).

        Only the bands where the text can be are read (not the frame), so a check costs a
        small crop: a box the height of a few lines whole, and of a taller box (a window,
        whose name the tree reports) the strip around its top edge, where a title bar or a
        dialog's heading is drawn.
        """
        px = frame_array(frame)
        h, w = px.shape[:2]
        for c in found:
            b = c.box
            if b.h > _BAND:
                b = Box(b.x, b.y - _BAND // 2, b.w, _BAND)
            band = b.expand(_BAND // 4, w, h)
            if band.w <= 0 or band.h <= 0:
                continue
            crop = np.ascontiguousarray(px[band.y : band.bottom, band.x : band.right])
            if self._match(self.engine.read(crop, origin=(band.x, band.y)), target):
                return True
        return False

    def _defer(self, frame: object) -> bool:
        """Whether a poll leaves ``frame`` unread for now (see ``locate``)."""
        px = frame_array(frame)
        with self._lock:
            st = self._state
            if st is not None and st.source is frame:
                return False
            seen = self._deferred
            if seen is not None and seen.shape == px.shape and np.array_equal(seen, px):
                self._deferred = None
                return False
            if st is not None and st.pixels.shape == px.shape:
                changed = diff_box(st.pixels, px)
                h, w = px.shape[:2]
                region = changed.expand(self.margin, w, h) if changed is not None else None
                if region is None or region.w * region.h < self.full_fraction * w * h:
                    return False
            self._deferred = px
            return True

    def _match(self, lines: Sequence[TextLine], target: str) -> list[Candidate]:
        out: list[Candidate] = []
        for row, segments, conf in _rows(lines):
            for m in find_matches(target, row.text, self.min_score, segments):
                # An unsure read lowers the score a little (0.95 conf costs 0.005).
                score = round(m.score - 0.1 * (1.0 - min(1.0, conf(m.start, m.end))), 4)
                out.append(
                    Candidate(row.sub_box(m.start, m.end), row.text[m.start : m.end], score, "ocr")
                )
        out.sort(key=lambda c: (-c.score, c.box.y, c.box.x))
        return out


def _rows(lines: Sequence[TextLine]) -> list[tuple[TextLine, list[tuple[int, int]], Any]]:
    """Join lines that sit side by side on one text row (words the detector split apart).

    Returns each row as one ``TextLine`` (texts joined by a space), the span of each
    original line in it, and a function giving the mean confidence over a span.
    """
    order = sorted(lines, key=lambda t: (t.box.x, t.box.y))
    used: set[int] = set()
    rows: list[tuple[TextLine, list[tuple[int, int]], Any]] = []
    for i, first in enumerate(order):
        if i in used:
            continue
        chain = [first]
        used.add(i)
        cur = first
        for j in range(i + 1, len(order)):
            if j in used:
                continue
            nxt = order[j]
            top = max(cur.box.y, nxt.box.y)
            bot = min(cur.box.bottom, nxt.box.bottom)
            h = max(cur.box.h, nxt.box.h)
            gap = nxt.box.x - cur.box.right
            if bot - top >= 0.6 * min(cur.box.h, nxt.box.h) and -4 <= gap <= 1.2 * h:
                chain.append(nxt)
                used.add(j)
                cur = nxt
        if len(chain) == 1:
            ln = chain[0]
            rows.append((ln, [(0, len(ln.text))], _conf_of([(0, len(ln.text), ln.conf)])))
            continue
        text = ""
        chars: list[tuple[int, int]] = []
        segs: list[tuple[int, int]] = []
        confs: list[tuple[int, int, float]] = []
        box = chain[0].box
        for ln in chain:
            if text:
                prev = chars[-1][1]
                text += " "
                chars.append((prev, ln.chars[0][0] if ln.chars else ln.box.x))
            start = len(text)
            text += ln.text
            chars.extend(ln.chars or [(ln.box.x, ln.box.right)] * len(ln.text))
            segs.append((start, len(text)))
            confs.append((start, len(text), ln.conf))
            box = box.union(ln.box)
        rows.append(
            (TextLine(box, text, min(c for _, _, c in confs), tuple(chars)), segs, _conf_of(confs))
        )
    return rows


def _conf_of(parts: list[tuple[int, int, float]]) -> Any:
    def conf(lo: int, hi: int) -> float:
        hit = [c for a, b, c in parts if a < hi and lo < b]
        return sum(hit) / len(hit) if hit else 1.0

    return conf


def _overlaps(a: Box, b: Box) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


def _prefer_near(cands: list[Candidate], anchors: list[Candidate]) -> list[Candidate]:
    """Lower each candidate's score with its distance to the nearest anchor text.

    Rows matter more than columns (a table's "Edit" belongs to the row of its "Globex"),
    so vertical offset weighs three times the horizontal one.
    """
    if not anchors or len(cands) < 2:
        return cands
    best = max(a.score for a in anchors)
    anchors = [a for a in anchors if a.score >= best - 0.05]

    def dist(c: Candidate) -> float:
        cx, cy = c.box.center
        return min(abs(cx - a.box.center[0]) + 3 * abs(cy - a.box.center[1]) for a in anchors)

    ds = [dist(c) for c in cands]
    dmin = max(min(ds), 20.0)
    out = [
        Candidate(c.box, c.text, round(c.score - 0.1 * min(3.0, (d - min(ds)) / dmin), 4), c.source)
        for c, d in zip(cands, ds, strict=True)
    ]
    out.sort(key=lambda c: -c.score)
    return out


def _longest_run(row: np.ndarray) -> tuple[int, int]:
    """Start and length of the longest True run in a 1-D bool array."""
    if not row.any():
        return 0, 0
    padded = np.concatenate(([0], row.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - starts[k])


def _field_box(px: np.ndarray, area: Box) -> Box | None:
    """The input field inside ``area``: two horizontal border lines at least 40 px long."""
    h, w = px.shape[:2]
    x0, y0 = max(0, area.x), max(0, area.y)
    x1, y1 = min(w, area.right), min(h, area.bottom)
    if x1 - x0 < 40 or y1 - y0 < 6:
        return None
    g = px[y0:y1, x0:x1].astype(np.int16).sum(axis=2) // 3
    edges = np.abs(np.diff(g, axis=0)) > 24
    rows: list[tuple[int, int, int]] = []
    for r in range(edges.shape[0]):
        s, n = _longest_run(edges[r])
        if n >= 40:
            rows.append((r, s, n))
    if len(rows) < 2:
        return None
    top, bottom = rows[0], rows[-1]
    if bottom[0] - top[0] < 8:
        return None
    left = min(top[1], bottom[1])
    right = max(top[1] + top[2], bottom[1] + bottom[2])
    return Box(x0 + left, y0 + top[0] + 1, right - left, bottom[0] - top[0])


def _field_of(px: np.ndarray, label: Candidate) -> Candidate:
    """The field a label names: right of it on its row, else below it, else a guess right."""
    b = label.box
    right = Box(b.right + 2, b.y - b.h, 420, 3 * b.h)
    found = _field_box(px, right)
    if found is None:
        below = Box(b.x - 8, b.bottom, 420, 3 * b.h + 12)
        found = _field_box(px, below)
    score = label.score
    if found is None:
        # No border seen (a borderless field): the space right of the label, less sure.
        found = Box(b.right + 8, b.y, 120, b.h)
        score = round(score * 0.9, 4)
    return Candidate(found, label.text, score, label.source)
