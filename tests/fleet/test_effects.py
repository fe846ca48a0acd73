"""Issue 16 defect 5 on the local pool: an effect done before a kill -9 is never done again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentcorp.fleet.ledger import SqliteLedger
from tests.fleet.conftest_helpers import check_exactly_once, ledger_of, write_company
from tests.fleet.runners import read_log

ROOT = Path(__file__).resolve().parents[2]


def _cmd(company: Path, run_dir: Path, workers: str) -> list[str]:
    resume = ["--resume"] if ledger_of(run_dir).exists() else []
    return [
        sys.executable,
        "-m",
        "agentcorp",
        "run",
        str(company),
        "--sessions",
        str(run_dir),
        "--workers",
        workers,
        "--lease",
        "0.5",
        "--episode",
        "tests.fleet.runners:charge",
        *resume,
    ]


@pytest.mark.parametrize("workers", ["1", "2"])  # in the coordinator; in a worker process
def test_coordinator_kill_9_between_effect_and_result_write(tmp_path: Path, workers: str) -> None:
    company = write_company(tmp_path / "co", 1)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    log = company.parent / "episodes.jsonl"
    world = company.parent / "world.txt"
    env = {**os.environ, "FLEET_TEST_SLEEP": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        _cmd(company, run_dir, workers),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not any(e["event"] == "effected" for e in read_log(log)):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the effect never happened"
            time.sleep(0.02)
        # The machine goes down: coordinator and worker, SIGKILL, no cleanup anywhere. The
        # effect is done; its result is never written.
        worker = int(next(e["pid"] for e in read_log(log) if e["event"] == "effected"))  # type: ignore[call-overload]
        proc.kill()
        with contextlib.suppress(ProcessLookupError):  # inline: the episode died with it
            os.kill(worker, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.stderr:
            proc.stderr.close()
    led = SqliteLedger(ledger, create=False)
    try:
        assert led.row("t00").state in ("leased", "running")  # type: ignore[union-attr]
    finally:
        led.close()
    r = subprocess.run(
        _cmd(company, run_dir, workers),
        cwd=ROOT,
        env={**env, "FLEET_TEST_SLEEP": "0"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert world.read_text().splitlines() == ["t00 charged by attempt 1"]
    honoured = [e for e in read_log(log) if e["event"] == "honoured"]
    assert [(e["attempt"], e["outcome"]) for e in honoured] == [(2, "charged by attempt 1")]
    assert {e["key"] for e in read_log(log) if e["event"] == "start"} == {"t00"}
    states = check_exactly_once(ledger, log)
    assert states == {"t00": "passed"}
