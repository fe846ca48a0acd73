"""Grounding benchmark: locate latency (full frame, incremental), accuracy, cached run.

Usage: ``python bench/grounding.py [--json] [--repeats N] [--no-live]``

- Full-frame locate: a cold ``OcrGrounder`` on each labelled frame (gnumeric, mousepad,
  Chromium form), wall and CPU ms; cold means no last frame *and* an empty crop cache, so
  every line is detected and recognised. The baseline is plain tesseract 5.3 on the same
  full frame (the CLI, ``OMP_THREAD_LIMIT=1``), measured in the same run and graded with the
  same matcher. The same locate with two onnxruntime threads is measured alongside.
- Incremental locate: on a live mousepad (Xvfb), type a word, settle, then
  ``update(frame, changed)`` + ``locate`` of the typed word; plus the labelled before/after pair.
- Accuracy: the labelled set in tests/grounding/data (top-1, ambiguous labels must be
  reported, a resolved wrong box is a silent wrong).
- Cached run: a steps-only task run once by the actor (OCR grounding, no model), cached,
  then run again from the cache on the live desktop; actions per second of both.

Times are medians over the repeats; the machine is shared, so CPU ms are printed next to
wall ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentcorp.grounding.base import Grounder  # noqa: E402
from agentcorp.grounding.ocr import OcrEngine, TextLine  # noqa: E402
from agentcorp.grounding.ocr_grounder import OcrGrounder  # noqa: E402
from agentcorp.types import Box  # noqa: E402
from tests.grounding._data import Score, frame, labels, score_frame  # noqa: E402


def p50(xs: list[float]) -> float:
    return round(statistics.median(xs), 1) if xs else float("nan")


class TesseractGrounder(OcrGrounder):
    """The baseline: plain tesseract on the whole frame, words joined into its own lines."""

    def _full(self, px: Any, source: Any = None) -> list[TextLine]:
        from PIL import Image

        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            Image.fromarray(px).save(f.name)
            out = subprocess.run(
                ["tesseract", f.name, "-", "tsv"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            ).stdout
        lines: dict[tuple[str, str, str], list[tuple[str, Box, float]]] = {}
        for row in out.splitlines()[1:]:
            c = row.split("\t")
            if len(c) < 12 or c[0] != "5" or not c[11].strip():
                continue
            box = Box(int(c[6]), int(c[7]), int(c[8]), int(c[9]))
            lines.setdefault((c[2], c[3], c[4]), []).append((c[11], box, float(c[10]) / 100))
        result: list[TextLine] = []
        for words in lines.values():
            text, chars = "", []
            box = words[0][1]
            for w, b, _ in words:
                if text:
                    text += " "
                    chars.append((chars[-1][1], b.x))
                step = b.w / max(1, len(w))
                chars.extend(
                    (int(b.x + k * step), int(b.x + (k + 1) * step)) for k in range(len(w))
                )
                text += w
                box = box.union(b)
            conf = sum(c for _, _, c in words) / len(words)
            result.append(TextLine(box, text, max(0.0, conf), tuple(chars)))
        self._state = None
        self.last_read = "full"
        self._whole = True  # every read is whole: a miss needs no second full read
        return result

    def lines(self, frame: Any) -> list[TextLine]:
        from agentcorp.grounding.ocr_grounder import frame_array

        return self._full(frame_array(frame))


def _cpu() -> float:
    """CPU seconds of this process and of the children it waited for (the tesseract CLI)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def full_frame(
    g: OcrGrounder, repeats: int, per_frame: dict[str, list[float]] | None = None
) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(repeats):
        for f in labels()["frames"]:
            fr = frame(f["file"])
            g.reset()
            g.engine.clear_cache()  # a fresh screen: nothing of it was ever read
            t0, c0 = time.perf_counter(), _cpu()
            g.locate(fr, f["targets"][0]["text"])
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((_cpu() - c0) * 1000)
            if per_frame is not None:
                per_frame.setdefault(f["app"], []).append(wall[-1])
    return wall, cpu


def accuracy(g: Grounder) -> Score:
    s = Score()
    for f in labels()["frames"]:
        if isinstance(g, OcrGrounder):
            g.reset()
        score_frame(g, frame(f["file"]), f["targets"], s)
    for inc in labels()["incremental"]:
        if isinstance(g, OcrGrounder):
            g.reset()
            g.lines(frame(inc["before"]))
        score_frame(g, frame(inc["after"]), inc["targets"], s)
    return s


def pair_incremental(g: OcrGrounder, repeats: int) -> list[float]:
    inc = labels()["incremental"][0]
    out = []
    for _ in range(repeats):
        g.reset()
        g.engine.clear_cache()  # only what this grounder read of "before" may be reused
        g.lines(frame(inc["before"]))
        t0 = time.perf_counter()
        g.update(frame(inc["after"]), Box(*inc["changed"]))
        g.locate(frame(inc["after"]), inc["targets"][0]["text"])
        out.append((time.perf_counter() - t0) * 1000)
    return out


def live(repeats: int) -> dict[str, Any]:
    """Incremental locate and cached run on a real mousepad on Xvfb."""
    from agentcorp.actor import Actor, EpisodeTask
    from agentcorp.grounding.cache import entries_from_steps, run_cached
    from agentcorp.policy.base import AllowAll
    from agentcorp.sandbox.apps import AppSpec
    from agentcorp.sandbox.xvfb import XvfbDesktop

    tmp = Path(tempfile.mkdtemp(prefix="bench-grounding-"))
    src = tmp / "notes.txt"
    src.write_text(
        "Quarterly report for Acme Corp\nInvoice 2041 approved\nNext review: Monday morning\n\n"
    )
    out: dict[str, Any] = {}
    with XvfbDesktop(
        apps=[
            AppSpec(
                "notes", ["mousepad", "~/notes.txt"], wait_for_window="notes.txt", maximize=True
            )
        ],
        files={"~/notes.txt": src},
        home=tmp / "home",
    ) as desk:
        g = OcrGrounder()
        deadline = time.monotonic() + 5
        while os.geteuid() == 0 and not g.locate(desk.screenshot(), "root account"):
            if time.monotonic() > deadline:
                break
            desk.wait(0.1)
        desk.settle(timeout=1.0)
        # 1. the task by steps (OCR grounding, no model), recorded
        steps = [
            {"click": "Monday morning"},
            {"key": "End"},
            {"type": " and lunch"},
            {"key": "ctrl+s"},
        ]
        g.reset()
        t0 = time.perf_counter()
        gen = Actor(desk, gate=AllowAll(), model=None, grounder=g).run(
            EpisodeTask("notes", "append", steps=steps)
        )
        records = []
        try:
            while True:
                records.append(next(gen))
        except StopIteration as stop:
            res = stop.value
        t_steps = time.perf_counter() - t0
        out["steps_task_status"] = res.status
        entries = entries_from_steps(records, g)
        out["steps_actions_per_s"] = round(len(entries) / t_steps, 1)
        # 2. cached run, repeated on the same document
        done, spent = 0, 0.0
        for _ in range(repeats):
            r = run_cached(desk, entries, g)
            if not r.ok:
                out["cached_run_divergence"] = str(r.divergence)
                break
            done += r.done
            spent += r.elapsed_s
        out["cached_actions_per_s"] = round(done / spent, 1) if spent else 0.0
        out["cached_run_live"] = True
        # 3. incremental: type a word at the end, settle, update + locate it
        desk.key("ctrl+End")
        g.reset()
        g.lines(desk.screenshot())
        inc, areas = [], []
        for k in range(repeats * 2):
            before = desk.screenshot()
            word = f"Parcel{k}x"
            desk.type(word + " ")
            settled = desk.settle(timeout=2.0, since=before)
            t0 = time.perf_counter()
            g.update(settled.frame, settled.changed)
            found = g.locate(settled.frame, word)
            inc.append((time.perf_counter() - t0) * 1000)
            if settled.changed is not None:
                areas.append(settled.changed.w * settled.changed.h)
            if not found:
                out.setdefault("incremental_misses", []).append(word)
        out["locate_incremental_ms_p50"] = p50(inc)
        out["incremental_changed_px_p50"] = int(statistics.median(areas)) if areas else 0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="grounding benchmark")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-live", action="store_true", help="skip the live Xvfb part")
    args = ap.parse_args()

    ours = OcrGrounder(OcrEngine())
    ours.locate(frame("form.png"), "warm up")  # load the model once
    by_app: dict[str, list[float]] = {}
    wall, cpu = full_frame(ours, args.repeats, by_app)
    two = OcrGrounder(OcrEngine(threads=2))
    two.locate(frame("form.png"), "warm up")
    wall2, cpu2 = full_frame(two, max(1, args.repeats // 2))
    base = TesseractGrounder(OcrEngine(cache_size=0))
    bwall, bcpu = full_frame(base, max(1, args.repeats // 2))
    s = accuracy(OcrGrounder())
    bs = accuracy(base)
    result: dict[str, Any] = {
        "locate_full_ms_p50": p50(wall),
        "locate_full_cpu_ms_p50": p50(cpu),
        "locate_full_ms_p50_by_app": {k: p50(v) for k, v in by_app.items()},
        "locate_full_2threads_ms_p50": p50(wall2),
        "locate_full_2threads_cpu_ms_p50": p50(cpu2),
        "baseline_tesseract_full_ms_p50": p50(bwall),
        "baseline_tesseract_full_cpu_ms_p50": p50(bcpu),
        "top1_accuracy": round(s.right / s.total, 4),
        "labelled_targets": s.total,
        "silent_wrong": s.silent_wrong,
        "baseline_tesseract_top1_accuracy": round(bs.right / bs.total, 4),
        "baseline_tesseract_silent_wrong": bs.silent_wrong,
        "locate_incremental_pair_ms_p50": p50(pair_incremental(OcrGrounder(), args.repeats)),
        "misses": s.misses,
    }
    if args.no_live:
        result.update(
            locate_incremental_ms_p50=result["locate_incremental_pair_ms_p50"],
            cached_actions_per_s=None,
            cached_run_live=False,
        )
    else:
        result.update(live(args.repeats))
    result["ratio_full_vs_tesseract"] = round(
        result["baseline_tesseract_full_ms_p50"] / result["locate_full_ms_p50"], 2
    )
    if result.get("cached_actions_per_s") and result.get("steps_actions_per_s"):
        result["ratio_cached_vs_steps"] = round(
            result["cached_actions_per_s"] / result["steps_actions_per_s"], 2
        )
    load = os.getloadavg()[0]
    result["load_avg_1m"] = round(load, 2)
    if args.json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:40} {v}")


if __name__ == "__main__":
    main()
