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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import numpy as np

from agentcorp.errors import SetupError
from agentcorp.types import Box

__all__ = ["OcrEngine", "TextLine", "detect_text_boxes"]


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
    lines_h = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT,
                                                                              (36, 1)))
    lines_v = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT,
                                                                              (1, 28)))
    bw = cv2.bitwise_and(bw, cv2.bitwise_not(cv2.bitwise_or(lines_h, lines_v)))
    joined = cv2.morphologyEx(bw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT,
                                                                               (6, 1)))
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


def _merge_words(boxes: list[list[int]], walls: np.ndarray) -> list[list[int]]:
    """Join boxes on one text line whose gap is small for their height (word spaces)."""
    boxes.sort(key=lambda b: (b[0]))
    out: list[list[int]] = []
    for b in boxes:
        for o in out:
            top, bot = max(o[1], b[1]), min(o[1] + o[3], b[1] + b[3])
            overlap = bot - top
            h = max(o[3], b[3])
            gap = b[0] - (o[0] + o[2])
            if overlap >= 0.6 * min(o[3], b[3]) and -2 <= gap <= 0.6 * h and (
                min(o[3], b[3]) >= 0.45 * h
            ) and not (gap > 0 and walls[top:bot, o[0] + o[2]:b[0]].any()):
                x0, y0 = min(o[0], b[0]), min(o[1], b[1])
                x1, y1 = max(o[0] + o[2], b[0] + b[2]), max(o[1] + o[3], b[1] + b[3])
                o[:] = [x0, y0, x1 - x0, y1 - y0]
                break
        else:
            out.append(list(b))
    return out


class OcrEngine:
    """Reads text lines from RGB images. One instance holds one ONNX session; thread-safe.

    ``height`` is the recogniser's input height. The model was trained at 48 px, but crisp
    screen text of 10-14 px reads as well at 32 (same accuracy on the labelled set) for
    half the cost; pass 48 for small or blurry text.
    """

    def __init__(self, height: int = 32, batch: int = 8, min_conf: float = 0.5) -> None:
        self.height = height
        self.batch = batch
        self.min_conf = min_conf
        self._lock = threading.Lock()
        self._session: Any = None
        self._chars: list[str] = []

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
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_cpu_mem_arena = False
        sess = ort.InferenceSession(str(model), sess_options=opts,
                                    providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        self._chars = ["", *meta["character"].splitlines(), " "]
        self._session = sess
        return sess

    def read(self, rgb: np.ndarray, origin: tuple[int, int] = (0, 0),
             boxes: Sequence[Box] | None = None) -> list[TextLine]:
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

    def _recognise(self, rgb: np.ndarray, boxes: list[Box],
                   origin: tuple[int, int]) -> list[TextLine]:
        cv2 = _cv2()
        sess = self._load()
        H = self.height
        ih, iw = rgb.shape[:2]
        crops: list[tuple[Box, np.ndarray]] = []
        for b in boxes:
            pad = max(2, b.h // 5)
            x0, y0 = max(0, b.x - pad), max(0, b.y - pad)
            x1, y1 = min(iw, b.right + pad), min(ih, b.bottom + pad)
            crops.append((Box(x0, y0, x1 - x0, y1 - y0), rgb[y0:y1, x0:x1]))
        crops.sort(key=lambda c: c[1].shape[1] / c[1].shape[0])
        out: list[TextLine] = []
        name = sess.get_inputs()[0].name
        for i in range(0, len(crops), self.batch):
            part = crops[i:i + self.batch]
            widths = [max(1, int(np.ceil(H * c.shape[1] / c.shape[0]))) for _, c in part]
            wmax = max(max(widths), H)
            arr = np.zeros((len(part), 3, H, wmax), np.float32)
            for j, ((_, img), w) in enumerate(zip(part, widths, strict=True)):
                r = cv2.resize(img, (w, H), interpolation=cv2.INTER_LINEAR)
                # The model was trained on BGR input normalised to [-1, 1].
                arr[j, :, :, :w] = r[:, :, ::-1].transpose(2, 0, 1) / 127.5 - 1.0
            preds = sess.run(None, {name: arr})[0]
            for j, ((box, img), w) in enumerate(zip(part, widths, strict=True)):
                line = self._decode(preds[j], w, wmax, box, img.shape[1], origin)
                if line is not None:
                    out.append(line)
        out.sort(key=lambda t: (t.box.y, t.box.x))
        return out

    def _decode(self, pred: np.ndarray, w: int, wmax: int, box: Box, crop_w: int,
                origin: tuple[int, int]) -> TextLine | None:
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
                if (steps_x[k - 1] > 1.8 * pitch0 and text[k] != " " and text[k - 1] != " "
                        and text[k] != text[k - 1]):
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
        pitch = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else box.w * 0.6
        spans: list[tuple[int, int]] = []
        ox, oy = origin[0] + box.x, origin[1]
        for k, x in enumerate(xs):
            left = (xs[k - 1] + x) / 2 if k else x - pitch / 2
            right = (xs[k + 1] + x) / 2 if k + 1 < len(xs) else x + pitch / 2
            spans.append((ox + max(0, int(left)), ox + min(crop_w, int(np.ceil(right)))))
        return TextLine(Box(ox, oy + box.y, box.w, box.h), s, conf, tuple(spans))
