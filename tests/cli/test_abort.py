"""Issue 15 item 4 / issue 16 defect 8: Ctrl-C and SIGTERM end a run soon, keeping what ran.

A real ``agentcorp run`` (offline, scripted steps, real Xvfb) is signalled while its second
task waits; the process must exit 143 (SIGTERM) or 130 (SIGINT) within 10 s, print
"aborted", show the first task in the summary, and leave every session with a manifest whose
outcome is ``aborted`` (the interrupted one) or its real outcome (the finished one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcorp.record.session import open_session

ROOT = Path(__file__).resolve().parents[2]

COMPANY = """\
version: 1
company: abort-test
defaults:
  budgets: {wall_clock: 5m}
roles:
  clerk: {title: Clerk, goal: Wait, sandbox: desk}
sandboxes:
  desk: {kind: desktop, screen: [640, 480]}
tasks:
  - id: quick
    role: clerk
    description: wait a moment (a key on a desktop with no app would rightly fail)
    steps: [{wait: 0.1}]
  - id: slow
    role: clerk
    description: wait a long time
    depends_on: [quick]
    steps: [{wait: 120}]
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_finishes_sessions_as_aborted(tmp_path: Path, sig: int, code: int) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY)
    sessions = tmp_path / "sessions"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "AGENTCORP_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(tmp_path / "company.yaml"),
            "--sessions",
            str(sessions),
            "--no-cache",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list((sessions / "slow").glob("*/events.jsonl")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow task never started"
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the 120 s wait
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)  # ends within 10 s, or this raises
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert "aborted" in err and "Traceback" not in err, err
    assert "quick" in out and "pass" in out  # the summary of what ran
    [quick] = list((sessions / "quick").iterdir())
    [slow] = [p for p in (sessions / "slow").iterdir() if p.is_dir()]
    assert open_session(quick).outcome["status"] == "pass"
    s = open_session(slow)
    assert s.complete, s.reason
    assert s.outcome["status"] == "aborted"
    manifest = json.loads((slow / "manifest.json").read_text())
    assert manifest["outcome"]["reason"].startswith("aborted by SIG")
