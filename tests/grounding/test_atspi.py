"""Accessibility-tree grounding on a real Xvfb desktop, and symbol-aware text matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.grounding.atspi import AtspiGrounder, name_score
from agentcorp.grounding.base import Candidate, Hint
from agentcorp.grounding.resolve import resolve
from agentcorp.grounding.text import find_matches
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop


def test_punctuation_targets_match_whole_tokens_only() -> None:
    assert [(m.start, m.end) for m in find_matches("+", "7 8 9 + -")] == [(6, 7)]
    assert find_matches("+", "+/- %") == []  # "+" is not inside "+/-"
    assert [(m.start, m.end) for m in find_matches("+/-", "0 . +/- =")] == [(4, 7)]
    assert [(m.start, m.end) for m in find_matches("%", "sqrt %")] == [(5, 6)]
    assert find_matches("*", "") == [] and find_matches("  ", "a b") == []
    # A zero-width space copied along with the symbol draws nothing: "+" is still "+".
    assert [(m.start, m.end) for m in find_matches("\u200b+", "7 8 9 + -")] == [(6, 7)]
    assert find_matches("\u200b", "a \u200b b") == []


def test_name_score_prefers_exact_names() -> None:
    assert name_score("7", "7") == 1.0
    assert name_score("ok", "OK") == 0.97
    assert name_score("7", "17") == 0.0
    assert name_score("Mode", "Scientific Mode") < 0.97


@pytest.mark.timeout(120)
def test_calculator_keys_found_by_the_tree_and_pressing_them_computes() -> None:
    with XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "galculator", timeout=60)]) as desk:
        g = AtspiGrounder(desk)
        frame = desk.screenshot()
        boxes = {}
        for target in ("7", "*", "6", "=", "%", "+/-", "+"):
            chosen = resolve(g.locate(frame, target), None, target)
            assert isinstance(chosen, Candidate), chosen
            assert chosen.source == "a11y"
            boxes[target] = chosen.box
        assert boxes["+"] != boxes["+/-"]
        # A menu title is found by name too, and a field hint on a button finds no field.
        assert g.locate(frame, "View")
        assert g.locate(frame, "7", Hint(role="field")) == []
        assert g.locate(frame, "no such key") == []


@pytest.mark.timeout(120)
def test_into_finds_the_field_a_label_names_and_typing_lands_there() -> None:
    from agentcorp.sandbox.base import execute_action
    from agentcorp.types import Action

    with XvfbDesktop(apps=[AppSpec("pad", ["featherpad"], "Untitled", timeout=60)]) as desk:
        desk.key("ctrl+r")  # the find-and-replace dock: "Find:" and "Replace with:" fields
        desk.settle()
        g = AtspiGrounder(desk)
        frame = desk.settle().frame
        field = resolve(g.locate(frame, "Replace with", Hint(role="field")), None, "Replace with")
        assert isinstance(field, Candidate), field
        snap = desk.accessibility()
        assert snap is not None
        editable = {n.box: n for n in snap.nodes if n.editable}
        assert field.box in editable  # the field itself, not the label's row
        label = next(n for n in snap.nodes if n.name == "Replace with:")
        assert field.box.x >= label.box.right
        desk.click(*field.box.center)
        desk.settle()
        execute_action(desk, Action("type", text="bar", into="Replace with"))
        assert desk._a11y is not None
        assert desk._a11y.text_of(editable[field.box].ref) == "bar"
        # "Find" is also a toolbar button: as a field it is the "Find:" label's field.
        find = resolve(g.locate(desk.settle().frame, "Find", Hint(role="field")), None, "Find")
        assert isinstance(find, Candidate) and find.box in editable and find.box != field.box


@pytest.mark.timeout(120)
def test_click_on_a_target_under_an_open_menu_fails_naming_the_menu() -> None:
    from agentcorp.errors import SandboxError

    with XvfbDesktop(apps=[AppSpec("calc", ["galculator"], "galculator", timeout=60)]) as desk:
        desk.cover_wait = 0.3
        g = AtspiGrounder(desk)
        view = resolve(g.locate(desk.screenshot(), "View"), None, "View")
        assert isinstance(view, Candidate)
        desk.click(*view.box.center)
        frame = desk.settle().frame
        ac = resolve(g.locate(frame, "AC"), None, "AC")
        assert isinstance(ac, Candidate)
        with pytest.raises(SandboxError, match=r"covered by .*popup"):
            desk.click(*ac.box.center)
        # An item of the open menu itself is not covered: the click goes through.
        item = resolve(g.locate(frame, "Paper Mode"), None, "Paper Mode")
        assert isinstance(item, Candidate)
        desk.click(*item.box.center)


@pytest.mark.timeout(120)
def test_words_inside_a_document_are_not_placed_at_the_text_views_centre(tmp_path: Path) -> None:
    # A text view holding "Monday morning" on its third line: its box's centre is another
    # line, so the tree must not claim that place (OCR finds the line); the click landed
    # below the text and the typing went to a new line, every step "ok".
    from agentcorp.grounding.ocr_grounder import OcrGrounder

    notes = tmp_path / "notes.txt"
    notes.write_text("Quarterly report\nInvoice 2041 approved\nNext review: Monday morning\n")
    apps = [AppSpec("pad", ["mousepad", str(notes)], "notes", timeout=60)]
    with XvfbDesktop(apps=apps) as desk:
        frame = desk.settle().frame
        tree = AtspiGrounder(desk).locate(frame, "Monday morning")
        found = resolve(OcrGrounder().locate(frame, "Monday morning"), None, "Monday morning")
        assert isinstance(found, Candidate) and found.box.h < 60
        # The tree may place the words only where the app draws them (their text range's
        # extents): on the line OCR reads them, never the view's centre.
        for c in tree:
            assert c.box.h < 60 and abs(c.box.center[1] - found.box.center[1]) <= found.box.h


FORM_APP = Path(__file__).resolve().parent / "apps" / "labelled_form.py"


def _form(out: Path) -> XvfbDesktop:
    # The system Python runs the fixture app (python3-gi); a bare "python3" would be ours.
    app = AppSpec(
        "form",
        ["/usr/bin/python3", str(FORM_APP)],
        "Labelled form",
        timeout=60,
        env={"FORM_OUT": str(out)},
    )
    return XvfbDesktop(apps=[app])


@pytest.mark.timeout(120)
def test_into_follows_the_label_relation_not_the_nearest_field(tmp_path: Path) -> None:
    # "Shipping address" has a decoy entry right beside it and names (mnemonic widget,
    # LABEL_FOR/LABELLED_BY) an entry far below; "Reference" names an entry left of and
    # above it, while another entry lies right below it. Geometry picks the wrong field
    # both times.
    with _form(tmp_path / "form.txt") as desk:
        snap = desk.accessibility()
        assert snap is not None, desk.a11y_problem
        entries = [n for n in snap.nodes if n.editable]
        assert len(entries) == 5
        label = {n.name: n for n in snap.nodes if n.role == "label" and n.name}
        g = AtspiGrounder(desk)
        frame = desk.screenshot()
        got = {}
        for target in ("Shipping address", "Reference"):
            field = resolve(g.locate(frame, target, Hint(role="field")), None, target)
            assert isinstance(field, Candidate), field
            assert field.source == "a11y"
            got[target] = field.box
        ship, ref = label["Shipping address"].box, label["Reference"].box
        # The named fields: below-right of "Shipping address", above-left of "Reference".
        assert got["Shipping address"].y > ship.bottom + 100
        assert got["Shipping address"].x > ship.right + 100
        assert got["Reference"].bottom < ref.y and got["Reference"].right < ref.x
        assert {n.box for n in entries} >= set(got.values())
        # "Gift wrap" labels a check box: no field, and OCR after the tree may not offer the
        # notes field beside it either.
        assert g.locate(frame, "Gift wrap", Hint(role="field")) == []
        assert {n.box for n in entries} == set(g.excluded)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("form", ["labelled_form.py", "labelled_form_qt.py"])
def test_an_app_is_in_the_tree_as_soon_as_the_desktop_is_ready(tmp_path: Path, form: str) -> None:
    # An app registers with the accessibility bus a moment after its window shows. A first
    # step grounded in that moment found no tree and fell back to OCR, whose geometry picks
    # the decoy beside the label: the desktop is ready only once its apps are in the tree.
    app = AppSpec("form", ["/usr/bin/python3", str(FORM_APP.parent / form)], "Labelled form")
    for _ in range(2):
        with XvfbDesktop(apps=[app]) as desk:
            snap = desk.accessibility()
            assert snap is not None
            assert any(n.name == "Shipping address" for n in snap.nodes), snap.nodes
