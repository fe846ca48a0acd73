"""The comparisons behind typing checks read from the screen (``agentcorp.sandbox._typed``)."""

from __future__ import annotations

from agentcorp.sandbox._typed import (
    Insertion,
    checkable,
    insertion,
    is_subsequence,
    ocr_fold,
    shows_more,
)


def test_ocr_fold_merges_confusable_glyphs_and_spacing_but_never_drops_a_character() -> None:
    assert ocr_fold("IN V-1 043") == ocr_fold("INV-1043") == ocr_fold("lNV-IO43")
    assert ocr_fold("INV-143") != ocr_fold("INV-1043")


def test_the_text_must_show_once_more_than_before() -> None:
    assert shows_more(["kept"], ["kept order 4711"], "order 4711")
    # Keys dropped from a text already on the line: the old occurrence does not count.
    assert not shows_more(["foo bar"], ["fofoo bar"], "foo")
    assert not shows_more(["kept"], ["kept order 471"], "order 4711")
    # No match across two lines read apart.
    assert not shows_more(["", ""], ["order 47", "11"], "order 4711")


def test_insertion_finds_what_typing_put_in_and_what_it_replaced() -> None:
    assert insertion("kept ", "kept odr") == Insertion("odr", "")
    assert insertion("abXcd", "abYYcd") == Insertion("YY", "X")
    assert insertion("same", "same") == Insertion("", "")


def test_only_a_subsequence_of_the_typed_text_can_be_dropped_keys() -> None:
    assert is_subsequence("odr 41", "order 4711")
    assert not is_subsequence("ro", "order")


def test_accents_fold_away_but_other_scripts_are_not_checked_by_ocr() -> None:
    assert ocr_fold("Zoë Ng") == ocr_fold("Zoe Ng")
    assert ocr_fold("Zo Ng") != ocr_fold("Zoë Ng")  # the dropped key still shows
    assert checkable("Zoë Ng, Ångström & Co.") and checkable("INV-1043")
    assert not checkable("東京") and not checkable("Москва")


def test_what_ocr_can_check() -> None:
    from agentcorp.sandbox._typed import checkable

    assert checkable("Zoë Ng") and checkable("INV-1043")
    assert not checkable("Cy") and not checkable("7")  # too short for OCR's line finder
    assert not checkable("東京 office")  # another script: typed paced, unchecked
