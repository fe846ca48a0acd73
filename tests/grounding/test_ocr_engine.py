"""The OCR engine's speed-ups must not change what it reads: graph rewrites, class cut, cache."""

from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest
import rapidocr_onnxruntime

from agentcorp.errors import SetupError
from agentcorp.grounding import ocr
from agentcorp.grounding.ocr import OcrEngine, detect_text_boxes, fuse_recogniser
from agentcorp.grounding.ocr_grounder import OcrGrounder, frame_array
from tests.grounding._data import frame

MODEL = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"


def _session(model: str | bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def _crops(name: str, n: int) -> np.ndarray:
    """``n`` real text crops of a labelled frame, as one batch the way the engine feeds it."""
    px = frame_array(frame(name))
    boxes = sorted(detect_text_boxes(px), key=lambda b: -b.w)[:n]
    arr = np.zeros((n, 3, 32, 320), np.float32)
    for k, b in enumerate(boxes):
        img = px[max(0, b.y - 3) : b.bottom + 3, max(0, b.x - 3) : b.right + 3]
        w = min(320, int(32 * img.shape[1] / img.shape[0]))
        import cv2

        r = cv2.resize(img, (w, 32))
        arr[k, :, :, :w] = r[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0
    return arr


def test_graph_fusion_is_exact_on_real_crops() -> None:
    fused, n = fuse_recogniser(MODEL)
    assert n >= 50  # 28 hard-swishes and 28 affine folds in PP-OCRv4
    x = _crops("form.png", 4)
    a = _session(str(MODEL)).run(None, {"x": x})[0]
    b = _session(fused).run(None, {"x": x})[0]
    assert a.shape == b.shape
    assert float(np.abs(a - b).max()) < 1e-4
    assert (a.argmax(-1) == b.argmax(-1)).all()


def test_latin_cut_keeps_the_same_best_latin_class() -> None:
    full, _ = fuse_recogniser(MODEL)
    cut, _ = fuse_recogniser(MODEL, latin_only=True)
    sf, sc = _session(full), _session(cut)
    chars_f = sf.get_modelmeta().custom_metadata_map["character"].splitlines()
    chars_c = sc.get_modelmeta().custom_metadata_map["character"].splitlines()
    assert 200 <= len(chars_c) < 300 and set(chars_c) <= set(chars_f)
    assert all(ord(c[0]) < 0x2E80 for c in chars_c)
    x = _crops("mousepad.png", 4)
    pf = sf.run(None, {"x": x})[0]
    pc = sc.run(None, {"x": x})[0]
    assert pc.shape[-1] == len(chars_c) + 2
    # Where the full model's best class is blank, space or a kept character, the cut model
    # picks the same one.
    labels_f = ["", *chars_f, " "]
    labels_c = ["", *chars_c, " "]
    best_f = [labels_f[i] for i in pf.argmax(-1).ravel()]
    best_c = [labels_c[i] for i in pc.argmax(-1).ravel()]
    kept = set(labels_c)
    same = [f == c for f, c in zip(best_f, best_c, strict=True) if f in kept]
    assert len(same) > 100 and all(same)


def test_engine_reads_the_same_with_and_without_speedups() -> None:
    plain = OcrEngine(fuse=False, charset="full", cache_size=0)
    fast = OcrEngine()
    px = frame_array(frame("form.png"))
    a = [(ln.box, ln.text) for ln in plain.read(px)]
    b = [(ln.box, ln.text) for ln in fast.read(px)]
    assert len(a) >= 20 and a == b


def test_repeated_crops_are_recognised_once_and_cache_is_bounded() -> None:
    eng = OcrEngine()
    px = frame_array(frame("gnumeric.png"))
    boxes = detect_text_boxes(px)
    first = eng.read(px)
    # Identical crops on one screen (grid separators, repeated icons) cost one read.
    assert 0 < eng.recognised < len(boxes)
    n = eng.recognised
    again = eng.read(px)
    assert eng.recognised == n and eng.cache_hits >= n
    assert [(ln.box, ln.text, ln.chars) for ln in again] == [
        (ln.box, ln.text, ln.chars) for ln in first
    ]
    # A crop read at another place answers with that place's coordinates.
    moved = np.zeros_like(px)
    moved[10:, 20:] = px[:-10, :-20]
    b = next(b for b in boxes if b.x > 10 and b.y > 10 and b.right < 1240 and b.w > 20)
    shifted = eng.read(moved, boxes=[type(b)(b.x + 20, b.y + 10, b.w, b.h)])
    orig = eng.read(px, boxes=[b])
    assert eng.recognised == n
    assert [(ln.box.x - 20, ln.box.y - 10, ln.text) for ln in shifted] == [
        (ln.box.x, ln.box.y, ln.text) for ln in orig
    ]
    eng.clear_cache()
    assert eng.cache_hits == 0 and eng.recognised == 0
    small = OcrEngine(cache_size=5)
    small._session, small._chars = eng._load(), eng._chars
    lines = small.read(px)
    assert len(small._cache) <= 5
    assert [ln.text for ln in lines] == [ln.text for ln in first]
    # Hits of a read must survive the evictions its own new crops cause.
    part = [b for b in boxes if b.y < 40][:3]
    small.clear_cache()
    small.read(px, boxes=part)
    mixed = small.read(px, boxes=[*part, *boxes[-20:]])
    assert small.cache_hits >= 1
    assert {ln.text for ln in small.read(px, boxes=part)} <= {ln.text for ln in mixed}
    want = eng.read(px, boxes=part)
    assert want and len([ln for ln in mixed if ln.box.y < 40]) == len(want)
    off = OcrEngine(cache_size=0)
    off._session, off._chars = eng._session, eng._chars
    off.read(px)
    off.read(px)
    assert off.cache_hits == 0 and not off._cache


def _merge_reference(boxes: list[list[int]], walls: np.ndarray) -> list[list[int]]:
    """The merge as first written: every earlier box is tried (quadratic, obviously right)."""
    boxes.sort(key=lambda b: b[0])
    out: list[list[int]] = []
    for b in boxes:
        for o in out:
            top, bot = max(o[1], b[1]), min(o[1] + o[3], b[1] + b[3])
            h = max(o[3], b[3])
            gap = b[0] - (o[0] + o[2])
            if (
                bot - top >= 0.6 * min(o[3], b[3])
                and -2 <= gap <= 0.6 * h
                and (min(o[3], b[3]) >= 0.45 * h)
                and not (gap > 0 and walls[top:bot, o[0] + o[2] : b[0]].any())
            ):
                x0, y0 = min(o[0], b[0]), min(o[1], b[1])
                x1, y1 = max(o[0] + o[2], b[0] + b[2]), max(o[1] + o[3], b[1] + b[3])
                o[:] = [x0, y0, x1 - x0, y1 - y0]
                break
        else:
            out.append(list(b))
    return out


def test_pruned_word_merge_equals_the_quadratic_one() -> None:
    rng = np.random.default_rng(7)
    walls = np.zeros((800, 1280), bool)
    walls[:, 400:402] = True
    for _ in range(20):
        raw = [
            [
                int(rng.integers(0, 1200)),
                int(rng.integers(0, 760)),
                int(rng.integers(3, 60)),
                int(rng.integers(6, 40)),
            ]
            for _ in range(400)
        ]
        assert ocr._merge_words([list(b) for b in raw], walls) == _merge_reference(
            [list(b) for b in raw], walls
        )


def test_bad_engine_settings_and_unreadable_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OcrEngine: bad settings") as err:
        OcrEngine(threads=0)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="charset='klingon'"):
        OcrEngine(charset="klingon")  # type: ignore[arg-type]
    bad = tmp_path / "rec.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(SetupError, match=r"rec\.onnx is unreadable") as err2:
        fuse_recogniser(bad)
    assert "\n" not in str(err2.value)


def test_grounders_share_the_default_engine() -> None:
    assert OcrGrounder().engine is OcrGrounder().engine is OcrEngine.shared()
    own = OcrEngine()
    assert OcrGrounder(own).engine is own


def test_long_lines_keep_their_last_letters() -> None:
    # Without blank columns after a long line the model drops its end ("Acm orp").
    lines = OcrEngine(cache_size=0).read(frame_array(frame("mousepad.png")))
    quarterly = [ln.text for ln in lines if ln.text.startswith("Quarterly")]
    assert quarterly and quarterly[0].replace(" ", "").endswith("AcmeCorp"), quarterly
