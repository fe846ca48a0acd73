"""Batched tool calls vs one call per reply: model round trips, prompt tokens and wall time.

    python bench/batched_calls.py [--json] [--fields 6] [--repeats 5] [--latency 0.05]

Fills a form of ``--fields`` fields and presses Save on the in-memory ``FakeComputer``, with
the loopback fake OpenAI server playing the model (real HTTP, ``--latency`` seconds per reply,
standing in for a model's think time). The same actions are scripted twice: one tool call per
reply (the contract before batching), and all of them in one reply. Prompt tokens are the fake
server's estimate from each request's size (10 + chars/4 + 85 per image), the same for both
modes. Prints medians and the ratios batched/one-by-one, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentcorp.actor import Actor, ActorConfig, BudgetMeter, Budgets, EpisodeTask
from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.policy.base import AllowAll
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import Box

# 1280x800 screen, 1024x640 model frame: model = screen * 0.8.
SCALE = 0.8


def form(fields: int) -> FakeComputer:
    widgets = []
    for i in range(fields):
        y = 60 + i * 60
        widgets.append(Widget(f"l{i}", "label", Box(40, y, 140, 30), f"Field {i}"))
        widgets.append(Widget(f"f{i}", "field", Box(200, y, 400, 30), f"Field {i}"))
    widgets.append(Widget("save", "button", Box(200, 60 + fields * 60, 120, 40), "Save"))
    return FakeComputer(widgets, size=(1280, 800))


def calls(fields: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(fields):
        x, y = round(400 * SCALE), round((75 + i * 60) * SCALE)
        out.append({"name": "click", "arguments": {"x": x, "y": y}})
        out.append({"name": "type", "arguments": {"text": f"value {i}"}})
    save = {"x": round(260 * SCALE), "y": round((80 + fields * 60) * SCALE)}
    out.append({"name": "click", "arguments": save})
    return out


def script(fields: int, batched: bool, latency: float) -> list[dict[str, Any]]:
    todo = calls(fields)
    groups = [todo] if batched else [[c] for c in todo]
    done = [{"name": "done", "arguments": {"summary": "form saved"}}]
    return [
        {"when": {"purpose": "act"}, "tool_calls": g, "delay": latency} for g in [*groups, done]
    ]


def run_once(fields: int, batched: bool, latency: float) -> dict[str, float]:
    fc = form(fields)
    with FakeOpenAIServer(script(fields, batched, latency)) as srv:
        client = OpenAIClient(
            custom(srv.base_url, actor_model="fake-actor"),
            api_key="sk-bench-0123456789abcdef",
            timeout=30.0,
            retry=RetryPolicy(max_attempts=1),
        )
        try:
            meter = BudgetMeter(Budgets())
            actor = Actor(
                fc,
                gate=AllowAll(),
                model=client,
                meter=meter,
                config=ActorConfig(model="fake-actor"),
            )
            t0 = time.perf_counter()
            _, result = drive(actor.run(EpisodeTask("bench", "Fill the form and save")))
            wall = time.perf_counter() - t0
        finally:
            client.close()
        srv.assert_complete()
        requests = len(srv.chat_requests)
    filled = all(fc.widget(f"f{i}").value == f"value {i}" for i in range(fields))
    if result.status != "done" or not filled or fc.widget("save").clicks != 1:
        raise SystemExit(f"batched_calls: the {'batched' if batched else 'single'} run failed")
    usage = meter.usage
    return {"requests": requests, "prompt_tokens": usage.prompt_tokens, "wall_s": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fields", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.05)
    ns = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"single": [], "batched": []}
    for _ in range(ns.repeats):
        for mode in ("single", "batched"):  # interleaved, so load drifts hit both alike
            runs[mode].append(run_once(ns.fields, mode == "batched", ns.latency))
    med = {
        mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()
    }
    out = {
        "fields": ns.fields,
        "actions": 2 * ns.fields + 1,
        "model_latency_s": ns.latency,
        "repeats": ns.repeats,
        "single": med["single"],
        "batched": med["batched"],
        "ratio_requests": med["batched"]["requests"] / med["single"]["requests"],
        "ratio_prompt_tokens": med["batched"]["prompt_tokens"] / med["single"]["prompt_tokens"],
        "ratio_wall": med["batched"]["wall_s"] / med["single"]["wall_s"],
    }
    print(json.dumps(out, indent=None if ns.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
