import numpy as np
import pytest

from agentcorp.grounding.base import Candidate, Grounder, Hint
from agentcorp.grounding.dom import CompositeGrounder
from agentcorp.grounding.ocr import OcrEngine, TextLine
from agentcorp.grounding.ocr_grounder import OcrGrounder, diff_box, frame_array
from agentcorp.grounding.resolve import Ambiguous, NotFound, resolve
from agentcorp.sandbox.base import Frame
from agentcorp.types import Box
from tests.grounding._data import frame, inside, labels


class CountingEngine(OcrEngine):
    """The real engine, remembering how many pixels each read covered."""

    def __init__(self) -> None:
        super().__init__()
        self.areas: list[int] = []

    def read(self, rgb, origin=(0, 0), boxes=None):  # type: ignore[no-untyped-def]
        self.areas.append(rgb.shape[0] * rgb.shape[1])
        return super().read(rgb, origin, boxes)


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine()


def test_white_on_blue_text_is_read(engine: OcrEngine) -> None:
    g = OcrGrounder(engine)
    form = frame("form.png")
    header = resolve(g.locate(form, "Orders administration"))
    assert not isinstance(header, Ambiguous | NotFound)
    assert form.pil().getpixel(header.box.center)[2] > 100  # it sits on the blue bar
    assert not isinstance(resolve(g.locate(form, "Save order")), Ambiguous | NotFound)


def test_incremental_update_reads_only_the_changed_region() -> None:
    inc = labels()["incremental"][0]
    eng = CountingEngine()
    g = OcrGrounder(eng)
    before, after = frame(inc["before"]), frame(inc["after"])
    g.lines(before)
    full_area = eng.areas[-1]
    lines = g.update(after, Box(*inc["changed"]))
    assert g.last_read == "incremental"
    assert eng.areas[-1] < full_area / 3
    # Same answers as reading the new frame from scratch.
    fresh = OcrGrounder(eng).lines(after)

    def words(ls: list[TextLine]) -> list[str]:  # crop context may move an inferred space
        return sorted(ln.text.replace(" ", "") for ln in ls)

    assert words(lines) == words(fresh)
    for t in inc["targets"]:
        r = resolve(g.locate(after, t["text"]))
        assert not isinstance(r, Ambiguous | NotFound) and inside(r.box.center, t["boxes"][0])


def test_new_frames_are_diffed_automatically_and_unchanged_ones_cost_nothing() -> None:
    inc = labels()["incremental"][0]
    eng = CountingEngine()
    g = OcrGrounder(eng)
    g.lines(frame(inc["before"]))
    g.locate(frame(inc["after"]), "Shipped to Globex")
    assert g.last_read == "incremental"
    n = len(eng.areas)
    again = Frame(frame(inc["after"]).rgb, 1280, 800)  # equal pixels, a new object
    assert g.locate(again, "Shipped to Globex")
    assert g.last_read == "cached" and len(eng.areas) == n


def test_a_change_over_most_of_the_screen_reads_it_whole(engine: OcrEngine) -> None:
    g = OcrGrounder(engine)
    g.lines(frame("gnumeric.png"))
    g.lines(frame("form.png"))
    assert g.last_read == "full"


def test_near_hint_picks_the_row_and_region_hint_filters(engine: OcrEngine) -> None:
    g = OcrGrounder(engine)
    form = frame("form.png")
    assert isinstance(resolve(g.locate(form, "Edit")), Ambiguous)
    edit = resolve(g.locate(form, "Edit", Hint(near="Globex Ltd")))
    globex = resolve(g.locate(form, "Globex Ltd"))
    assert not isinstance(edit, Ambiguous | NotFound)
    assert not isinstance(globex, Ambiguous | NotFound)
    assert abs(edit.box.center[1] - globex.box.center[1]) < 8
    region = Box(0, globex.box.y - 4, 1280, globex.box.h + 8)
    only = resolve(g.locate(form, "Edit", Hint(region=region)), Hint(region=region))
    assert not isinstance(only, Ambiguous | NotFound) and only.box == edit.box
    assert isinstance(resolve([], None, "x"), NotFound)


def test_into_label_finds_the_field_beside_it(engine: OcrEngine) -> None:
    g = OcrGrounder(engine)
    form = frame("form.png")
    for f in labels()["frames"][2]["fields"]:
        r = resolve(g.locate(form, f["label"], Hint(role="field")))
        assert not isinstance(r, Ambiguous | NotFound), f
        assert inside(r.box.center, f["box"], slack=0), (f, r)


def test_locate_nothing_found_and_bad_frames() -> None:
    g = OcrGrounder(OcrEngine())
    blank = Frame(bytes(64 * 32 * 3), 64, 32)
    assert g.locate(blank, "Save") == []
    with pytest.raises(TypeError, match="cannot read pixels"):
        g.locate(object(), "Save")
    with pytest.raises(ValueError, match="HxWx3"):
        frame_array(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        OcrEngine().read(np.zeros((4, 4, 3), np.float32))


def test_diff_box_and_sub_box() -> None:
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    assert diff_box(a, b) is None
    b[2:4, 5:8] = 9
    assert diff_box(a, b) == Box(5, 2, 3, 2)
    ln = TextLine(Box(0, 0, 30, 10), "ab c", 1.0, ((0, 5), (5, 10), (10, 15), (15, 20)))
    assert ln.sub_box(3, 4) == Box(15, 0, 5, 10)


def test_region_frames_report_screen_coordinates(engine: OcrEngine) -> None:
    form = frame("form.png")
    whole = resolve(OcrGrounder(engine).locate(form, "Save order"))
    assert not isinstance(whole, Ambiguous | NotFound)
    part = form.crop(Box(0, 200, 640, 200))
    inpart = resolve(OcrGrounder(engine).locate(part, "Save order"))
    assert not isinstance(inpart, Ambiguous | NotFound)
    assert abs(inpart.box.center[0] - whole.box.center[0]) <= 2
    assert abs(inpart.box.center[1] - whole.box.center[1]) <= 2


def test_a_poll_that_misses_skips_the_whole_frame_reread_a_final_look_does_not() -> None:
    inc = labels()["incremental"][0]
    eng = CountingEngine()
    g = OcrGrounder(eng)
    g.lines(frame(inc["before"]))
    full_area = eng.areas[-1]
    after = frame(inc["after"])
    assert g.locate(after, "No such words here", Hint(thorough=False)) == []
    # Only the changed part was read: a poll's miss means "look at the next frame".
    assert all(a < full_area for a in eng.areas[1:])
    n = len(eng.areas)
    assert g.locate(after, "No such words here") == []
    # A final "not found" reads the frame whole first.
    assert len(eng.areas) == n + 1 and eng.areas[-1] == full_area
    # A poll still finds what the changed part shows.
    assert g.locate(after, inc["targets"][0]["text"], Hint(thorough=False))


def test_a_poll_leaves_a_screen_that_changed_whole_unread_until_it_holds_still() -> None:
    eng = CountingEngine()
    g = OcrGrounder(eng)
    g.lines(frame("gnumeric.png"))
    n = len(eng.areas)
    form = frame("form.png")
    # A new screen (a dialog closing, a page loading) is usually still changing: a poll
    # does not pay a whole read for it...
    assert g.locate(form, "Save order", Hint(thorough=False)) == []
    assert len(eng.areas) == n
    # ...but the same pixels polled again (the screen held still) are read and found.
    again = Frame(form.rgb, form.width, form.height)
    assert g.locate(again, "Save order", Hint(thorough=False))
    assert len(eng.areas) == n + 1
    # A look that is not a poll reads a new screen at once.
    g2 = OcrGrounder(eng)
    g2.lines(frame("gnumeric.png"))
    assert g2.locate(form, "Save order")


class _Tree(Grounder):
    """An accessibility tree that knows one name at one box, drawn or not."""

    def __init__(self, name: str, box: Box, source: str = "a11y") -> None:
        self.name, self.box, self.source = name, box, source

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        return [Candidate(self.box, self.name, 1.0, self.source)] if target == self.name else []  # type: ignore[arg-type]


def test_what_the_tree_knows_counts_as_drawn_only_once_ocr_reads_it_there() -> None:
    """Gnumeric names its "Save as" dialog in the tree before it is painted: a wait_for that
    ended there let ctrl+a reach the sheet, and the replay on the frames could not find it."""
    eng = CountingEngine()
    form = frame("form.png")
    ocr = OcrGrounder(eng)
    found = ocr.locate(form, "Save order")
    box = found[0].box
    comp = CompositeGrounder(_Tree("Save order", box), OcrGrounder(eng))
    tree_found = comp.locate(form, "Save order")
    assert tree_found[0].source == "a11y"
    assert comp.drawn(form, "Save order", tree_found)
    # Only a band around the box is read, not the frame.
    w, h = form.size
    assert eng.areas[-1] < w * h / 10
    blank = Frame.from_pil(form.pil().point(lambda _: 255))
    assert not comp.drawn(blank, "Save order", tree_found)
    # A window's name sits in the band at its top (a title bar, a heading).
    header = ocr.locate(form, "Orders administration")[0].box
    window = Box(header.x - 10, header.y - 5, 400, 300)
    title = CompositeGrounder(_Tree("Orders administration", window), OcrGrounder(eng))
    cands = title.locate(form, "Orders administration")
    assert title.drawn(form, "Orders administration", cands)
    assert not title.drawn(blank, "Orders administration", cands)


def test_only_tree_answers_ocr_can_read_are_confirmed() -> None:
    eng = CountingEngine()
    form = frame("form.png")
    blank = Frame.from_pil(form.pil().point(lambda _: 255))
    box = Box(10, 10, 40, 20)
    for target in ("+/-", "OK", "Größe"):  # too short or not Latin enough: never confirmed
        g = CompositeGrounder(_Tree(target, box), OcrGrounder(eng))
        assert g.drawn(blank, target, g.locate(blank, target)), target
    dom = CompositeGrounder(_Tree("Save order", box, "dom"), OcrGrounder(eng))
    assert dom.drawn(blank, "Save order", dom.locate(blank, "Save order"))
    assert eng.areas == []  # nothing was read for any of them
    # A chain without a pixel reader has nothing to confirm with.
    alone = CompositeGrounder(_Tree("Save order", box))
    assert alone.drawn(blank, "Save order", alone.locate(blank, "Save order"))
