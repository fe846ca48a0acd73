"""The desktop corpus (issue 14): natural-form tasks on apps the sample does not use.

``python -m agentcorp run tests/corpus/desktop`` on real galculator (GTK), featherpad (Qt)
and xedit (Athena, OCR only) desktops, scored by each task's own success check. A "silent
wrong" is a task whose check says wrong while every action of it reported ok: the worst
outcome, and the goal is none. The pass rate goal is 95 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.spec import load_company

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def _all_ok(session: Path) -> bool:
    """Whether every action of a recorded attempt reported ok (and nothing errored)."""
    for line in (session / "events.jsonl").read_text(encoding="utf-8").splitlines():
        ev = json.loads(line)
        if ev.get("kind") == "action_result" and not ev.get("ok", True):
            return False
        if ev.get("kind") == "error":
            return False
    return True


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_desktop_corpus_passes_with_no_silent_wrong(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_PASSWORD")) and not k.startswith("AGENTCORP_")
    }
    env["AGENTCORP_CACHE_DIR"] = str(tmp_path / "cache")
    sessions = tmp_path / "sessions"
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "run", str(HERE), "--sessions", str(sessions)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    ids = [t.id for t in load_company(HERE).task_order()]
    assert len(ids) >= 9 and "Traceback" not in r.stderr, r.stderr
    passed = [i for i in ids if f"✔ {i} pass" in r.stderr]
    silent = []
    for i in ids:
        if i in passed:
            continue
        for attempt in sorted((sessions / i).glob("*/events.jsonl")):
            if _all_ok(attempt.parent):
                silent.append(f"{i} ({attempt.parent.name})")
    rate = len(passed) / len(ids)
    print(json.dumps({"tasks": len(ids), "passed": len(passed), "silent_wrong": silent}))
    assert not silent, f"silent wrong: {silent}\n{r.stderr}"
    assert rate >= 0.95, f"{len(passed)}/{len(ids)} passed\n{r.stderr}"
    assert r.returncode == 0, r.stderr
