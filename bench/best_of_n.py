"""Best-of-N against a flaky model: pass@1 vs best-of-3, and the wall time of 3 parallel rollouts.

    python bench/best_of_n.py [--json] [--trials N] [--p-wrong P] [--seed S]

A real task (a real Xvfb desktop with mousepad: append a line to the log and save it) driven by
the loopback ``FakeOpenAIServer`` playing a flaky actor model: each rollout's first reply types
the right line with probability 1 - P, a wrong one with probability P (seeded), then saves;
its next reply says done. The success check (file_contains) decides. Each trial is one
``agentcorp.run`` of the task, the baseline with one attempt, then with ``attempts: {n: 3,
parallel: true}``, in the same process. Reported: ``pass_at_1``, ``best_of_n_pass_rate``,
``wall_one_s_p50``, ``wall_best_of_n_s_p50`` and their ratio (rollouts are threads of one
worker, each with its own desktop).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RIGHT = "2026-12-01 onboarding call logged"
COMPANY = """\
version: 1
company: best-of-n-bench
roles:
  clerk: {title: Clerk, sandbox: desk}
sandboxes:
  desk:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/log.txt"], wait_for_window: log}
    files: {"~/log.txt": log.txt}
tasks:
  - id: log-call
    role: clerk
    description: Append the line "RIGHT" at the end of the log and save it.
    success: {check: file_contains, path: "~/log.txt", text: "RIGHT"}
    budgets: {steps: 10}
ATTEMPTS"""


def _script(rng: random.Random, rollouts: int, p_wrong: float) -> list[dict[str, Any]]:
    """One first reply per rollout (right or wrong at random), and done after any save."""
    done = {
        "when": {"text_contains": "pressed ctrl+s"},
        "times": "forever",
        "tool_calls": [{"name": "done", "arguments": {"summary": "line added and saved"}}],
    }
    firsts = []
    for _ in range(rollouts):
        text = "2026-12-01 onboarding cal logged" if rng.random() < p_wrong else RIGHT
        firsts.append(
            {
                "tool_calls": [
                    {"name": "key", "arguments": {"keys": "ctrl+End"}},
                    {"name": "type", "arguments": {"text": f" {text}"}},
                    {"name": "key", "arguments": {"keys": "ctrl+s"}},
                ]
            }
        )
    return [done, *firsts]


def _trial(root: Path, n: int, script: list[dict[str, Any]]) -> tuple[bool, float]:
    import agentcorp
    from agentcorp.testing.fake_openai import FakeOpenAIServer

    folder = Path(tempfile.mkdtemp(dir=root))
    (folder / "log.txt").write_text("log:")
    attempts = f"    attempts: {{n: {n}, parallel: true}}\n" if n > 1 else ""
    text = COMPANY.replace("RIGHT", RIGHT).replace("ATTEMPTS", attempts)
    (folder / "company.yaml").write_text(text)
    with FakeOpenAIServer(script) as srv:
        t0 = time.perf_counter()
        report = agentcorp.run(
            folder / "company.yaml",
            sessions=folder / "run",
            environ={},
            provider="custom",
            base_url=srv.base_url,
            actor_model="fake-actor",
            no_plan=True,
            no_cache=True,
        )
        wall = time.perf_counter() - t0
    return report.passed, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--p-wrong", type=float, default=0.5)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    ns = parser.parse_args()
    rng = random.Random(ns.seed)
    one: list[tuple[bool, float]] = []
    best: list[tuple[bool, float]] = []
    with tempfile.TemporaryDirectory(prefix="agentcorp-bench-bon-") as tmp:
        root = Path(tmp)
        for _ in range(ns.trials):
            one.append(_trial(root, 1, _script(rng, 1, ns.p_wrong)))
            best.append(_trial(root, ns.n, _script(rng, ns.n, ns.p_wrong)))
    wall_one = statistics.median(w for _, w in one)
    wall_best = statistics.median(w for _, w in best)
    doc = {
        "trials": ns.trials,
        "n": ns.n,
        "p_wrong": ns.p_wrong,
        "seed": ns.seed,
        "pass_at_1": sum(p for p, _ in one) / len(one),
        "best_of_n_pass_rate": sum(p for p, _ in best) / len(best),
        "wall_one_s_p50": round(wall_one, 3),
        "wall_best_of_n_s_p50": round(wall_best, 3),
        "wall_ratio": round(wall_best / wall_one, 3),
    }
    print(json.dumps(doc) if ns.json else json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
