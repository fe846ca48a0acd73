"""Accessibility-tree grounding on a real Xvfb desktop, and symbol-aware text matching."""

from __future__ import annotations

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
