from hypothesis import given
from hypothesis import strategies as st

from agentcorp.grounding.text import find_matches, fold, similarity


def best(target: str, line: str, segments=None):
    found = find_matches(target, line, segments=segments)
    return found[0] if found else None


def test_exact_match_scores_one_and_spans_the_words() -> None:
    m = best("Save order", "Please Save order now")
    assert m is not None and m.score == 1.0
    assert "Please Save order now"[m.start : m.end] == "Save order"


def test_case_and_lost_spaces_are_tolerated() -> None:
    m = best("Globex Ltd", "GlobexLtd")
    assert m is not None and m.score >= 0.97
    m = best("next review", "Next review:")
    assert m is not None and m.score == 0.97  # case differs: a little less than exact


def test_ocr_confusions_fold_together() -> None:
    assert fold("Sheet1") == fold("Sheetl") == fold("SHEETI")
    assert fold("modern") == fold("modem")
    assert best("Sheet1", "Sheetl") is not None
    assert best("Orders", "0rders") is not None


def test_matches_stay_on_word_boundaries() -> None:
    assert best("View", "Next review: Monday") is None
    assert best("12", "1200") is None
    assert best("Edit", "FileEditSearch") is not None  # a case change is a boundary
    assert best("Customer", "Customers") is None


def test_short_targets_need_an_exact_read_long_ones_allow_an_edit() -> None:
    assert best("Edit", "Exit") is None
    m = best("Statistics", "Statisfics")
    assert m is not None and 0.8 <= m.score < 0.97


def test_part_of_a_longer_label_scores_below_a_whole_label() -> None:
    whole = best("Order", "Order", segments=[(0, 5)])
    part = best("Order", "Save order", segments=[(0, 10)])
    assert whole is not None and part is not None
    assert whole.score - part.score > 0.05


def test_empty_targets_match_nothing_and_punctuation_matches_as_written() -> None:
    assert find_matches("", "anything") == []
    # Issue 14: punctuation-only targets (a calculator's "*", "+/-") used to fold to nothing.
    assert [(m.start, m.end) for m in find_matches("!!!", "!!! ???")] == [(0, 3)]
    assert find_matches("!!!", "??? !!!!") == []
    assert find_matches("word", "") == []
    assert similarity("", "x") == 0.0


@given(
    st.text(
        alphabet=st.characters(categories=("Lu", "Ll", "Nd"), max_codepoint=0x24F),
        min_size=1,
        max_size=20,
    )
)
def test_any_text_matches_itself_exactly(text: str) -> None:
    if not fold(text):
        return
    m = best(text, text)
    assert m is not None and m.score == 1.0 and (m.start, m.end) == (0, len(text))


def test_a_ligature_the_read_dropped_still_matches_below_an_exact_read() -> None:
    # Issue 14: galculator's "Scientific Mode" menu item read beside its radio mark.
    m = best("Scientific Mode", "O sc ienti c Mo de")
    assert m is not None and 0.9 < m.score < 0.97
    exact = best("Scientific Mode", "Scientific Mode")
    assert exact is not None and exact.score > m.score
    # Short words still need an exact read: "fly" is not a "y".
    assert find_matches("fly", "y") == []
