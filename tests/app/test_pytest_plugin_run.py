"""The pytest plugin records a task through the application layer, then replays it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"


@pytest.mark.slow
def test_record_task_then_replay_in_ci_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_support=f"""
import pytest

@pytest.mark.agentcorp_session("sessions/log-call")
def test_log_call(agentcorp_session):
    if agentcorp_session.should_record:
        r = agentcorp_session.record_task({str(ACME)!r}, "log-support-call", no_cache=True)
        assert r.mode == "scripted" and r.actions == 4
    agentcorp_session.replay()
"""
    )
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", env_path)
        once = pytester.runpytest_subprocess("--agentcorp-record-mode=once", "-p", "agentcorp")
        once.assert_outcomes(passed=1)
        assert (pytester.path / "sessions" / "log-call" / "manifest.json").is_file()
        # CI: replay only, no sandbox, no recording.
        ci = pytester.runpytest_subprocess("-p", "agentcorp")
        ci.assert_outcomes(passed=1)
