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

from agentcorp._text import drop_format
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


#: What the app states about a field (a label relation, the field's own name) over geometry.
_STATED = 0.1


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
    t, n = " ".join(drop_format(target).split()), " ".join(drop_format(name).split())
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
        #: Boxes a later grounder must not offer for the last ``locate`` (see
        #: ``CompositeGrounder``): the editable elements, when the app said the label names
        #: something that takes no text.
        self.excluded: list[Box] = []

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Showing elements named ``target`` (or the field it labels), best first."""
        self.excluded = []
        snap = self.tree.accessibility(fresh_for=frame)
        if snap is None:
            return []
        nodes = [n for n in snap.nodes if n.name.strip()]
        if hint is not None and hint.role == "field":
            cands = self._fields(snap, self._named(nodes, target))
        else:
            cands = [c for _, c in self._named(nodes, target)] + self._holding(snap, target)
        if hint is not None and hint.region is not None:
            region = hint.region
            cands = [c for c in cands if region.contains(*c.box.center)]
        if hint is not None and hint.near and len(cands) > 1:
            cands = _prefer_near(cands, [c for _, c in self._named(nodes, hint.near)])
        cands.sort(key=lambda c: (-c.score, c.box.y, c.box.x))
        note = getattr(self.tree, "grounded", None)
        if callable(note):
            note([c.box for c in cands])  # the click then checks nothing covers them
        return cands

    def _named(self, nodes: Sequence[Any], target: str) -> list[tuple[Any, Candidate]]:
        """Elements named ``target`` with their candidates (nested twins as one)."""
        out: list[Candidate] = []
        of: dict[Candidate, Any] = {}
        for n in nodes:
            score = name_score(target, n.name)
            if score < self.min_score:
                continue
            if n.role not in _ACTIONABLE:
                score -= 0.02  # a label with the same words as a button is the lesser place
            if "sensitive" not in n.states and "enabled" not in n.states:
                score -= 0.04  # greyed out: it is there, but a click does nothing
            c = Candidate(n.box, n.name, round(score, 4), "a11y")
            out.append(c)
            of.setdefault(c, n)
        return [(of[c], c) for c in _drop_nested(out)]

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

    def _fields(self, snap: Any, labels: list[tuple[Any, Candidate]]) -> list[Candidate]:
        """The editable element each label names: relations, own name, then geometry.

        What the app itself says (a label relation, a field's own accessible name) outranks
        where things are drawn by ``_STATED``, so a decoy field beside a label loses to the
        field the label is tied to. A label tied to something that takes no text names no
        field: geometry is not asked then, it would find a neighbour the label is not for.
        """
        editable = [n for n in snap.nodes if n.editable]
        related = self._related(snap, [n for n, _ in labels], editable)
        if any(not fields for fields in related.values()):
            # OCR's geometry after us would pick a field beside the label all the same.
            self.excluded = [e.box for e in editable]
        best: dict[Box, Candidate] = {}
        for node, label in labels:
            if node.ref in related:
                fields, bonus = related[node.ref], _STATED
            elif node.editable:
                fields, bonus = [node], _STATED
            else:
                near = _beside(label.box, editable)
                fields = [near] if near is not None else []
                # A button or menu with the words names what it does, not a field.
                bonus = 0.02 if node.role == "label" else -0.15
            for f in fields:
                c = Candidate(f.box, label.text, round(label.score + bonus, 4), "a11y")
                if f.box not in best or best[f.box].score < c.score:
                    best[f.box] = c
        return list(best.values())

    def _related(
        self, snap: Any, labels: Sequence[Any], editable: Sequence[Any]
    ) -> dict[tuple[str, str], list[Any]]:
        """For each label with a relation: the editable elements it labels (maybe none).

        Either side may state the tie (the label's LABEL_FOR, the field's LABELLED_BY); a
        label for a container (a combo box with an entry) labels the editable inside it.
        """
        ask = getattr(self.tree, "relations", None)
        if not callable(ask) or not labels:
            return {}
        refs = [n.ref for n in labels]
        rel = ask(refs + [e.ref for e in editable if e.ref not in set(refs)])
        if not isinstance(rel, dict):
            return {}
        out: dict[tuple[str, str], list[Any]] = {}
        for n in labels:
            targets = (rel.get(n.ref) or {}).get("label_for", [])
            if targets:
                out[n.ref] = [e for e in editable if _labels(snap, targets, e)]
        for e in editable:
            for ref in (rel.get(e.ref) or {}).get("labelled_by", []):
                if ref in refs and e not in out.setdefault(ref, []):
                    out[ref].append(e)
        return out


def _labels(snap: Any, targets: Sequence[tuple[str, str]], field: Any) -> bool:
    """Whether ``field`` is one of a relation's targets or inside one."""
    return field.ref in targets or any(a.ref in targets for a in snap.ancestors(field))


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
