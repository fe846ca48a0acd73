"""Desktop grounding: the accessibility tree against full-frame OCR, in one run.

    python3 bench/desktop_grounding.py [--json] [--samples 15]

On a fresh Xvfb at 1280x800 with galculator (GTK) and featherpad (Qt) open, it times
(median and p95, milliseconds):

- ``tree_snapshot``: one AT-SPI snapshot of every showing element (names, roles, states,
  boxes, field texts), as the desktop takes it once per frame;
- ``tree_locate_cached``: ``AtspiGrounder.locate`` of a calculator key on a frame whose
  snapshot is cached (the second target of a step);
- ``ocr_full_read``: the baseline, a full-frame OCR read (the OCR engine's cache cleared
  before each sample), which is what grounding cost without the tree;

and counts which of the calculator's punctuation and one-character keys each source finds
(``*``, ``+``, ``=``, ``%``, ``+/-``, ``7``). Ratios are against the OCR baseline of this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable


def _times(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "median": round(statistics.median(ms), 2),
        "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
    }


def main() -> None:
    """Run the benchmark and print the figures (JSON with --json)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, default=15)
    args = ap.parse_args()

    from agentcorp.grounding.atspi import AtspiGrounder
    from agentcorp.grounding.ocr import OcrEngine
    from agentcorp.grounding.ocr_grounder import OcrGrounder
    from agentcorp.sandbox.apps import AppSpec
    from agentcorp.sandbox.xvfb import XvfbDesktop

    apps = [
        AppSpec("calc", ["galculator"], "galculator", timeout=60),
        AppSpec("pad", ["featherpad"], "Untitled", timeout=60),
    ]
    with XvfbDesktop(apps=apps) as desk:
        desk.settle()
        frame = desk.screenshot()
        tree = AtspiGrounder(desk)
        engine = OcrEngine.shared()
        ocr = OcrGrounder(engine)
        snap_ms = _times(lambda: desk.accessibility(fresh_for=object()), args.samples)
        desk.accessibility(fresh_for=frame)
        cached_ms = _times(lambda: tree.locate(frame, "+/-"), args.samples)

        def full() -> None:
            engine.clear_cache()
            ocr.reread(frame)

        ocr_ms = _times(full, max(3, args.samples // 3))
        symbols = ["*", "+", "=", "%", "+/-", "7"]
        found = {
            "tree": sum(bool(tree.locate(frame, s)) for s in symbols),
            "ocr": sum(bool(ocr.locate(frame, s)) for s in symbols),
        }
        snap = desk.accessibility(fresh_for=object())
        nodes = len(snap.nodes) if snap is not None else 0
    out = {
        "elements": nodes,
        "tree_snapshot_ms": _stats(snap_ms),
        "tree_locate_cached_ms": _stats(cached_ms),
        "ocr_full_read_ms": _stats(ocr_ms),
        "snapshot_vs_ocr": round(statistics.median(snap_ms) / statistics.median(ocr_ms), 3),
        "symbol_targets_found": {**found, "of": len(symbols)},
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
