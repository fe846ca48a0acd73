"""Benchmark of skills: learn each task once with the model, then run input rows from the skill.

    python bench/skills.py [--json] [--rows M] [--latency S] [--baseline N]

Three model-driven tasks (no ``steps``) from ``agentcorp.testing.skills_apps``: a Tk form on
our own Xvfb, a text log in mousepad, and a web form in Chromium through Playwright. The
model is the shipped fake OpenAI server (``agentcorp.testing.fake_openai``, real HTTP on
loopback) answering every call after ``--latency`` seconds (default 1.0 s, a fast hosted
model's tool call). Per task, in the same process and on the same sandboxes:

1. baseline: ``--baseline`` instances (default 3) with skills off, every action decided by
   the model: the wall time per instance of the model path;
2. one instance learns the skill (model path, skills on);
3. ``--rows`` new input rows (default 10) run from the skill.

Reported (``--json``: one object): ``model_requests_after_first`` (requests the server got
during step 3; goal 0), ``pass_rate`` (of the rows; goal >= 0.95), ``speedup_vs_model``
(median wall per instance, model path / skill path, over all tasks; goal >= 20), and
``skill_actions_per_s`` (actions replayed from skills per second of wall time), with the
same per task. Wall per instance includes opening its sandbox session (for the web task a
fresh browser context and page per instance, in the Chromium the run's sandbox keeps, as every
task gets); ``episode_speedup_vs_model`` compares the episodes alone (first step record to
last).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentcorp.app.config import resolve_config
from agentcorp.app.runner import TaskRunner
from agentcorp.spec import load_company, with_inputs
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.testing.skills_apps import model_script, write_company
from agentcorp.types import ActionStep

TASKS = ("add-customer", "log-call", "add-web-customer")
NAMES = ["Bob", "Zoe Ng", "Lee, Kim", "2041", "Annabel", "Mo", "Ann-Marie O'Neil", "7", "Cy"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _names(n: int, offset: int) -> list[str]:
    return [f"{NAMES[(offset + i) % len(NAMES)]} {offset + i}" for i in range(n)]


def _instance(r: TaskRunner, task_id: str, name: str) -> tuple[float, float, str, str, int]:
    """(wall, episode, status, mode, skill actions): episode is first record to last."""
    task = with_inputs(r.company.task(task_id), {"name": name})
    t0 = time.perf_counter()
    steps, res = drive(r.run(task))
    wall = time.perf_counter() - t0
    skill = sum(1 for s in steps if isinstance(s, ActionStep) and s.source == "skill")
    episode = steps[-1].t - steps[0].t if steps else 0.0
    return wall, episode, res.status, res.mode, skill


def bench_task(
    company_file: Path, task_id: str, rows: int, latency: float, baseline: int
) -> dict[str, Any]:
    """One task's figures: baseline model path, learning, then rows from the skill."""
    base_names = _names(baseline, 100)
    script: list[Any] = []
    for name in [*base_names, "Ann"]:
        script.extend(model_script(name, task_id, delay=latency))
    company = load_company(company_file)
    with FakeOpenAIServer(script) as srv:
        flags: dict[str, Any] = {
            "environ": {},
            "no_plan": True,
            "base_url": srv.base_url,
            "actor_model": "fake-actor",
        }
        model_walls: list[float] = []
        model_episodes: list[float] = []
        with TaskRunner.open(company, resolve_config(**flags, no_cache=True)) as r:
            for name in base_names:
                wall, episode, status, _, _ = _instance(r, task_id, name)
                if status != "pass":
                    raise SystemExit(f"{task_id}: baseline instance {name!r} did not pass")
                model_walls.append(wall)
                model_episodes.append(episode)
        with TaskRunner.open(company, resolve_config(**flags)) as r:
            learn_wall, episode, status, mode, _ = _instance(r, task_id, "Ann")
            if status != "pass" or mode != "model":
                raise SystemExit(f"{task_id}: learning instance: {status} via {mode}")
            model_walls.append(learn_wall)
            model_episodes.append(episode)
            before = len(srv.chat_requests)
            skill_walls: list[float] = []
            skill_episodes: list[float] = []
            passed = 0
            actions = 0
            for name in _names(rows, 0):
                wall, episode, status, mode, n = _instance(r, task_id, name)
                skill_walls.append(wall)
                skill_episodes.append(episode)
                passed += status == "pass" and mode == "skill"
                actions += n
            after = len(srv.chat_requests) - before
    model_p50 = statistics.median(model_walls)
    skill_p50 = statistics.median(skill_walls)
    return {
        "task": task_id,
        "rows": rows,
        "model_requests_after_first": after,
        "pass_rate": passed / rows,
        "model_wall_s_p50": round(model_p50, 3),
        "skill_wall_s_p50": round(skill_p50, 3),
        "speedup_vs_model": round(model_p50 / skill_p50, 1),
        "episode_speedup_vs_model": round(
            statistics.median(model_episodes) / statistics.median(skill_episodes), 1
        ),
        "skill_actions_per_s": round(actions / sum(skill_walls), 1),
        "model_walls": [round(w, 3) for w in model_walls],
        "skill_walls": [round(w, 3) for w in skill_walls],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a table, or one JSON object with ``--json``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--rows", type=int, default=10, help="input rows per task (default 10)")
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per model call")
    ap.add_argument("--baseline", type=int, default=3, help="model-path instances per task")
    args = ap.parse_args(argv)
    # Skills live beside the company (a fresh one per run), not in a shared folder.
    for var in ("AGENTCORP_CACHE_DIR", "AGENTCORP_SKILLS_DIR"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory(prefix="skills-bench-") as tmp:
        company_file = write_company(Path(tmp) / "co", _port())
        per_task = [
            bench_task(company_file, t, args.rows, args.latency, args.baseline) for t in TASKS
        ]
    model_all = [w for t in per_task for w in t["model_walls"]]
    skill_all = [w for t in per_task for w in t["skill_walls"]]
    total_rows = sum(t["rows"] for t in per_task)
    out = {
        "tasks": len(per_task),
        "rows_per_task": args.rows,
        "latency_s": args.latency,
        "model_requests_after_first": sum(t["model_requests_after_first"] for t in per_task),
        "pass_rate": round(sum(t["pass_rate"] * t["rows"] for t in per_task) / total_rows, 3),
        "speedup_vs_model": round(statistics.median(model_all) / statistics.median(skill_all), 1),
        "skill_actions_per_s": round(
            sum(t["skill_actions_per_s"] * sum(t["skill_walls"]) for t in per_task)
            / sum(skill_all),
            1,
        ),
        "per_task": [
            {k: v for k, v in t.items() if k not in ("model_walls", "skill_walls")}
            for t in per_task
        ],
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for t in out["per_task"]:
            print(
                f"{t['task']:<18} model {t['model_wall_s_p50']:.2f}s  skill "
                f"{t['skill_wall_s_p50']:.2f}s  x{t['speedup_vs_model']}  "
                f"pass {t['pass_rate']:.2f}  requests after first "
                f"{t['model_requests_after_first']}  {t['skill_actions_per_s']} actions/s"
            )
        print(
            f"all: x{out['speedup_vs_model']}  pass {out['pass_rate']}  requests after "
            f"first {out['model_requests_after_first']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
