"""The sample company on two worker processes, killed with ``kill -9`` and resumed.

The real thing end to end, offline: ``agentcorp run tasks/acme --workers 2 --sessions S``
runs Gnumeric, Mousepad and the Django back office on each worker's own displays; the
coordinator (or a worker) is killed mid-run, and ``--resume --json`` finishes the run with
every task passed exactly once in the ledger, the sandboxes' saved state carried over.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fleet.conftest_helpers import check_exactly_once, ledger_of

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"
TASKS = 9


def _env(tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_PASSWORD")) and not k.startswith("AGENTCORP_")
    }
    env["AGENTCORP_CACHE_DIR"] = str(tmp / "cache")
    # The back office's service is `python3 serve.py`: this interpreter's, with Django.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _states(ledger: Path) -> dict[str, str]:
    try:
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
        try:
            return dict(con.execute("SELECT id, state FROM tasks").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def _worker_pids(ledger: Path) -> list[int]:
    try:
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT worker FROM tasks WHERE state IN ('leased', 'running')"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [int(w.split("/")[1]) for (w,) in rows if w and w.split("/")[1].isdigit()]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentcorp", "run", str(ACME), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_passed(ledger: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 400
    while sum(s == "passed" for s in _states(ledger).values()) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)


def _resume_and_check(run_dir: Path, env: dict[str, str], cwd: Path, *extra: str) -> None:
    proc = _run(["--sessions", str(run_dir), "--resume", "--json", *extra], env, cwd)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    doc = json.loads(out)
    assert doc["passed"] and doc["resumed"]
    ids = [t["id"] for t in doc["tasks"]]
    assert len(ids) == TASKS and len(set(ids)) == TASKS
    assert {t["status"] for t in doc["tasks"]} == {"pass"}
    states = check_exactly_once(ledger_of(run_dir))
    assert set(states.values()) == {"passed"} and len(states) == TASKS
    # The desktop's state carried over: both support-log lines in the one saved file.
    notes = (run_dir / ".agentcorp" / "sandboxes" / "notes" / "notes.txt").read_text()
    assert "Call from Globex: asked about invoice INV-1043" in notes
    assert "2026-W45 summary:" in notes
    assert doc["trace"] and Path(doc["trace"]).is_file()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_two_workers_a_worker_and_the_coordinator_killed_then_resumed(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run_dir = tmp_path / "run"
    proc = _run(["--workers", "2", "--sessions", str(run_dir)], env, tmp_path)
    try:
        _wait_for_passed(ledger_of(run_dir), 2, proc)
        # A worker dies mid-task: its task is re-queued, its sandboxes reopen elsewhere.
        deadline = time.monotonic() + 120
        while not (busy := _worker_pids(ledger_of(run_dir))):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        os.kill(busy[0], signal.SIGKILL)
        # ...and the coordinator right after (tasks are left: the run must be unfinished).
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = [t for t, s in _states(ledger_of(run_dir)).items() if s != "passed"]
    assert left, "the run ended before it was killed"
    # A new run into the folder is refused: it holds an unfinished one.
    again = _run(["--sessions", str(run_dir)], env, tmp_path)
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "--resume" in err, err
    _resume_and_check(run_dir, env, tmp_path, "--workers", "2")


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_in_process_run_with_a_worker_killed_then_resumed(tmp_path: Path) -> None:
    """kill -9 of the process running a task (the default one-worker, in-process run)."""
    env = _env(tmp_path)
    run_dir = tmp_path / "run"
    proc = _run(["--sessions", str(run_dir)], env, tmp_path)
    try:
        _wait_for_passed(ledger_of(run_dir), 3, proc)
        pids = _worker_pids(ledger_of(run_dir))
        assert pids == [] or pids == [proc.pid]
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any(s != "passed" for s in _states(ledger_of(run_dir)).values())
    _resume_and_check(run_dir, env, tmp_path)
