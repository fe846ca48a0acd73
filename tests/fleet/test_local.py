"""The local backend for real: worker processes with their own Xvfb, kill -9 of a worker and of
the coordinator, and ``agentcorp run --workers`` end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.local import LocalOptions, run_local
from agentcorp.fleet.model import FleetTask
from tests.fleet.conftest_helpers import check_exactly_once, ledger_of, plan_tasks, write_company
from tests.fleet.runners import read_log

ROOT = Path(__file__).resolve().parents[2]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _with_payload(path: Path, log: Path, **extra: object) -> list:  # type: ignore[type-arg]
    return [
        dataclasses.replace(t, payload={**t.payload, "log": str(log), "n": i, **extra})
        for i, t in enumerate(plan_tasks(path))
    ]


def test_company_runs_on_two_workers_each_on_its_own_xvfb(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 8, gap=2)  # two chains of 4 dependent tasks
    log = tmp_path / "episodes.jsonl"
    tasks = [
        dataclasses.replace(t, payload={**t.payload, "barrier": 2}) if t.id in ("t00", "t01") else t
        for t in _with_payload(company, log)
    ]
    events: list[str] = []
    report = run_local(
        tasks,
        tmp_path / "run.db",
        "tests.fleet.runners:desktop",
        LocalOptions(workers=2, lease_s=5.0, sandbox="xvfb"),
        on_event=lambda kind, msg: events.append(msg),
    )
    assert report.counts == {"passed": 8}, (report, events)
    entries = read_log(log)
    ends = [e for e in entries if e["event"] == "end"]
    assert len(ends) == 8
    displays = {str(e["worker"]): str(e["display"]) for e in ends}
    assert len(set(displays.values())) == 2, displays  # two workers, two displays
    assert len(displays) == 2
    assert all(str(e["geometry"]) == "1280 800" for e in ends)
    # Dependencies held: every task started after its dependency ended.
    t_end = {str(e["task"]): float(e["t"]) for e in ends}  # type: ignore[arg-type]
    t_start = {str(e["task"]): float(e["t"]) for e in entries if e["event"] == "start"}  # type: ignore[arg-type]
    for t in tasks:
        for d in t.depends_on:
            assert t_start[t.id] >= t_end[d]
    check_exactly_once(tmp_path / "run.db", log)
    # Workers and their Xvfb servers are gone.
    for e in ends:
        assert not _pid_alive(int(e["pid"]))  # type: ignore[call-overload]
        n = str(e["display"]).lstrip(":")
        assert not Path(f"/tmp/.X{n}-lock").exists()


def test_worker_killed_mid_task_is_rerun_elsewhere_once(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 6)
    log = tmp_path / "episodes.jsonl"
    tasks = [
        dataclasses.replace(t, payload={**t.payload, "sleep_s": 1.5 if t.id == "t02" else 0.02})
        for t in _with_payload(company, log)
    ]
    ledger_path = tmp_path / "run.db"
    killed: dict[str, object] = {}

    def killer() -> None:
        led = SqliteLedger(ledger_path)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                row = led.row("t02") if led.meta("fingerprint") else None
                if row is not None and row.state == "running" and row.worker:
                    pid = int(row.worker.split("/")[1])
                    time.sleep(0.2)  # mid-episode
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, worker=row.worker, epoch=row.epoch)
                    return
                time.sleep(0.02)
        finally:
            led.close()

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    report = run_local(
        tasks,
        ledger_path,
        "tests.fleet.runners:sleepy",
        LocalOptions(workers=2, lease_s=1.0, sandbox="xvfb"),
    )
    th.join(timeout=10)
    assert killed, "the task never ran"
    assert report.counts == {"passed": 6}
    assert report.lost == 1 and report.workers_started == 3
    led = SqliteLedger(ledger_path)
    try:
        tries = [a for a in led.attempts() if a["task_id"] == "t02"]
    finally:
        led.close()
    assert [a["outcome"] for a in tries] == [
        "lost: worker w1 died" if "w1" in str(killed["worker"]) else "lost: worker w2 died",
        "passed",
    ]
    assert tries[1]["worker"] != killed["worker"]
    ends = [e for e in read_log(log) if e["task"] == "t02" and e["event"] == "end"]
    assert len(ends) == 1 and ends[0]["epoch"] == tries[1]["epoch"]
    check_exactly_once(ledger_path, log)


def _passed(ledger: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM tasks WHERE state='passed'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet


def _fleet_cmd(company: Path, run_dir: Path, *extra: str) -> list[str]:
    """``agentcorp run --workers 2`` with the test episode; ``--resume`` once a run exists."""
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
        "2",
        "--lease",
        "1",
        "--episode",
        "tests.fleet.runners:spec_sleepy",
        *resume,
        *extra,
    ]


def test_coordinator_kill_9_at_random_points_then_resume(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 80, gap=3)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    log = company.parent / "episodes.jsonl"
    env = {**os.environ, "FLEET_TEST_SLEEP": "0.12", "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    kills = 0
    seen_done: set[str] = set()
    for _rep in range(20):
        proc = subprocess.Popen(
            _fleet_cmd(company, run_dir),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            # A random point: after 0-2 more tasks passed, plus a random slice of an episode.
            target = len(seen_done) + rng.choice([0, 1, 1, 2])
            deadline = time.monotonic() + 60
            while _passed(ledger) < target and proc.poll() is None:
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is not None:
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
                break
            proc.kill()  # SIGKILL: no cleanup runs in the coordinator
            proc.wait(timeout=10)
            kills += 1
        finally:
            if proc.stderr:
                proc.stderr.close()
        states = check_exactly_once(ledger, log)
        done = {t for t, s in states.items() if s == "passed"}
        assert seen_done <= done  # nothing finished ever goes back
        seen_done = done
    assert kills == 20, kills
    final = subprocess.run(
        _fleet_cmd(company, run_dir, "--json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stderr
    out = json.loads(final.stdout)
    assert out["passed"] and out["resumed"]
    assert sorted(t["id"] for t in out["tasks"]) == sorted(f"t{i:02d}" for i in range(80))
    assert {t["status"] for t in out["tasks"]} == {"pass"}
    states = check_exactly_once(ledger, log)
    assert set(states.values()) == {"passed"}
    # Orphaned workers finish their episode and leave on their own.
    deadline = time.monotonic() + 20
    pids = {int(e["pid"]) for e in read_log(log)}  # type: ignore[call-overload]
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_pid_alive(p) for p in pids)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers: expected 1 to"),
        (["--workers", "10000"], "--workers: expected 1 to"),
        (["--workers", "99999999999999999999"], "--workers: expected 1 to"),
        (["--workers", "two"], "--workers: expected a whole number"),
        (["--lease", "-1"], "--lease must be a positive number"),
        (["--spare", "-1"], "--spare must be 0 to 4096, got -1"),
        (["--episode", "nocolon"], "expected MODULE:FUNCTION"),
        (["--episode", "no.such.module:fn"], "cannot import 'no.such.module'"),
        (["--rate-limit", "fast"], "--rate-limit: expected [KEY=]RATE[/BURST]"),
        (["--resume"], "holds no run to resume"),
    ],
)
def test_bad_flags_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentcorp.cli import main

    company = write_company(tmp_path / "co", 2)
    run_dir = tmp_path / "run"
    base = ["run", str(company), "--sessions", str(run_dir)]
    code = main([*base, *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not ledger_of(run_dir).exists()  # nothing started, nothing written


def test_cli_run_then_status(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 6)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    env = {**os.environ, "FLEET_TEST_SLEEP": "0.01"}
    r = subprocess.run(
        _fleet_cmd(company, run_dir, "--json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert [t["status"] for t in json.loads(r.stdout)["tasks"]] == ["pass"] * 6
    # Resuming a finished run has nothing left to do: nothing re-runs.
    before = len(read_log(company.parent / "episodes.jsonl"))
    r2 = subprocess.run(
        _fleet_cmd(company, run_dir, "--json"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r2.returncode == 0 and json.loads(r2.stdout)["resumed"], r2.stderr
    assert len(read_log(company.parent / "episodes.jsonl")) == before
    s = subprocess.run(
        [sys.executable, "-m", "agentcorp", "fleet", "status", "--ledger", str(ledger), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert s.returncode == 0, s.stderr
    status = json.loads(s.stdout)
    assert status["counts"] == {"passed": 6} and len(status["tasks"]) == 6
    assert status["source"] == str(company.resolve())
    text = subprocess.run(
        [sys.executable, "-m", "agentcorp", "fleet", "status", "--ledger", str(ledger)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "t05" in text.stdout and "6 passed" in text.stdout


@pytest.mark.parametrize("content", [b"garbage" * 100, b""])
def test_status_of_a_bad_ledger_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(content)
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "fleet", "status", "--ledger", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "x.db" in lines[0], r.stderr
    assert bad.read_bytes() == content


WIRED = """\
version: 1
company: wired
defaults:
  budgets: {usd: 10, wall_clock: 60s}
roles:
  clerk: {title: Clerk, goal: Wait, sandbox: desk}
sandboxes:
  desk: {kind: desktop, screen: [800, 600]}
tasks:
  - id: a
    role: clerk
    description: wait a moment (a key on a desktop with no app would rightly fail)
    steps: [{wait: 0.05}]
    success: {check: command, argv: [sh, -c, 'echo "k=$AGENTCORP_IDEMPOTENCY_KEY."'],
              stdout_contains: "k=a."}
  - id: b
    role: clerk
    description: wait a moment
    depends_on: [a]
    steps: [{wait: 0.05}]
    success: {check: command, argv: [sh, -c, 'echo "k=$AGENTCORP_IDEMPOTENCY_KEY"'],
              stdout_contains: "k=b/2"}
  - id: c
    role: clerk
    description: never runs
    depends_on: [b]
    steps: [{wait: 0.05}]
"""


def test_default_runner_runs_spec_tasks_through_the_real_wiring(tmp_path: Path) -> None:
    company = tmp_path / "company.yaml"
    company.write_text(WIRED)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(company),
            "--sessions",
            str(run_dir),
            "--workers",
            "2",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 1, r.stderr  # b's check fails on purpose
    report = {t["id"]: t for t in json.loads(r.stdout)["tasks"]}
    assert [report[t]["status"] for t in "abc"] == ["pass", "fail", "fail"]
    assert report["c"]["mode"] == "skipped"
    led = SqliteLedger(ledger, create=False)
    try:
        rows = {x.id: x for x in led.rows()}
    finally:
        led.close()
    assert rows["a"].state == "passed"  # its check saw AGENTCORP_IDEMPOTENCY_KEY=a
    assert rows["b"].state == "failed" and "k=b/2" in (rows["b"].detail or "")
    assert rows["c"].state == "error" and "skipped" in (rows["c"].detail or "")


def test_second_coordinator_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    from agentcorp.fleet._coord import coordinator_lock

    company = write_company(tmp_path / "co", 2)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    ledger.parent.mkdir(parents=True)
    with coordinator_lock(ledger):
        r = subprocess.run(
            _fleet_cmd(company, run_dir), cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another coordinator" in lines[0], r.stderr
    assert not ledger.exists()  # refused before touching anything


def test_ledger_in_a_missing_folder_is_a_one_line_error(tmp_path: Path) -> None:
    from agentcorp.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot lock the ledger"):
        run_local([], tmp_path / "nope" / "run.db", "agentcorp.fleet.runners:noop")


def test_drain_announced_worker_gets_only_work_that_fits(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 6, gap=99)  # independent tasks, 60 s expected
    log = tmp_path / "episodes.jsonl"
    tasks = [
        dataclasses.replace(t, payload={**t.payload, "sleep_s": 0.1})
        for t in _with_payload(company, log)
    ]
    ledger_path = tmp_path / "run.db"
    led = SqliteLedger(ledger_path)
    led.ensure_tasks(tasks)
    led.announce_drain("w1", time.time() + 20)  # 20 s left < 60 s expected: no lease for w1
    led.close()
    report = run_local(
        tasks,
        ledger_path,
        "tests.fleet.runners:sleepy",
        LocalOptions(workers=2, lease_s=5.0, sandbox="none"),
    )
    assert report.counts == {"passed": 6}
    workers = {str(e["worker"]).rsplit("/", 1)[1] for e in read_log(log) if e["event"] == "end"}
    assert workers == {"w2"}


def test_drain_of_the_host_requeues_running_work_and_resumes_later(tmp_path: Path) -> None:
    from agentcorp.cli import main

    company = write_company(tmp_path / "co", 3, gap=99)
    log = tmp_path / "episodes.jsonl"
    tasks = [
        dataclasses.replace(t, payload={**t.payload, "sleep_s": 30.0 if i == 0 else 0.05})
        for i, t in enumerate(_with_payload(company, log))
    ]
    ledger_path = tmp_path / "run.db"

    def announce() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _passed(ledger_path) == 2:  # the short ones are done, t00 is mid-episode
                assert (
                    main(
                        [
                            "fleet",
                            "drain",
                            "--ledger",
                            str(ledger_path),
                            "--node",
                            "*",
                            "--in",
                            "0.5",
                        ]
                    )
                    == 0
                )
                return
            time.sleep(0.02)

    th = threading.Thread(target=announce, daemon=True)
    th.start()
    report = run_local(
        tasks,
        ledger_path,
        "tests.fleet.runners:sleepy",
        LocalOptions(workers=2, lease_s=5.0, sandbox="none"),
    )
    th.join(timeout=10)
    assert report.counts == {"passed": 2, "pending": 1}  # paused, not lost
    assert report.lost == 1
    # Later the machine is back: the same command finishes the re-queued task.
    fast = [dataclasses.replace(t, payload={**t.payload, "sleep_s": 0.05}) for t in tasks]
    again = run_local(
        fast,
        ledger_path,
        "tests.fleet.runners:sleepy",
        LocalOptions(workers=2, lease_s=5.0, sandbox="none"),
    )
    assert again.counts == {"passed": 3} and again.resumed_finished == 2
    led = SqliteLedger(ledger_path)
    try:
        outcomes = [a["outcome"] for a in led.attempts() if a["task_id"] == "t00"]
    finally:
        led.close()
    assert outcomes[0].startswith("lost: w") and outcomes[0].endswith("left (drained)")
    assert outcomes[-1] == "passed"
    check_exactly_once(ledger_path, log)


def test_drain_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentcorp.cli import main

    assert main(["fleet", "drain", "--ledger", str(tmp_path / "none.db"), "--node", "w1"]) == 2
    assert "no such ledger" in capsys.readouterr().err
    led = SqliteLedger(tmp_path / "run.db")
    led.close()
    assert (
        main(["fleet", "drain", "--ledger", str(tmp_path / "run.db"), "--node", "w1", "--in", "-3"])
        == 2
    )
    assert "--in must be 0 to 31622400 seconds (a year), got -3" in capsys.readouterr().err


def test_hung_episode_is_killed_and_rerun_whole(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    # First attempt hangs far past its deadline (0.2 s expected x 3 + 1 s lease); the retry
    # is quick because the runner sleeps less on later attempts.
    tasks = [
        FleetTask(
            "slow",
            expected_s=0.2,
            payload={"log": str(log), "sleep_s": 60.0, "retry_sleep_s": 0.05},
        )
    ]
    report = run_local(
        tasks,
        tmp_path / "run.db",
        "tests.fleet.runners:sleepy",
        LocalOptions(workers=1, lease_s=1.0, sandbox="none"),
    )
    assert report.counts == {"passed": 1} and report.lost == 1
    starts = [e for e in read_log(log) if e["event"] == "start"]
    assert [e["attempt"] for e in starts] == [1, 2]


def test_orphaned_worker_is_a_zombie_and_its_late_write_is_fenced(tmp_path: Path) -> None:
    """Coordinator killed mid-episode; the orphan stops renewing, the lease expires, the task
    is re-run, and when the orphan finally finishes its write is refused."""
    company = write_company(tmp_path / "co", 1)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    log = company.parent / "episodes.jsonl"
    env = {**os.environ, "FLEET_TEST_SLEEP": "8", "PYTHONPATH": str(ROOT)}
    cmd = _fleet_cmd(company, run_dir)
    cmd[cmd.index("--lease") + 1] = "0.5"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not any(e["event"] == "start" for e in read_log(log)):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=10)
    zombie_pid = int(read_log(log)[0]["pid"])  # type: ignore[call-overload]
    assert _pid_alive(zombie_pid)  # the orphan is still mid-episode
    env2 = {**env, "FLEET_TEST_SLEEP": "0.05"}
    cmd = _fleet_cmd(company, run_dir)  # now with --resume
    cmd[cmd.index("--lease") + 1] = "0.5"
    r = subprocess.run(cmd, cwd=ROOT, env=env2, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    while _pid_alive(zombie_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(zombie_pid)
    led = SqliteLedger(ledger)
    try:
        tries = led.attempts()
        row = led.row("t00")
    finally:
        led.close()
    assert [a["outcome"] for a in tries] == ["lost: lease expired", "passed"]
    assert row is not None and row.state == "passed" and row.epoch == tries[1]["epoch"]
    # The zombie's episode did end, but nothing of it was recorded.
    ends = [e for e in read_log(log) if e["event"] == "end"]
    assert sorted(int(e["epoch"]) for e in ends) == [1, 2]  # type: ignore[call-overload]
    check_exactly_once(ledger, log)


@pytest.mark.parametrize("workers", [1, 2])
def test_drain_through_agentcorp_run_pauses_then_resume_finishes(
    tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fleet drain`` of every node on a run of the one path (in-process and 2 workers)."""
    import agentcorp
    from agentcorp.cli import main

    company = write_company(tmp_path / "co", 6)  # a chain: one task at a time
    run_dir = tmp_path / "run"
    monkeypatch.setenv("FLEET_TEST_SLEEP", "0.3")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def announce() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _passed(ledger_of(run_dir)) >= 2:
                main(["fleet", "drain", "--ledger", str(run_dir), "--node", "*", "--in", "0"])
                return
            time.sleep(0.02)

    th = threading.Thread(target=announce, daemon=True)
    th.start()
    first = agentcorp.run(
        company,
        sessions=run_dir,
        workers=workers,
        lease_s=2.0,
        episode="tests.fleet.runners:spec_sleepy",
    )
    th.join(timeout=10)
    assert not first.passed
    left = [r for r in first.results if r.status != "pass"]
    assert left and all("not finished" in r.reason and "--resume" in r.reason for r in left)
    # The drain belonged to that run; resuming later finishes the rest, each task once.
    again = agentcorp.run(
        company,
        sessions=run_dir,
        workers=workers,
        resume=True,
        lease_s=2.0,
        episode="tests.fleet.runners:spec_sleepy",
    )
    assert again.passed and again.resumed
    states = check_exactly_once(ledger_of(run_dir), company.parent / "episodes.jsonl")
    assert set(states.values()) == {"passed"} and len(states) == 6
