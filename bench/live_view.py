"""The console's live view: how fast a person's input shows, against doing it directly.

    python3 bench/live_view.py [--json] [--samples 30]

On a fresh Xvfb at 1280x800 with mousepad (maximized), a console holds a control lease on a
task and a ``LiveDriver`` serves it over loopback HTTP, exactly as a parked agent does. It
times, per typed character (median and p95):

- live: from the page's ``POST /api/input/TASK`` until the console holds a live frame taken
  after the input ran (what the page loads next);
- direct (the baseline, same run): the same ``type`` on the desktop, settle, capture and
  JPEG encode of the frame, with no console in between;

and the agent side's polls per second while idle (the upper bound of the frame rate; frames
are only sent when the screen changed).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentcorp.console import Console  # noqa: E402
from agentcorp.console.client import ConsoleClient  # noqa: E402
from agentcorp.console.live import LiveDriver  # noqa: E402
from agentcorp.sandbox.apps import AppSpec  # noqa: E402
from agentcorp.sandbox.encode import model_image  # noqa: E402
from agentcorp.sandbox.xvfb import XvfbDesktop  # noqa: E402


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]


def _stats(xs: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(xs), 1), "p95": round(_p95(xs), 1), "n": len(xs)}


def direct(desk: XvfbDesktop, samples: int) -> list[float]:
    """Type one character, settle, capture, encode: the floor without the console."""
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        desk.type("x")
        desk.settle(timeout=1.0)
        img = model_image(desk.screenshot(), 1280).convert("RGB")
        img.save(io.BytesIO(), format="JPEG", quality=75)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def live(console: Console, desk: XvfbDesktop, samples: int) -> tuple[list[float], float]:
    """Inputs through the console to a live frame taken after them; idle polls per second."""
    base, token = console.server.base_url, console.server.token
    page = {"Authorization": f"Bearer {token}", "X-Agentcorp-Console": "1"}
    with console.state.cond:
        console.state.task("t").status = "running"
    key = httpx.post(
        f"{base}/api/lease/t", json={"op": "take", "who": "bench"}, headers=page, timeout=10
    ).json()["key"]
    client = ConsoleClient(base, token)
    polls: list[float] = []

    def exchange(task_id: str, payload: dict[str, Any], wait_s: float) -> Any:
        polls.append(time.perf_counter())
        return client._exchange(task_id, payload, wait_s)

    driver = LiveDriver(desk)
    agent = threading.Thread(target=driver.drive, args=("t", exchange), daemon=True)
    agent.start()
    book = console.server.live
    while not (book.snapshot().get("t") or {}).get("frame"):
        time.sleep(0.01)
    time.sleep(2.0)
    n0, t0 = len(polls), time.perf_counter()
    time.sleep(3.0)
    idle_rate = (len(polls) - n0) / (time.perf_counter() - t0)
    out = []
    for _ in range(samples):
        frame0 = book.snapshot()["t"]["frame"]
        t0 = time.perf_counter()
        r = httpx.post(
            f"{base}/api/input/t",
            json={"who": "bench", "key": key, "event": {"kind": "type", "text": "y"}},
            headers=page,
            timeout=10,
        )
        n = r.json()["id"]
        while True:
            info = book.snapshot()["t"]
            if info["done"] >= n and info["frame"] > frame0:
                break
            time.sleep(0.002)
        out.append((time.perf_counter() - t0) * 1000)
    httpx.post(
        f"{base}/api/lease/t", json={"op": "release", "who": "bench"}, headers=page, timeout=10
    )
    agent.join(10)
    return out, idle_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="live-bench-"))
    (tmp / "notes.txt").write_text("Notes\n")
    desk = XvfbDesktop(
        screen=(1280, 800),
        apps=[
            AppSpec("notes", ["mousepad", "~/notes.txt"], wait_for_window="notes", maximize=True)
        ],
        files={"~/notes.txt": tmp / "notes.txt"},
        home=tmp / "home",
    )
    try:
        desk.settle(timeout=5.0)
        desk.key("ctrl+End")
        base = direct(desk, args.samples)
        with Console("127.0.0.1:0") as console:
            via, idle = live(console, desk, args.samples)
    finally:
        desk.close()
    result = {
        "direct_type_settle_capture_encode_ms": _stats(base),
        "live_input_to_frame_ms": _stats(via),
        "ratio_p50": round(statistics.median(via) / statistics.median(base), 2),
        "idle_polls_per_s": round(idle, 2),
    }
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
