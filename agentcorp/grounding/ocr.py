"""A fast screen OCR engine: classical text detection plus the PP-OCRv4 recogniser.

Why this combination (measured on this machine, 1280x800 real app frames, one thread):

- tesseract 5.3 in-process reads a full frame in ~70-150 ms but misses small UI text (row
  numbers, status bars) and white-on-colour titles;
- RapidOCR's deep text detector (DB) costs 330-600 ms on a full frame alone, and its
  recogniser pads every crop to 320 px wide, so 74 short UI labels cost ~1.5 s;
- screen text is crisp on flat backgrounds, so a morphological-gradient detector finds every
  line in ~4 ms, polarity-free (white-on-blue as well as black-on-white), and the recogniser
  run on crops padded only to the widest crop of each width-sorted batch costs a third.

The recogniser's CTC time steps also give each character's x position, so a target that is
only part of a line gets the sub-box of its own characters.

Thread limits: one intra-op thread, and ``OMP_THREAD_LIMIT=1`` for any OpenMP user, so OCR
never oversubscribes the two cores it shares with the apps it watches.

Speed (measured in ``bench/grounding.py``): the recogniser's graph is rewritten once at load
(exact algebra, same outputs to 1e-5): each hard-swish spelt as four element-wise ops becomes
``x * HardSigmoid(x)``, which onnxruntime fuses into the convolution, and each per-layer
scale-and-shift right after a convolution is folded into its weights; together ~15 % less
CPU per crop. Crops are batched only with crops of nearly the same width (padding is paid
for like text), and a crop whose pixels were read before (toolbars, menus, grid headers, the
same icon twice on one screen) is answered from a small in-memory LRU keyed by its pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import numpy as np

from agentcorp.errors import SetupError
from agentcorp.types import Box

__all__ = ["OcrEngine", "TextLine", "detect_text_boxes", "fuse_recogniser"]


@dataclass(frozen=True, slots=True)
class TextLine:
    """One recognised run of text: its box, text, confidence and per-character x spans.

    ``chars[i]`` is ``(x0, x1)`` in screen pixels for ``text[i]`` (spaces included), so a
    matched substring maps back to a sub-box without guessing from proportions.
    """

    box: Box
    text: str
    conf: float
    chars: tuple[tuple[int, int], ...]

    def sub_box(self, start: int, end: int) -> Box:
        """The box of ``text[start:end]``."""
        if not self.chars or start >= end:
            return self.box
        x0 = self.chars[start][0]
        x1 = self.chars[end - 1][1]
        return Box(x0, self.box.y, max(1, x1 - x0), self.box.h)


_SHARED: OcrEngine | None = None
_SHARED_LOCK = threading.Lock()

#: One crop's reading: text, mean confidence, character spans relative to the crop's left.
_Read = tuple[str, float, tuple[tuple[int, int], ...]]


def _cv2() -> Any:
    import cv2

    cv2.setNumThreads(1)
    return cv2


def detect_text_boxes(rgb: np.ndarray, min_h: int = 6, max_h: int = 64) -> list[Box]:
    """Boxes of text-like runs in an RGB image (H x W x 3, uint8), in its pixel coordinates.

    Edges (morphological gradient) are polarity-free; long straight lines (grid lines, field
    borders) are removed before letters are joined into words and lines.
    """
    cv2 = _cv2()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((2, 2), np.uint8))
    _, bw = cv2.threshold(grad, 38, 255, cv2.THRESH_BINARY)
    lines_h = cv2.morphologyEx(
        bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (36, 1))
    )
    lines_v = cv2.morphologyEx(
        bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 28))
    )
    bw = cv2.bitwise_and(bw, cv2.bitwise_not(cv2.bitwise_or(lines_h, lines_v)))
    bw = _drop_outlines(cv2, bw)
    joined = cv2.morphologyEx(
        bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (6, 1))
    )
    # A removed vertical line (a table's grid) separates cells: never join across it.
    walls = cv2.dilate(lines_v, np.ones((1, 3), np.uint8))
    joined = cv2.bitwise_and(joined, cv2.bitwise_not(walls))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    raw: list[list[int]] = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if h < min_h or h > max_h or w < 3 or area < 12:
            continue
        raw.append([x, y, w, h])
    wall_cols = walls > 0
    return [Box(*b) for b in _merge_words(raw, wall_cols)]


def _drop_outlines(cv2: Any, bw: np.ndarray) -> np.ndarray:
    """Remove closed outlines around text: rounded button borders, radio and check marks.

    A button's rounded border is too short to be taken out as a straight line, and joined to
    its label it makes the whole row of buttons one box that reads as noise ("OK", "File" and
    "Find and Replace" read as "nd a d Res"). An outline is a sparse component that encloses
    other ink (at most 30 % of its box inked, ink inside), or a tall thin sparse arc.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    drop: list[int] = []
    for i in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area > 0.3 * w * h:
            continue
        if h >= 22 and 2 * w <= h:
            drop.append(i)  # the rounded end of a long button (its straight edges are gone)
            continue
        if h < 14 or w < h:
            continue
        if _encloses_a_word(labels[y + 3 : y + h - 3, x + 3 : x + w - 3], i, stats):
            drop.append(i)
    if not drop:
        return bw
    out = bw.copy()
    out[np.isin(labels, drop)] = 0
    return out


def _encloses_a_word(inside: np.ndarray, own: int, stats: np.ndarray) -> bool:
    """Whether the components inside an outline include two side by side (letters).

    A glyph's own inner contour (the hole of a bold "0", the two of an "8") lies inside its
    outer one too, but never beside another: only a label has letters next to each other.
    """
    ids = [int(v) for v in np.unique(inside) if v and v != own]
    spans = sorted((int(stats[k][0]), int(stats[k][0] + stats[k][2])) for k in ids)
    return any(b0 >= a1 for (_, a1), (b0, _) in itertools.pairwise(spans))


def _merge_words(boxes: list[list[int]], walls: np.ndarray) -> list[list[int]]:
    """Join boxes on one text line whose gap is small for their height (word spaces)."""
    boxes.sort(key=lambda b: b[0])
    out: list[list[int]] = []
    # Boxes come left to right, so a box ending further left of the current one than any
    # allowed gap (0.6 of the taller height) can never take a later box either: dropping it
    # from the scan keeps this near-linear on busy screens, with the same result.
    active: list[list[int]] = []
    top_h = max((b[3] for b in boxes), default=0)
    for b in boxes:
        if len(active) > 16:
            active = [o for o in active if o[0] + o[2] >= b[0] - 0.6 * max(o[3], top_h) - 1]
        for o in active:
            top, bot = max(o[1], b[1]), min(o[1] + o[3], b[1] + b[3])
            overlap = bot - top
            h = max(o[3], b[3])
            gap = b[0] - (o[0] + o[2])
            if (
                overlap >= 0.6 * min(o[3], b[3])
                and -2 <= gap <= 0.6 * h
                and (min(o[3], b[3]) >= 0.45 * h)
                and not (gap > 0 and walls[top:bot, o[0] + o[2] : b[0]].any())
            ):
                x0, y0 = min(o[0], b[0]), min(o[1], b[1])
                x1, y1 = max(o[0] + o[2], b[0] + b[2]), max(o[1] + o[3], b[1] + b[3])
                o[:] = [x0, y0, x1 - x0, y1 - y0]
                break
        else:
            nb = list(b)
            out.append(nb)
            active.append(nb)
    return out


def fuse_recogniser(model: Path, fuse: bool = True, latin_only: bool = False) -> tuple[bytes, int]:
    """The recogniser's graph with exact algebraic rewrites, and how many were applied.

    PP-OCRv4's exporter spells hard-swish as ``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)``
    (four passes over the tensor); ``x * HardSigmoid(x)`` (alpha 1/6, beta 1/2) is the same
    function, and onnxruntime fuses it into the convolution before it. A scalar ``Mul`` then
    ``Add`` right after a convolution (the "learnable affine" of PP-LCNetV3) is folded into
    that convolution's weights and bias. Constants become initializers so onnxruntime can
    fold them. Anything that does not match exactly is left as it is.

    ``latin_only`` also cuts the output layer down to the characters below U+2E80 (Latin,
    Greek, Cyrillic, digits, punctuation, symbols: 222 of 6,625 classes; CJK is dropped), so
    the last projection, the softmax and the decoder's arg-max do 30x less work per step,
    and a Latin line can no longer be misread as a CJK look-alike. The model's
    ``character`` metadata is cut to match.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise SetupError(f"OCR graph fusion needs onnx: pip install onnx ({exc})") from exc
    try:
        m = onnx.load(str(model))
    except Exception as exc:  # onnx raises protobuf's DecodeError and friends
        raise SetupError(f"OCR model {model} is unreadable: {exc}") from exc
    gr = _Graph(m.graph, numpy_helper)
    count = 0
    if fuse:
        count += _fuse_hard_swish(gr)
        count += _fold_conv_affine(gr, first=count)
    if latin_only and _cut_classes(m, gr.consts, gr.producer):
        count += 1
    gr.rebuild(numpy_helper)
    return m.SerializeToString(), count


class _Graph:
    """The recogniser's nodes with constants lifted out, and who produces and uses each tensor.

    ``replace`` (node id -> new nodes) and ``drop`` (node ids) collect the rewrites decided.
    """

    def __init__(self, g: Any, numpy_helper: Any) -> None:
        self.g = g
        self.consts: dict[str, np.ndarray] = {}
        self.nodes: list[Any] = []
        for n in g.node:
            if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            else:
                self.nodes.append(n)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.users: dict[str, list[Any]] = {}
        for n in self.nodes:
            for name in n.input:
                self.users.setdefault(name, []).append(n)
        self.replace: dict[int, list[Any]] = {}
        self.drop: set[int] = set()

    def scalar(self, name: str, value: float | None = None) -> float | None:
        """The one-element constant ``name`` (equal to ``value`` when given), else None."""
        t = self.consts.get(name)
        if t is None or t.size != 1:
            return None
        v = float(t.reshape(-1)[0])
        return v if value is None or abs(v - value) < 1e-6 else None

    def only_user(self, name: str, op: str) -> Any:
        """The single node reading ``name`` when it is an ``op``, else None."""
        us = self.users.get(name, [])
        return us[0] if len(us) == 1 and us[0].op_type == op else None

    def rebuild(self, numpy_helper: Any) -> None:
        """Write the kept and replacement nodes and the used constants back to the graph."""
        kept: list[Any] = []
        for n in self.nodes:
            if id(n) in self.replace:
                kept.extend(self.replace[id(n)])
            elif id(n) not in self.drop:
                kept.append(n)
        used = {name for n in kept for name in n.input}
        del self.g.node[:]
        self.g.node.extend(kept)
        self.g.initializer.extend(
            numpy_helper.from_array(np.asarray(v), k) for k, v in self.consts.items() if k in used
        )


def _fuse_hard_swish(gr: _Graph) -> int:
    """``Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(6)`` becomes ``x * HardSigmoid(x)``."""
    from onnx import helper

    count = 0
    for n in gr.nodes:
        if (
            n.op_type != "Clip"
            or len(n.input) != 3
            or gr.scalar(n.input[1], 0.0) is None
            or gr.scalar(n.input[2], 6.0) is None
        ):
            continue
        add = gr.producer.get(n.input[0])
        if (
            add is None
            or add.op_type != "Add"
            or gr.scalar(add.input[1], 3.0) is None
            or len(gr.users.get(add.output[0], [])) != 1
        ):
            continue
        x = add.input[0]
        mul = gr.only_user(n.output[0], "Mul")
        if mul is None or set(mul.input) != {x, n.output[0]}:
            continue
        div = gr.only_user(mul.output[0], "Div")
        if div is None or gr.scalar(div.input[1], 6.0) is None:
            continue
        gate = f"{x}__hsig"
        gr.replace[id(add)] = [
            helper.make_node("HardSigmoid", [x], [gate], alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", [x, gate], [div.output[0]]),
        ]
        gr.drop.update((id(n), id(mul), id(div)))
        count += 1
    return count


def _fold_conv_affine(gr: _Graph, first: int) -> int:
    """A scalar ``Mul`` then ``Add`` right after a ``Conv`` is folded into its weights."""
    count = 0
    for n in gr.nodes:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in gr.consts:
            continue
        mul = gr.only_user(n.output[0], "Mul")
        if mul is None:
            continue
        scale = gr.scalar(next((i for i in mul.input if i != n.output[0]), ""))
        add = gr.only_user(mul.output[0], "Add")
        if scale is None or add is None:
            continue
        shift = gr.scalar(next((i for i in add.input if i != mul.output[0]), ""))
        if shift is None:
            continue
        w = gr.consts[n.input[1]]
        b = gr.consts[n.input[2]] if len(n.input) > 2 and n.input[2] in gr.consts else None
        if len(n.input) > 2 and b is None:
            continue
        bias = b if b is not None else np.zeros(w.shape[0], np.float32)
        # Names number every rewrite of the graph so far (the hard-swish ones included).
        k = first + count
        wname, bname = f"{n.input[1]}__folded{k}", f"{n.output[0]}__bias{k}"
        gr.consts[wname] = (w * scale).astype(w.dtype)
        gr.consts[bname] = (bias * scale + shift).astype(w.dtype)
        n.input[1] = wname
        if len(n.input) > 2:
            n.input[2] = bname
        else:
            n.input.append(bname)
        n.output[0] = add.output[0]
        gr.drop.update((id(mul), id(add)))
        count += 1
    return count


def _cut_classes(m: Any, consts: dict[str, np.ndarray], producer: dict[str, Any]) -> bool:
    """Keep only the non-CJK output classes of the CTC head (``MatMul -> Add -> Softmax``)."""
    meta = {p.key: p.value for p in m.metadata_props}
    chars = meta.get("character", "").splitlines()
    n_cls = len(chars) + 2  # blank first, space last
    out = m.graph.output[0]
    soft: Any = producer.get(out.name)
    is_soft = soft is not None and soft.op_type == "Softmax"
    add: Any = producer.get(soft.input[0]) if is_soft else None
    mm: Any = producer.get(add.input[0]) if add is not None and add.op_type == "Add" else None
    if mm is None or mm.op_type != "MatMul" or len(add.input) != 2:
        return False
    w, b = consts.get(mm.input[1]), consts.get(add.input[1])
    if w is None or b is None or w.ndim != 2 or w.shape[1] != n_cls or b.shape != (n_cls,):
        return False
    keep = [0, *(i + 1 for i, c in enumerate(chars) if c and ord(c[0]) < 0x2E80), n_cls - 1]
    wname, bname = f"{mm.input[1]}__latin", f"{add.input[1]}__latin"
    consts[wname] = np.ascontiguousarray(w[:, keep])
    consts[bname] = np.ascontiguousarray(b[keep])
    mm.input[1], add.input[1] = wname, bname
    dims = out.type.tensor_type.shape.dim
    if len(dims) == 3:
        dims[2].dim_value = len(keep)
    for prop in m.metadata_props:
        if prop.key == "character":
            prop.value = "\n".join(chars[i - 1] for i in keep[1:-1])
    return True


class OcrEngine:
    """Reads text lines from RGB images. One instance holds one ONNX session; thread-safe.

    ``height`` is the recogniser's input height. The model was trained at 48 px, but crisp
    screen text of 10-14 px reads as well at 32 (same accuracy on the labelled set) for
    half the cost; pass 48 for small or blurry text. ``threads`` is onnxruntime's intra-op
    thread count (1 keeps OCR off the app's core). ``cache_size`` crops are remembered by
    their pixels (0 disables the cache); ``fuse=False`` skips the exact graph rewrites;
    ``charset="full"`` keeps the model's CJK classes (``"latin"``, the default, reads every
    script below U+2E80 and is ~10 % faster; see ``fuse_recogniser``).
    """

    def __init__(
        self,
        height: int = 32,
        batch: int = 8,
        min_conf: float = 0.5,
        threads: int = 1,
        cache_size: int = 4096,
        fuse: bool = True,
        charset: Literal["latin", "full"] = "latin",
    ) -> None:
        if (
            height < 8
            or batch < 1
            or threads < 1
            or cache_size < 0
            or charset not in ("latin", "full")
        ):
            raise ValueError(
                f"OcrEngine: bad settings height={height} batch={batch} threads={threads} "
                f"cache_size={cache_size} charset={charset!r}"
            )
        self.height = height
        self.batch = batch
        self.min_conf = min_conf
        self.threads = threads
        self.cache_size = cache_size
        self.fuse = fuse
        self.charset = charset
        self.tail = max(8, height // 2)
        self._lock = threading.Lock()
        self._session: Any = None
        self._chars: list[str] = []
        self._cache: OrderedDict[bytes, _Read | None] = OrderedDict()
        #: Crops answered from the cache / recognised by the model since the last clear.
        self.cache_hits = 0
        self.recognised = 0
        #: How many graph rewrites ``fuse`` applied (0 when off or nothing matched).
        self.fused_ops = 0

    @classmethod
    def shared(cls) -> OcrEngine:
        """The process-wide default engine: one model load, one crop cache for all grounders."""
        global _SHARED
        with _SHARED_LOCK:
            if _SHARED is None:
                _SHARED = cls()
            return _SHARED

    def clear_cache(self) -> None:
        """Forget every remembered crop (the next read recognises everything again)."""
        with self._lock:
            self._cache.clear()
            self.cache_hits = 0
            self.recognised = 0

    def preload(self) -> threading.Thread | None:
        """Load the model in a background thread (``None`` when it is loaded already).

        A sandbox starting takes seconds anyway; loading the model then (about a second)
        spares the first look of a task that needed no OCR until a ``wait_for``. A load
        that fails is left for the first read to report.
        """
        if self._session is not None:
            return None

        def load() -> None:
            with self._lock, contextlib.suppress(Exception):
                self._load()

        thread = threading.Thread(target=load, name="ocr-preload", daemon=True)
        thread.start()
        return thread

    def _load(self) -> Any:
        if self._session is not None:
            return self._session
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
            import rapidocr_onnxruntime
        except ImportError as exc:  # pragma: no cover - dependency of the package
            raise SetupError(
                f"OCR needs rapidocr-onnxruntime: pip install rapidocr-onnxruntime ({exc})"
            ) from exc
        model = Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
        if not model.is_file():
            raise SetupError(f"OCR model missing at {model}: reinstall rapidocr-onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = False
        source: str | bytes = str(model)
        if self.fuse or self.charset == "latin":
            source, self.fused_ops = fuse_recogniser(
                model, self.fuse, latin_only=self.charset == "latin"
            )
        try:
            sess = ort.InferenceSession(
                source, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise SetupError(f"OCR model {model.name} does not load: {exc}") from exc
        meta = sess.get_modelmeta().custom_metadata_map
        self._chars = ["", *meta["character"].splitlines(), " "]
        self._session = sess
        return sess

    def read(
        self, rgb: np.ndarray, origin: tuple[int, int] = (0, 0), boxes: Sequence[Box] | None = None
    ) -> list[TextLine]:
        """Text lines in ``rgb``; boxes are shifted by ``origin`` into screen coordinates.

        ``boxes`` (in ``rgb``'s own coordinates) skips detection and reads only those.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"OCR needs an HxWx3 uint8 image, got {rgb.shape} {rgb.dtype}")
        found = list(boxes) if boxes is not None else detect_text_boxes(rgb)
        if not found:
            return []
        with self._lock:
            return self._recognise(rgb, found, origin)

    def _recognise(
        self, rgb: np.ndarray, boxes: list[Box], origin: tuple[int, int]
    ) -> list[TextLine]:
        cv2 = _cv2()
        H = self.height
        ih, iw = rgb.shape[:2]
        # Each box becomes a crop with a small margin; equal crops (by pixels) are read once.
        todo: dict[bytes, tuple[np.ndarray, int]] = {}
        # This call's reads, kept apart from the cache: reading new crops may evict old ones.
        reads: dict[bytes, _Read | None] = {}
        placed: list[tuple[Box, bytes]] = []
        out: list[TextLine] = []
        for b in boxes:
            pad = max(2, b.h // 5)
            x0, y0 = max(0, b.x - pad), max(0, b.y - pad)
            x1, y1 = min(iw, b.right + pad), min(ih, b.bottom + pad)
            if x1 <= x0 or y1 <= y0:
                continue
            img = rgb[y0:y1, x0:x1]
            key = hashlib.blake2b(
                np.ascontiguousarray(img).tobytes(),
                digest_size=16,
                person=img.shape[0].to_bytes(4, "little") + img.shape[1].to_bytes(4, "little"),
            ).digest()
            placed.append((Box(x0, y0, x1 - x0, y1 - y0), key))
            if key in todo or key in reads:
                continue
            if key in self._cache:
                self._cache.move_to_end(key)
                reads[key] = self._cache[key]
                self.cache_hits += 1
                continue
            todo[key] = (img, max(1, int(np.ceil(H * img.shape[1] / img.shape[0]))))
        if todo:
            sess = self._load()
            name = sess.get_inputs()[0].name
            # Batch crops of nearly equal resized width only: padding costs as much as text.
            order = sorted(todo.items(), key=lambda kv: kv[1][1])
            i = 0
            while i < len(order):
                first_w = order[i][1][1]
                j = i + 1
                while (
                    j < len(order) and j - i < self.batch and order[j][1][1] <= first_w * 1.15 + 8
                ):
                    j += 1
                part = order[i:j]
                # Blank columns after a long line: the model was trained on crops padded to
                # a batch's widest, and without a tail it garbles a long line's last letters
                # ("Acme Corp" -> "Acm orp"). Short crops read best as they are: a tail
                # there costs 10-30 % more and turns icons into stray letters.
                wmax = max(w for _, (_, w) in part)
                if wmax >= 4 * H:
                    wmax += self.tail
                arr = np.zeros((len(part), 3, H, wmax), np.float32)
                for k, (_, (img, w)) in enumerate(part):
                    r = cv2.resize(img, (w, H), interpolation=cv2.INTER_LINEAR)
                    # The model was trained on BGR input normalised to [-1, 1].
                    arr[k, :, :, :w] = r[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0
                preds = sess.run(None, {name: arr})[0]
                for k, (key, (img, w)) in enumerate(part):
                    reads[key] = self._decode(preds[k], w, wmax, img.shape[1])
                    self._remember(key, reads[key])
                self.recognised += len(part)
                i = j
        for box, key in placed:
            read = reads[key]
            if read is None:
                continue
            text, conf, spans = read
            ox, oy = origin[0] + box.x, origin[1] + box.y
            out.append(
                TextLine(
                    Box(ox, oy, box.w, box.h), text, conf, tuple((ox + a, ox + b) for a, b in spans)
                )
            )
        out.sort(key=lambda t: (t.box.y, t.box.x))
        return out

    def _remember(self, key: bytes, read: _Read | None) -> None:
        self._cache[key] = read
        self._cache.move_to_end(key)
        while len(self._cache) > max(self.cache_size, 0):
            self._cache.popitem(last=False)

    def _decode(self, pred: np.ndarray, w: int, wmax: int, crop_w: int) -> _Read | None:
        """Text, mean confidence and crop-relative character spans of one crop's output."""
        steps = pred.shape[0]
        idx = pred.argmax(axis=1)
        prob = pred.max(axis=1)
        step_px = wmax / steps  # resized pixels per time step
        scale = crop_w / w  # crop pixels per resized pixel
        valid = min(steps, int(np.ceil(w / step_px)) + 1)
        text: list[str] = []
        xs: list[float] = []
        confs: list[float] = []
        prev = 0
        for t in range(valid):
            k = int(idx[t])
            if k != 0 and k != prev and k < len(self._chars):
                text.append(self._chars[k])
                xs.append((t + 0.5) * step_px * scale)
                confs.append(float(prob[t]))
            prev = k
        # The recogniser often drops the space between words ("Mondaymorning"); a gap between
        # character centres well above the line's usual pitch is a space, so put it back.
        if len(xs) >= 6:  # fewer characters give no reliable pitch
            steps_x = np.diff(np.asarray(xs))
            pitch0 = float(np.median(steps_x))
            k = len(xs) - 1
            while k > 0:
                # A doubled letter ("pp") is emitted with a blank between: not a space.
                if (
                    steps_x[k - 1] > 1.8 * pitch0
                    and text[k] != " "
                    and text[k - 1] != " "
                    and text[k] != text[k - 1]
                ):
                    text.insert(k, " ")
                    xs.insert(k, (xs[k - 1] + xs[k]) / 2)
                    confs.insert(k, 1.0)
                k -= 1
        s = "".join(text)
        if not s.strip():
            return None
        conf = float(np.mean(confs))
        # Icons read as one or two letters with middling confidence; real short labels
        # ("A", "10") read sharply.
        if conf < self.min_conf or (len(s.strip()) <= 2 and conf < 0.9):
            return None
        # Character spans: halfway to each neighbour's centre; the ends use the mean pitch.
        pitch = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else crop_w * 0.6
        spans: list[tuple[int, int]] = []
        for k, x in enumerate(xs):
            left = (xs[k - 1] + x) / 2 if k else x - pitch / 2
            right = (xs[k + 1] + x) / 2 if k + 1 < len(xs) else x + pitch / 2
            spans.append((max(0, int(left)), min(crop_w, int(np.ceil(right)))))
        return s, conf, tuple(spans)
