"""Top-1 accuracy on the labelled set of real app screens (threshold test; speed is in bench)."""

from agentcorp.grounding.ocr_grounder import OcrGrounder
from tests.grounding._data import Score, frame, labels, score_frame


def test_labelled_set_is_big_enough_and_small_on_disk() -> None:
    lab = labels()
    n = sum(len(f["targets"]) for f in lab["frames"]) + sum(
        len(i["targets"]) for i in lab["incremental"]
    )
    assert n >= 50
    assert {f["app"] for f in lab["frames"]} >= {"gnumeric", "mousepad", "chromium"}
    assert any(t["ambiguous"] for f in lab["frames"] for t in f["targets"])


def test_ocr_top1_accuracy_at_least_95_percent_and_no_silent_wrong() -> None:
    g = OcrGrounder()
    s = Score()
    for f in labels()["frames"]:
        g.reset()
        score_frame(g, frame(f["file"]), f["targets"], s)
    for inc in labels()["incremental"]:
        g.reset()
        g.lines(frame(inc["before"]))
        score_frame(g, frame(inc["after"]), inc["targets"], s)
    acc = s.right / s.total
    assert s.silent_wrong == 0, s.misses
    assert acc >= 0.95, (acc, s.misses)
