"""Regenerate the labelled grounding set in tests/grounding/data/.

Captures real screens: gnumeric and mousepad on a private Xvfb (1280x800, openbox) and a form
page in Chromium (Playwright, Debian's /usr/bin/chromium), then writes PNG frames and
``labels.json``.

Where the expected boxes come from:
- browser frames: the DOM itself (``getBoundingClientRect`` of the element holding the text), an
  independent ground truth;
- desktop frames: a *reference* OCR pass that differs from the grounder under test (stock
  RapidOCR with its DB text detector at full resolution and per-character boxes), restricted to
  target texts chosen by hand below; every frame's overlay is written next to it under
  ``--overlays DIR`` so a person can check the boxes before committing.

A target found more than once by the reference is labelled ``ambiguous`` (the grounder must
report it, not pick one). Usage: ``python bench/make_grounding_set.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import numpy as np
from PIL import Image, ImageChops, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "grounding" / "data"
W, H = 1280, 800


# --- a private X desktop ---------------------------------------------------------------------


def _free_display() -> int:
    while True:
        n = random.randint(100, 999)
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n


@contextmanager
def desktop() -> Iterator[str]:
    """Xvfb + openbox on a free display; everything started is killed by PID afterwards."""
    n = _free_display()
    disp = f":{n}"
    procs: list[subprocess.Popen[bytes]] = []
    procs.append(
        subprocess.Popen(
            ["Xvfb", disp, "-screen", "0", f"{W}x{H}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("Xvfb did not start")
            time.sleep(0.05)
        env = {**os.environ, "DISPLAY": disp}
        procs.append(
            subprocess.Popen(
                ["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        time.sleep(0.5)
        os.environ["_GS_DISPLAY"] = disp
        yield disp
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def xdo(disp: str, *args: str) -> str:
    env = {**os.environ, "DISPLAY": disp}
    return subprocess.run(
        ["xdotool", *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def grab(disp: str) -> Image.Image:
    import mss

    with mss.mss(display=disp) as sct:
        shot = sct.grab(sct.monitors[0])
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")


def wait_stable(disp: str, timeout: float = 8.0) -> Image.Image:
    """Wait until two captures 300 ms apart are equal (capture-time only; not the product path)."""
    prev = grab(disp)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        cur = grab(disp)
        if ImageChops.difference(prev, cur).getbbox() is None:
            return cur
        prev = cur
    return prev


@contextmanager
def app(disp: str, argv: list[str], wm_class: str) -> Iterator[str]:
    env = {**os.environ, "DISPLAY": disp}
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wid = xdo(disp, "search", "--sync", "--onlyvisible", "--class", wm_class).split()[0]
        xdo(disp, "windowactivate", "--sync", wid)
        xdo(disp, "windowsize", wid, str(W), str(H))
        xdo(disp, "windowmove", wid, "0", "0")
        wait_stable(disp)
        yield wid
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


# --- reference labelling -----------------------------------------------------------------------

_FOLD = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l"})


def _fold(s: str) -> str:
    return re.sub(r"\s+", "", s.lower()).translate(_FOLD)


def reference_boxes(img: Image.Image, target: str) -> list[list[int]]:
    """Boxes of every word-aligned occurrence of ``target`` in the reference OCR of ``img``."""
    from rapidocr_onnxruntime import RapidOCR

    global _REF
    if "_REF" not in globals():
        _REF = RapidOCR(
            det_limit_side_len=1600,
            det_limit_type="max",
            intra_op_num_threads=1,
            inter_op_num_threads=1,
        )
    key = hash(img.tobytes())
    cache = _REF_CACHE.setdefault(key, None)
    if cache is None:
        bgr = np.asarray(img.convert("RGB"))[:, :, ::-1].copy()
        res, _ = _REF(bgr, use_cls=False, return_word_box=True)
        cache = _REF_CACHE[key] = res or []
    want = _fold(target)
    found: list[list[int]] = []
    for line in cache:
        text, cboxes, chars = line[1], line[3], line[4]
        # Rebuild folded text with a char->box map (spaces carry no box).
        folded: list[tuple[str, list[list[int]]]] = []
        raw_chars: list[tuple[str, list[list[int]]]] = []
        for ch, cb in zip(chars, cboxes, strict=False):
            if ch.strip():
                folded.append((ch.lower().translate(_FOLD), cb))
                raw_chars.append((ch, cb))
        s = "".join(c for c, _ in folded)
        raw = text.lower()
        start = 0
        while True:
            i = s.find(want, start)
            if i < 0:
                break
            # Word-aligned: the match must start and end at word boundaries of the raw text.
            words = raw.split()
            bounds, pos = set(), 0
            for w_ in words:
                bounds.add(pos)
                pos += len(_fold(w_))
                bounds.add(pos)
            # The recogniser sometimes drops spaces ("FileEditView"): a case change or a
            # non-letter also counts as a word boundary ("review" does not hold "View").
            rc = [c for c, _ in raw_chars]
            j = i + len(want)
            start_ok = (
                i in bounds
                or not rc[i - 1].isalnum()
                or (rc[i].isupper() and not rc[i - 1].isupper())
            )
            end_ok = (
                j in bounds
                or not rc[j].isalnum()
                or (rc[j].isupper() and not rc[j - 1].isupper())
                or (rc[j].isdigit() != rc[j - 1].isdigit())
            )
            if start_ok and end_ok:
                pts = [p for _, cb in folded[i : i + len(want)] for p in cb]
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                found.append([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
            start = i + 1
    return found


_REF_CACHE: dict[int, Any] = {}


def label(img: Image.Image, texts: list[tuple[str, str]], frame: str) -> list[dict[str, Any]]:
    """Label each target; ``MANY`` lists texts a person sees more than once on that screen.

    The reference may miss an occurrence, so ambiguity comes from the hand-written ``MANY``
    (checked against the reference when it does see several), boxes from the reference.
    """
    out = []
    for text, role in texts:
        boxes = reference_boxes(img, text)
        many = text in MANY.get(frame, ())
        if not boxes:
            print(f"  ! {frame}: reference OCR did not find {text!r}; dropped")
            continue
        if len(boxes) > 1 and not many:
            print(f"  ! {frame}: reference sees {text!r} {len(boxes)} times; add it to MANY")
        out.append({"text": text, "role": role, "ambiguous": many, "boxes": boxes})
    return out


MANY: dict[str, tuple[str, ...]] = {
    "gnumeric": ("Customer", "Paid"),
}


# --- the captures -----------------------------------------------------------------------------

GNUMERIC_CELLS = [
    ["Customer", "Amount", "Status"],
    ["Acme Corp", "1200", "Paid"],
    ["Globex Ltd", "950", "Overdue"],
    ["Initech", "430", "Paid"],
    ["Total", "2580", ""],
]
GNUMERIC_TARGETS = [
    ("File", "menu"),
    ("Edit", "menu"),
    ("View", "menu"),
    ("Insert", "menu"),
    ("Format", "menu"),
    ("Tools", "menu"),
    ("Statistics", "menu"),
    ("Data", "menu"),
    ("Help", "menu"),
    ("Customer", "text"),
    ("Amount", "text"),
    ("Status", "text"),
    ("Acme Corp", "text"),
    ("Globex Ltd", "text"),
    ("Initech", "text"),
    ("Total", "text"),
    ("Overdue", "text"),
    ("Paid", "text"),
    ("1200", "text"),
    ("950", "text"),
    ("Sheet1", "button"),
    ("Sans", "field"),
    ("100%", "field"),
    ("D", "text"),
    ("G", "text"),
    ("14", "text"),
    ("17", "text"),
]
MOUSEPAD_LINES = [
    "Quarterly report for Acme Corp",
    "Invoice 2041 approved by finance",
    "Contact: billing team, room 12",
    "Next review: Monday morning",
]
MOUSEPAD_TARGETS = [
    ("File", "menu"),
    ("Edit", "menu"),
    ("Search", "menu"),
    ("View", "menu"),
    ("Document", "menu"),
    ("Help", "menu"),
    ("Warning", "text"),
    ("root account", "text"),
    ("Quarterly report", "text"),
    ("Acme Corp", "text"),
    ("Invoice 2041", "text"),
    ("approved by finance", "text"),
    ("billing team", "text"),
    ("room 12", "text"),
    ("Next review", "text"),
    ("Monday morning", "text"),
]
MOUSEPAD_AFTER_TARGETS = [("Shipped to Globex", "text"), ("Monday morning", "text")]

FORM_HTML = """<!doctype html><html><head><meta charset="utf-8"><title>Back office</title>
<style>
body{font-family:DejaVu Sans,sans-serif;margin:24px;background:#fafafa}
header{background:#1f4e8c;color:#fff;padding:10px 16px;font-size:18px}
nav a{margin-right:18px;color:#1a55a8}
label{display:inline-block;width:120px}
.row{margin:10px 0}
input{width:220px;padding:4px}
button{padding:6px 14px;margin-right:10px}
.primary{background:#2563eb;color:#fff;border:0}
table{border-collapse:collapse;margin-top:18px}
td,th{border:1px solid #ccc;padding:4px 12px}
</style></head><body>
<header>Orders administration</header>
<nav><a href="#">Dashboard</a><a href="#">Customers</a><a href="#">Invoices</a>
<a href="#">Reports</a></nav>
<h2>New order</h2>
<div class="row"><label for="c">Customer</label><input id="c"></div>
<div class="row"><label for="a">Amount</label><input id="a"></div>
<div class="row"><label for="r">Reference</label><input id="r"></div>
<div class="row"><button class="primary">Save order</button><button>Cancel</button>
<button>Delete draft</button></div>
<table><tr><th>Order</th><th>Client</th><th>Action</th></tr>
<tr><td>A-1001</td><td>Acme Corp</td><td><a href="#">Edit</a></td></tr>
<tr><td>A-1002</td><td>Globex Ltd</td><td><a href="#">Edit</a></td></tr>
<tr><td>A-1003</td><td>Initech</td><td><a href="#">Edit</a></td></tr></table>
<p>Signed in as <b>operator</b></p>
</body></html>"""
FORM_TARGETS = [
    ("Orders administration", "text"),
    ("Dashboard", "link"),
    ("Customers", "link"),
    ("Invoices", "link"),
    ("Reports", "link"),
    ("New order", "text"),
    ("Customer", "text"),
    ("Amount", "text"),
    ("Reference", "text"),
    ("Save order", "button"),
    ("Cancel", "button"),
    ("Delete draft", "button"),
    ("Order", "text"),
    ("Client", "text"),
    ("A-1001", "text"),
    ("A-1002", "text"),
    ("A-1003", "text"),
    ("Globex Ltd", "text"),
    ("Initech", "text"),
    ("Edit", "link"),
    ("operator", "text"),
]


def capture_gnumeric(out: Path) -> dict[str, Any]:
    with desktop() as disp, app(disp, ["gnumeric", "--no-splash"], "gnumeric"):
        for row in GNUMERIC_CELLS:
            for val in row:
                if val:
                    xdo(disp, "type", "--delay", "10", val)
                xdo(disp, "key", "Tab")
            xdo(disp, "key", "Home", "Down")
        xdo(disp, "key", "ctrl+Home")
        img = wait_stable(disp)
    img.save(out / "gnumeric.png", optimize=True)
    return {
        "file": "gnumeric.png",
        "app": "gnumeric",
        "targets": label(img, GNUMERIC_TARGETS, "gnumeric"),
    }


def capture_mousepad(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="gset-"))
    doc = tmp / "report.txt"
    doc.write_text("\n".join(MOUSEPAD_LINES) + "\n")
    try:
        with desktop() as disp, app(disp, ["mousepad", str(doc)], "mousepad"):
            before = wait_stable(disp)
            xdo(disp, "key", "ctrl+End")
            xdo(disp, "type", "--delay", "10", "Shipped to Globex")
            after = wait_stable(disp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    before.save(out / "mousepad.png", optimize=True)
    after.save(out / "mousepad_after.png", optimize=True)
    bbox = ImageChops.difference(before, after).getbbox()
    assert bbox is not None
    changed = [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]]
    frame = {
        "file": "mousepad.png",
        "app": "mousepad",
        "targets": label(before, MOUSEPAD_TARGETS, "mousepad"),
    }
    inc = {
        "before": "mousepad.png",
        "after": "mousepad_after.png",
        "changed": changed,
        "targets": label(after, MOUSEPAD_AFTER_TARGETS, "mousepad_after"),
    }
    return frame, inc


def capture_form(out: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="gset-web-"))
    (tmp / "index.html").write_text(FORM_HTML)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(tmp), **k)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": W, "height": H})
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/index.html")
            page.screenshot(path=str(out / "form.png"))
            targets = []
            for text, role in FORM_TARGETS:
                boxes = page.evaluate(
                    """(t) => {
                      const out = [];
                      const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                      while (walk.nextNode()) {
                        const n = walk.currentNode, s = n.textContent;
                        let i = s.indexOf(t);
                        while (i >= 0) {
                          const before = i === 0 || /\\W/.test(s[i-1]);
                          const after = i + t.length === s.length || /\\W/.test(s[i+t.length]);
                          if (before && after) {
                            const r = document.createRange();
                            r.setStart(n, i); r.setEnd(n, i + t.length);
                            const b = r.getBoundingClientRect();
                            out.push([Math.round(b.x), Math.round(b.y),
                                      Math.round(b.width), Math.round(b.height)]);
                          }
                          i = s.indexOf(t, i + 1);
                        }
                      }
                      return out;
                    }""",
                    text,
                )
                targets.append(
                    {"text": text, "role": role, "ambiguous": len(boxes) > 1, "boxes": boxes}
                )
            fields = []
            for text in ("Customer", "Amount", "Reference"):
                bb = page.get_by_label(text, exact=True).bounding_box()
                assert bb is not None
                fields.append(
                    {
                        "label": text,
                        "box": [
                            round(bb["x"]),
                            round(bb["y"]),
                            round(bb["width"]),
                            round(bb["height"]),
                        ],
                    }
                )
            browser.close()
    finally:
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"file": "form.png", "app": "chromium", "targets": targets, "fields": fields}


def overlay(out: Path, frame: dict[str, Any], dest: Path) -> None:
    img = Image.open(out / frame["file"]).convert("RGB")
    d = ImageDraw.Draw(img)
    for t in frame["targets"]:
        for x, y, w, h in t["boxes"]:
            d.rectangle(
                (x, y, x + w, y + h), outline=(255, 0, 0) if t["ambiguous"] else (0, 160, 0)
            )
    img.save(dest / f"overlay_{frame['file']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--overlays", type=Path, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    gn = capture_gnumeric(args.out)
    mp, inc = capture_mousepad(args.out)
    fm = capture_form(args.out)
    labels = {"version": 1, "size": [W, H], "frames": [gn, mp, fm], "incremental": [inc]}
    (args.out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    n = sum(len(f["targets"]) for f in labels["frames"]) + len(inc["targets"])
    print(f"wrote {n} targets in {len(labels['frames'])} frames to {args.out}")
    if args.overlays:
        args.overlays.mkdir(parents=True, exist_ok=True)
        for f in labels["frames"]:
            overlay(args.out, f, args.overlays)


if __name__ == "__main__":
    main()
