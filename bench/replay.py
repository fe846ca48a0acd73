"""Benchmark of sessions: decision replay speed, recording overhead, bytes per step.

    python bench/replay.py [--json] [--steps N]

One run of the real actor loop on the shipped FakeComputer at 1280x800 (a desktop-like screen
whose content changes on every click, so every step has a new frame), driven by the shipped
ScriptedLLM, is done twice in the same process: recorder off (baseline) and recorder on.
Reported:

- ``record_overhead_ms_p50``: median time per loop step spent in ``SessionRecorder.write`` on
  the loop's thread (frame PNG encoding and blob writes run on the recorder's own thread);
- ``loop_step_ms_p50_off`` / ``loop_step_ms_p50_on`` and their ratio: the whole step, with
  and without the recorder, as a check that the background work does not leak into the loop;
- ``bytes_per_step``: the session folder's size divided by the number of actions;
- ``decision_replay_steps_per_s``: actions per second of ``decision_replay`` on the recorded
  frames (no sandbox), and ``decision_replay_records_per_s`` for all step records.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentcorp.actor.loop import ActorConfig, EpisodeTask, run_episode
from agentcorp.policy.base import AllowAll
from agentcorp.record.episode import episode_manifest, loop_runner
from agentcorp.record.recorder import SessionRecorder
from agentcorp.record.replay import decision_replay
from agentcorp.record.session import open_session
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import FunctionLLM, ScriptedLLM, tool_reply
from agentcorp.types import ActionStep, Box


def desktop() -> FakeComputer:
    """A busy 1280x800 screen: a menu bar, a table of text, and a counter that each click bumps."""
    rnd = random.Random(7)
    words = ["Invoice", "Acme", "Total", "Paid", "Due", "Customer", "Report", "Q3", "Books"]
    widgets = [Widget("menu", "label", Box(0, 0, 1280, 30), "File  Edit  View  Tools  Help")]
    for row in range(24):
        text = "   ".join(rnd.choice(words) + f" {rnd.randint(10, 9999)}" for _ in range(6))
        widgets.append(Widget(f"r{row}", "label", Box(20, 50 + row * 28, 1200, 26), text))
    widgets.append(Widget("next", "button", Box(1100, 740, 140, 40), "Next"))
    widgets.append(Widget("count", "label", Box(20, 745, 600, 30), "page 0"))
    fc = FakeComputer(widgets)

    def bump(c: FakeComputer) -> None:
        w = c.widget("count")
        n = int(w.text.split()[-1]) + 1
        w.text = f"page {n}"
        for i in range(24):  # the table scrolls: most of the screen changes
            c.widget(f"r{i}").text = c.widget(f"r{(i + 1) % 24}").text

    fc.widget("next").on_click = bump
    return fc


def script(n: int) -> list[Any]:
    return [tool_reply("click", x=936, y=608) for _ in range(n)] + [
        tool_reply("done", summary="paged through")
    ]


def run(
    n: int, folder: Path | None, latency_s: float = 0.0
) -> tuple[list[float], list[float], SessionRecorder | None]:
    """One loop run; per-action step times and per-action recorder times.

    ``latency_s`` stands in for the model's reply time (a real vision model takes seconds);
    the recorder's thread does its work while the loop waits, as it does in a real run.
    """
    cfg = ActorConfig(model="bench", image_history=3)
    task = EpisodeTask("page", "Page through the report")
    rec = None
    if folder is not None:
        rec = SessionRecorder(
            folder,
            task_id="page",
            spec_hash="0" * 64,
            sandbox_info={"screen": [1280, 800]},
            models={"actor": "bench"},
            extra=episode_manifest(task, cfg),
        )
    scripted = ScriptedLLM(script(n))
    model: Any = scripted
    if latency_s:

        def slow(request: Any) -> Any:
            time.sleep(latency_s)
            return scripted.complete(request)

        model = FunctionLLM(slow)
    gen = run_episode(desktop(), task, gate=AllowAll(), model=model, config=cfg)
    step_ms: list[float] = []
    rec_ms: list[float] = []
    t_step = time.perf_counter()
    in_rec = 0.0
    for step in gen:
        if rec is not None:
            t0 = time.perf_counter()
            rec.write(step)
            in_rec += time.perf_counter() - t0
        if isinstance(step, ActionStep):
            now = time.perf_counter()
            step_ms.append((now - t_step) * 1000)
            rec_ms.append(in_rec * 1000)
            t_step, in_rec = now, 0.0
    if rec is not None:
        rec.finish("pass")
    return step_ms[1:], rec_ms[1:], rec


def replay_speed(session: Any) -> tuple[int, float]:
    """Actions in ``session`` and the median seconds of 3 decision replays (no sandbox)."""
    actions = sum(isinstance(e.step, ActionStep) for e in session.events)
    reps: list[float] = []
    for _ in range(3):
        t0 = time.perf_counter()
        report = decision_replay(session, loop_runner(session))
        reps.append(time.perf_counter() - t0)
        if not report.ok:
            raise SystemExit(f"replay diverged: {report.divergence}")
    return actions, statistics.median(reps)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--steps", type=int, default=60, help="actions per run (default 60)")
    ap.add_argument(
        "--pairs", type=int, default=2, help="recorder off/on run pairs, interleaved (default 2)"
    )
    ap.add_argument(
        "--replay-steps",
        type=int,
        default=200,
        help="actions in the session replayed for speed (default 200)",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=100.0,
        help="stand-in model reply time per call (default 100 ms)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agentcorp-bench-replay-"))
    try:
        # Same run with the recorder off and on, interleaved so machine load hits both alike.
        lat = args.latency_ms / 1000
        off, on, sync = [], [], []
        cpu = {"off": 0.0, "on": 0.0}
        for i in range(args.pairs):
            c0 = time.process_time()
            off += run(args.steps, None, lat)[0]
            c1 = time.process_time()
            ms, rec_ms, _ = run(args.steps, tmp / f"s{i}", lat)
            cpu["off"] += c1 - c0
            cpu["on"] += time.process_time() - c1
            on += ms
            sync += rec_ms
        cpu_off = run(args.steps, None)[0]
        cpu_on = run(args.steps, tmp / "cpu")[0]
        bytes_per_step = folder_bytes(tmp / "s0") / (len(on) / args.pairs)
        session = open_session(tmp / "cpu")
        actions, best = replay_speed(session)
        # A longer session: every request carries the whole conversation's text, so the
        # per-step cost grows with the session's length.
        run(args.replay_steps, tmp / "long")
        long_actions, long_best = replay_speed(open_session(tmp / "long"))
        med = statistics.median
        result = {
            "steps": args.steps,
            "replay_steps": actions,
            "model_latency_ms": args.latency_ms,
            "record_overhead_ms_p50": round(med(on) - med(off), 2),
            "record_write_ms_p50": round(med(sync), 3),
            "loop_step_ms_p50_off": round(med(off), 2),
            "loop_step_ms_p50_on": round(med(on), 2),
            "loop_step_on_off_ratio": round(med(on) / med(off), 3),
            # CPU the recorder adds per step (all threads): steadier than wall time under load
            "record_cpu_ms_per_step": round((cpu["on"] - cpu["off"]) * 1000 / len(on), 2),
            "cpu_bound_record_overhead_ms_p50": round(med(cpu_on) - med(cpu_off), 2),
            "cpu_bound_on_off_ratio": round(med(cpu_on) / med(cpu_off), 3),
            "bytes_per_step": round(bytes_per_step),
            "decision_replay_steps_per_s": round(actions / best, 1),
            "decision_replay_records_per_s": round(len(session.events) / best, 1),
            "decision_replay_steps_per_s_long": round(long_actions / long_best, 1),
            "long_replay_steps": long_actions,
            "targets": {"decision_replay_steps_per_s": 500, "record_overhead_ms_p50": 2.0},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
