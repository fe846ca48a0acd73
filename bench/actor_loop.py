"""Actor-loop overhead: what the loop itself adds per step, on top of the computer's own work.

Usage: ``python bench/actor_loop.py [--json] [--steps N]``

Drives N key steps through ``Actor`` on a ``FakeComputer`` (1280x800) with the real policy
gate and, interleaved step by step in the same run (the baseline), the same work done
directly on a second FakeComputer: ``key`` + ``settle`` + frame hash + ``encode_observation``,
what any loop that shows a model the screen must do. The paired difference is the loop's own
overhead: step records, gate check, budget accounting, bookkeeping. Model turns (a
``ScriptedLLM``: tool-call parsing, coordinate mapping, history with image truncation,
request hashing) are measured the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentcorp.actor import Actor, ActorConfig, BudgetMeter, Budgets, EpisodeTask  # noqa: E402
from agentcorp.policy.factory import build_gate  # noqa: E402
from agentcorp.sandbox.encode import encode_observation  # noqa: E402
from agentcorp.testing.fake_computer import FakeComputer, Widget  # noqa: E402
from agentcorp.testing.scripted import ScriptedLLM, tool_reply  # noqa: E402
from agentcorp.types import ActionStep, Box  # noqa: E402


def _computer() -> FakeComputer:
    return FakeComputer([Widget("b", "button", Box(100, 100, 120, 40), "Save")])


def _paired(n: int, model: bool) -> tuple[list[float], list[float]]:
    """Per step: the loop's wall ms and, right after, the same work done directly.

    Interleaving the two cancels the drift of a machine shared with other jobs; the
    difference of each pair is the loop's own overhead for that step.
    """
    fc, direct_fc = _computer(), _computer()
    llm = ScriptedLLM([tool_reply("key", keys="a")] * (n + 1) + [tool_reply("done", summary="ok")])
    actor = Actor(
        fc,
        gate=build_gate({}, None),
        model=llm if model else None,
        meter=BudgetMeter(Budgets()),
        config=ActorConfig(model="m", image_history=3),
    )
    task = EpisodeTask("bench", "press a", steps=[] if model else [{"key": "a"}] * (n + 1))
    gen = actor.run(task)

    def next_action() -> None:
        while not isinstance(next(gen), ActionStep):
            pass

    next_action()  # the initial observation and the first action
    frame = direct_fc.screenshot()
    loop_ms: list[float] = []
    direct_ms: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        next_action()  # result + observation of the previous action, then the next action
        loop_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        direct_fc.key("a")
        frame = direct_fc.settle(2.0, since=frame).frame
        frame.sha256  # noqa: B018  (the observation record carries the frame hash)
        encode_observation(frame, 1024, "jpeg", 75)
        direct_ms.append((time.perf_counter() - t) * 1000)
    return loop_ms, direct_ms


def _diff(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    s_loop, s_direct = _paired(args.steps, model=False)
    m_loop, m_direct = _paired(args.steps, model=True)
    p50 = statistics.median
    result = {
        "steps": args.steps,
        "direct_step_ms_p50": round(p50(s_direct), 3),
        "scripted_step_ms_p50": round(p50(s_loop), 3),
        "model_step_ms_p50": round(p50(m_loop), 3),
        "loop_overhead_ms_p50": round(p50(_diff(s_loop, s_direct)), 3),
        "model_turn_overhead_ms_p50": round(p50(_diff(m_loop, m_direct)), 3),
        "ratio_scripted_vs_direct": round(p50(s_loop) / p50(s_direct), 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
