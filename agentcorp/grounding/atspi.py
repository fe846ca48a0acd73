"""Grounding from a desktop's accessibility tree (AT-SPI): the first source for text targets.

``AtspiGrounder`` asks the computer for its tree (anything with ``accessibility(fresh_for)``,
see ``AccessibleTree``; the Xvfb desktop is one) and never speaks D-Bus itself. Elements match
by accessible name, so punctuation-only and one-character targets (``*``, ``+/-``, ``7``) and
labels OCR misreads ("Scientific Mode" beside a radio mark) are found exactly. An app that
exposes nothing yields no candidates, and the ``CompositeGrounder`` falls back to OCR.

``Hint(role="field")`` (the ``into:`` of a typing step) asks for the editable element a label
names: the accessible relations first (LABELLED_BY / LABEL_FOR), then an editable element
whose own name is the label, then geometry (the nearest editable element right of the label
on its row, else below it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from agentcorp.grounding.base import Candidate, Grounder, Hint
from agentcorp.grounding.dom import _drop_nested
from agentcorp.grounding.ocr_grounder import _prefer_near
from agentcorp.grounding.text import find_matches
from agentcorp.types import Box

__all__ = ["AccessibleTree", "AtspiGrounder", "name_score"]

#: Roles a click acts on: they win over plain text with the same words.
_ACTIONABLE = frozenset(
    {
        "push button",
        "toggle button",
        "radio button",
        "check box",
        "menu item",
        "radio menu item",
        "check menu item",
        "menu",
        "link",
        "page tab",
        "combo box",
        "list item",
        "table cell",
        "tree item",
    }
)


def _fills(text: str, span: int) -> bool:
    """Whether a match of ``span`` characters is (nearly) all of a one-line ``text``."""
    shown = text.strip()
    return "\n" not in shown and span >= 0.8 * len(shown)


@runtime_checkable
class AccessibleTree(Protocol):
    """A computer that can show its accessibility tree (``sandbox.atspi.Snapshot`` or None)."""

    def accessibility(self, fresh_for: object | None = None) -> Any:
        """The tree now, or None when this computer has none."""
        ...


def name_score(target: str, name: str) -> float:
    """How well an accessible name fits a target: 1.0 exact, 0.97 other case, lower inside."""
    t, n = " ".join(target.split()), " ".join(name.split())
    if not t or not n:
        return 0.0
    if t == n:
        return 1.0
    if t.casefold() == n.casefold():
        return 0.97
    found = find_matches(t, n, 0.8)
    return round(found[0].score - 0.08, 4) if found else 0.0


class AtspiGrounder(Grounder):
    """Candidates from a desktop's accessibility tree, scored by how well names fit."""

    def __init__(self, tree: AccessibleTree, min_score: float = 0.8) -> None:
        if not isinstance(tree, AccessibleTree):
            raise TypeError(f"{type(tree).__name__} has no accessibility(fresh_for)")
        self.tree = tree
        self.min_score = min_score

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Showing elements named ``target`` (or the field it labels), best first."""
        snap = self.tree.accessibility(fresh_for=frame)
        if snap is None:
            return []
        nodes = [n for n in snap.nodes if n.name.strip()]
        cands = self._named(nodes, target)
        if hint is None or hint.role != "field":
            cands += self._holding(snap, target)
        if hint is not None and hint.role == "field":
            cands = self._fields(snap, cands)
        if hint is not None and hint.region is not None:
            region = hint.region
            cands = [c for c in cands if region.contains(*c.box.center)]
        if hint is not None and hint.near and len(cands) > 1:
            cands = _prefer_near(cands, self._named(nodes, hint.near))
        cands.sort(key=lambda c: (-c.score, c.box.y, c.box.x))
        note = getattr(self.tree, "grounded", None)
        if callable(note):
            note([c.box for c in cands])  # the click then checks nothing covers them
        return cands

    def _named(self, nodes: Sequence[Any], target: str) -> list[Candidate]:
        out: list[Candidate] = []
        for n in nodes:
            score = name_score(target, n.name)
            if score < self.min_score:
                continue
            if n.role not in _ACTIONABLE:
                score -= 0.02  # a label with the same words as a button is the lesser place
            if "sensitive" not in n.states and "enabled" not in n.states:
                score -= 0.04  # greyed out: it is there, but a click does nothing
            out.append(Candidate(n.box, n.name, round(score, 4), "a11y"))
        return _drop_nested(out)

    def _holding(self, snap: Any, target: str) -> list[Candidate]:
        """Fields and displays whose text shows ``target`` (what they hold is on screen)."""
        out: list[Candidate] = []
        texts: dict[Any, str] = getattr(snap, "texts", {}) or {}
        for n in snap.nodes:
            text = texts.get(n.ref)
            if not text:
                continue
            found = find_matches(target, text, self.min_score)
            if not found:
                continue
            m = found[0]
            # The element's box is the target's place only when the target is (nearly) all
            # it shows: words inside a longer or multi-line text (an editor's document) sit
            # somewhere in that box, and its centre is another line. There the app says
            # where those characters are drawn; when it cannot, OCR finds them.
            box = n.box if _fills(text, m.end - m.start) else self._range_box(n, m.start, m.end)
            if box is not None:
                out.append(Candidate(box, text[m.start : m.end], round(m.score - 0.05, 4), "a11y"))
        return out

    def _range_box(self, node: Any, start: int, end: int) -> Box | None:
        """Where the element draws its characters ``start:end`` (inside its own box)."""
        extents = getattr(self.tree, "text_extents", None)
        box = extents(node.ref, start, end) if callable(extents) else None
        if isinstance(box, Box) and box.w > 0 and box.h > 0 and node.box.contains(*box.center):
            return box
        return None

    def _fields(self, snap: Any, labels: list[Candidate]) -> list[Candidate]:
        """The editable element each label names (relations, own name, then geometry)."""
        editable = [n for n in snap.nodes if n.editable]
        roles = {n.box: n.role for n in snap.nodes}
        out: list[Candidate] = []
        for label in labels:
            field = next((e for e in editable if e.box == label.box), None)
            score = label.score
            if field is None:
                field = _beside(label.box, editable)
                # A button or menu with the words names what it does, not a field.
                score += 0.02 if roles.get(label.box) == "label" else -0.15
            if field is not None:
                out.append(Candidate(field.box, label.text, round(score, 4), "a11y"))
        return out


def _beside(label: Box, editable: Sequence[Any]) -> Any | None:
    """The nearest editable element right of ``label`` on its row, else below it."""
    cy = label.y + label.h / 2
    right = [
        e for e in editable if e.box.x >= label.right - 4 and e.box.y <= cy <= e.box.bottom + 2
    ]
    if right:
        return min(right, key=lambda e: e.box.x - label.right)
    below = [
        e
        for e in editable
        if label.bottom - 4 <= e.box.y <= label.bottom + max(40, 3 * label.h)
        and e.box.x < label.right
        and label.x < e.box.right + 40
    ]
    if below:
        return min(below, key=lambda e: (e.box.y - label.bottom, abs(e.box.x - label.x)))
    return None
