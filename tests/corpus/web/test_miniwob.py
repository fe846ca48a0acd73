"""The public web corpus: MiniWoB++ episodes written as plain task YAMLs, run offline by
``agentcorp run`` in real Chromium, each scored by the page's own verdict.

A task whose every action said ok while the page scored the episode as failed is "silent
wrong", the worst outcome there is; the corpus must have none, and pass >= 95 %. The figures
are printed as JSON (``pytest -s``) for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VERDICT = "page verdict"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _corpus_copy(dest: Path, text: str | None = None) -> Path:
    """The corpus in ``dest`` on a free port (a second run on this machine cannot answer)."""
    dest.mkdir(parents=True)
    shutil.copy(HERE / "serve.py", dest / "serve.py")
    body = text if text is not None else (HERE / "company.yaml").read_text("utf-8")
    port = str(_free_port())
    (dest / "company.yaml").write_text(
        body.replace("127.0.0.1:8931", f"127.0.0.1:{port}").replace('"8931"', f'"{port}"'),
        "utf-8",
    )
    return dest


def _run(company: Path, sessions: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # The service's python3 is this interpreter, with the miniwob package.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AGENTCORP_CACHE_DIR": str(sessions.parent / "cache"),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(company),
            "--no-cache",
            "--sessions",
            str(sessions),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )


def score(sessions: Path) -> dict[str, Any]:
    """Per task: passed, or failed honestly (a step said what went wrong), or silent wrong."""
    tasks: dict[str, str] = {}
    for events in sorted(sessions.glob("*/*/events.jsonl")):
        rows = [json.loads(line) for line in events.read_text("utf-8").splitlines()]
        verdicts = [r for r in rows if r.get("kind") == "check" and r.get("name") == VERDICT]
        results = [r for r in rows if r.get("kind") == "action_result"]
        if verdicts and verdicts[-1]["status"] == "pass":
            outcome = "pass"
        elif (
            results
            and all(r["ok"] for r in results)
            and not any(r.get("kind") == "error" for r in rows)
        ):
            outcome = "silent wrong"
        else:
            outcome = "failed"
        tasks[events.parent.parent.name] = outcome  # the last attempt counts
    n = len(tasks)
    passed = sum(o == "pass" for o in tasks.values())
    return {
        "tasks": n,
        "passed": passed,
        "pass_rate": round(passed / n, 4) if n else 0.0,
        "silent_wrong": sorted(t for t, o in tasks.items() if o == "silent wrong"),
        "failed": sorted(t for t, o in tasks.items() if o == "failed"),
    }


@pytest.mark.timeout(1800)
def test_miniwob_corpus_passes_with_no_silent_wrong(tmp_path: Path) -> None:
    company = _corpus_copy(tmp_path / "corpus")
    n_tasks = len(re.findall(r"^  - id: ", (HERE / "company.yaml").read_text("utf-8"), re.M))
    assert n_tasks >= 25
    proc = _run(company, tmp_path / "sessions")
    figures = score(tmp_path / "sessions")
    print(json.dumps({"miniwob": figures}))
    assert figures["tasks"] == n_tasks, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert figures["silent_wrong"] == [], figures
    assert figures["pass_rate"] >= 0.95, figures


WRONG = """version: 1
company: wrong
defaults: {budgets: {steps: 50, wall_clock: 5m}}
roles: {clerk: {title: Clerk, sandbox: web}}
sandboxes:
  web:
    kind: browser
    screen: [500, 420]
    allow_urls: ["http://127.0.0.1:8931/*"]
    services:
      - name: miniwob
        command: [python3, serve.py, --port, "8931"]
        ready_url: http://127.0.0.1:8931/miniwob/click-test.html
tasks:
  - id: wrong-button
    role: clerk
    description: Click on the "previous" button (but the step clicks another one).
    steps:
      - open_url: http://127.0.0.1:8931/miniwob/click-button.html?seed=1
      - click: Ok
    success:
      check: js
      name: page verdict
      expression: "WOB_DONE_GLOBAL && WOB_RAW_REWARD_GLOBAL > 0"
"""


@pytest.mark.timeout(600)
def test_the_score_sees_a_step_that_said_ok_while_the_page_failed(tmp_path: Path) -> None:
    company = _corpus_copy(tmp_path / "wrong", WRONG)
    proc = _run(company, tmp_path / "sessions")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = score(tmp_path / "sessions")
    assert figures["silent_wrong"] == ["wrong-button"] and figures["passed"] == 0
