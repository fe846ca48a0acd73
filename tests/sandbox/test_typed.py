"""The comparisons behind typing checks read from the screen (``agentcorp.sandbox._typed``)."""

from __future__ import annotations

from agentcorp.sandbox._typed import Insertion, insertion, is_subsequence, ocr_fold, shows_more


def test_ocr_fold_merges_confusable_glyphs_and_spacing_but_never_drops_a_character() -> None:
    assert ocr_fold("IN V-1 043") == ocr_fold("INV-1043") == ocr_fold("lNV-IO43")
    assert ocr_fold("INV-143") != ocr_fold("INV-1043")


def test_the_text_must_show_once_more_than_before() -> None:
    assert shows_more("kept", "kept order 4711", "order 4711")
    # Keys dropped from a text already on the line: the old occurrence does not count.
    assert not shows_more("foo bar", "fofoo bar", "foo")
    assert not shows_more("kept", "kept order 471", "order 4711")


def test_insertion_finds_what_typing_put_in_and_what_it_replaced() -> None:
    assert insertion("kept ", "kept odr") == Insertion("odr", "")
    assert insertion("abXcd", "abYYcd") == Insertion("YY", "X")
    assert insertion("same", "same") == Insertion("", "")


def test_only_a_subsequence_of_the_typed_text_can_be_dropped_keys() -> None:
    assert is_subsequence("odr 41", "order 4711")
    assert not is_subsequence("ro", "order")
