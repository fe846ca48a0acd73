"""Grounding from the browser's DOM and accessibility tree, and grounders chained together.

``DomGrounder`` asks the computer itself (anything with ``dom_locate``, see
``base.DomLocator``; the browser backend is one) and never imports a browser library.
``CompositeGrounder`` tries grounders in order and returns the first non-empty answer, so a
browser sandbox uses the DOM first and falls back to OCR for text drawn on a canvas.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agentcorp._text import drop_format
from agentcorp.grounding.base import Candidate, DomLocator, Grounder, Hint
from agentcorp.grounding.ocr_grounder import _prefer_near
from agentcorp.grounding.text import find_matches
from agentcorp.types import Box

__all__ = ["ACTIONABLE_PREFERENCE", "CompositeGrounder", "DomGrounder"]


#: What a plain text loses against an element with the same words that can be acted on.
ACTIONABLE_PREFERENCE = 0.1


def _dom_score(target: str, text: str, role: str | None, how: str = "text") -> float:
    """How well an element's text fits: exact 1.0, the target inside a longer text less."""
    if role == "field" and not text:
        return 1.0  # a field found by a name we were not told
    # As shown: spacing aside, and without characters that draw nothing (zero-width spaces).
    shown_t, shown_e = " ".join(drop_format(target).split()), " ".join(drop_format(text).split())
    if shown_t.casefold() == shown_e.casefold():
        return 1.0 if shown_e == shown_t else 0.97
    found = find_matches(target, text, 0.8)
    if found:
        return round(found[0].score - 0.08, 4)
    # Matched by an accessible name or label we cannot see as text.
    return 0.85


def _found(locator: DomLocator, target: str, role: str | None) -> list[tuple[Candidate, bool]]:
    """Scored candidates and whether each can be acted on (a link, button, field...)."""
    find = getattr(locator, "dom_find", None)
    if not callable(find):
        return [
            (Candidate(box, text, _dom_score(target, text, role), "dom"), True)
            for box, text in locator.dom_locate(target, role)
        ]
    out = []
    for c in find(target, role):
        name = str(c.get("name", c["text"]))
        score = _dom_score(target, name, role, c["how"])
        out.append((Candidate(c["box"], c["text"], score, "dom"), bool(c["actionable"])))
    return out


class DomGrounder(Grounder):
    """Candidates from the DOM of a browser computer, scored by how well their text fits.

    For a click (no role hint), when some candidate can be acted on, plain text with the same
    words scores ``ACTIONABLE_PREFERENCE`` lower: a result link wins over the same word in the
    page's instructions, while two links with the same words stay ambiguous.
    """

    def __init__(self, locator: DomLocator) -> None:
        if not isinstance(locator, DomLocator):
            raise TypeError(f"{type(locator).__name__} has no dom_locate(target, role)")
        self.locator = locator
        #: Boxes the last ``locate`` matched but refused as a place to act (see ``Hint``).
        self.excluded: list[Box] = []

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Elements matching ``target`` (``frame`` is unused: the DOM is live), best first."""
        role = hint.role if hint is not None else None
        found = _found(self.locator, target, role)
        self.excluded = []
        if hint is not None and hint.purpose == "act":
            # The words inside a longer plain text (the page's instructions) are no place to
            # click: only the whole text of an element, or something that can be acted on.
            want = " ".join(drop_format(target).split()).casefold()
            keep = [
                act or " ".join(drop_format(c.text).split()).casefold() == want for c, act in found
            ]
            self.excluded = [c.box for (c, _), k in zip(found, keep, strict=True) if not k]
            found = [f for f, k in zip(found, keep, strict=True) if k]
        if role is None and any(act for _, act in found):
            found = [
                (c if act else replace(c, score=round(c.score - ACTIONABLE_PREFERENCE, 4)), act)
                for c, act in found
            ]
        cands = _drop_nested([c for c, _ in found])
        if hint is not None and hint.region is not None:
            region = hint.region
            cands = [c for c in cands if region.contains(*c.box.center)]
        if hint is not None and hint.near and len(cands) > 1:
            anchors = [
                Candidate(b, t, _dom_score(hint.near, t, None), "dom")
                for b, t in self.locator.dom_locate(hint.near, None)
            ]
            cands = _prefer_near(cands, anchors)
        cands.sort(key=lambda c: -c.score)
        return cands

    def why_not(self, target: str) -> str | None:
        """What the DOM knows about a target it did not find (``dom_why_not``), if anything."""
        ask = getattr(self.locator, "dom_why_not", None)
        if not callable(ask):
            return None
        why = ask(target)
        return why if isinstance(why, str) and why else None

    def reveal(self, target: str, hint: Hint | None = None) -> tuple[int, int, int, int] | None:
        """The scroll the DOM knows brings ``target`` into view (``dom_reveal``), if any."""
        ask = getattr(self.locator, "dom_reveal", None)
        if not callable(ask):
            return None
        got = ask(target, hint.role if hint is not None else None)
        return got if isinstance(got, tuple) and len(got) == 4 else None


def _inside(a: Box, b: Box) -> bool:
    return b.x <= a.x and b.y <= a.y and a.right <= b.right and a.bottom <= b.bottom


def _drop_nested(cands: list[Candidate]) -> list[Candidate]:
    """A container and the element inside it with the same text are one place, not two."""
    out: list[Candidate] = []
    for c in cands:
        twin = next(
            (
                o
                for o in out
                if (_inside(c.box, o.box) or _inside(o.box, c.box))
                and " ".join(o.text.split()) == " ".join(c.text.split())
            ),
            None,
        )
        if twin is None:
            out.append(c)
        elif c.score > twin.score or (c.score == twin.score and _inside(c.box, twin.box)):
            out[out.index(twin)] = c
    return out


def _ocr_readable(text: str) -> bool:
    """Whether OCR can be asked to confirm ``text``: plain ASCII, three letters or digits or more.

    Accents and other scripts are read unreliably (or folded away), so they are not asked.
    """
    plain = all(c.isspace() or " " <= c <= "~" for c in text)
    return plain and sum(c.isalnum() for c in text) >= 3


class CompositeGrounder(Grounder):
    """Tries each grounder in order; the first one with any candidate answers."""

    def __init__(self, *grounders: Grounder) -> None:
        if not grounders:
            raise ValueError("CompositeGrounder needs at least one grounder")
        self.grounders = grounders

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """The first non-empty answer of the chain.

        A place an earlier grounder refused (its ``excluded`` boxes: words inside the page's
        instructions when the target is to be clicked) is not offered by a later one either.
        """
        refused: list[Box] = []
        for g in self.grounders:
            found = g.locate(frame, target, hint)
            found = [c for c in found if not any(b.contains(*c.box.center) for b in refused)]
            if found:
                return found
            refused.extend(getattr(g, "excluded", None) or [])
        return []

    def drawn(self, frame: object, target: str, found: list[Candidate]) -> bool:
        """Whether a grounder of the chain that reads pixels sees ``target`` where ``found`` is.

        Only answers from the accessibility tree are confirmed, and only for a text OCR can
        read back whole (plain ASCII, three or more letters or digits): a DOM's screenshot is
        taken from the page it describes, and a text OCR cannot read would never be confirmed.
        """
        if not any(c.source == "a11y" for c in found) or not _ocr_readable(target):
            return True
        readers = [g for g in self.grounders if g.reads_pixels]
        return not readers or any(g.drawn(frame, target, found) for g in readers)

    def why_not(self, target: str) -> str | None:
        """The first explanation a grounder of the chain has for a target none found."""
        for g in self.grounders:
            why = g.why_not(target)
            if why:
                return why
        return None

    def reveal(self, target: str, hint: Hint | None = None) -> tuple[int, int, int, int] | None:
        """The first scroll a grounder of the chain knows for a target none found."""
        for g in self.grounders:
            got = g.reveal(target, hint)
            if got is not None:
                return got
        return None

    def update(self, frame: Any, changed: Box | None) -> None:
        """Pass a settled frame and its changed box to every grounder that keeps state."""
        for g in self.grounders:
            upd = getattr(g, "update", None)
            if callable(upd):
                upd(frame, changed)
