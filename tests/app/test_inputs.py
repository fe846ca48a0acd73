"""Bad input to ``agentcorp.run`` and ``agentcorp run``: one line, exit 2, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agentcorp
from agentcorp.app.config import resolve_config
from agentcorp.app.episode import RunFolder
from agentcorp.errors import ConfigError
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import FleetTask
from tests.fleet.conftest_helpers import plan_tasks, write_company

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "agentcorp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("workers", ["0", "-1", "10000", "99999999999999999999", "two", "1.5"])
def test_bad_worker_counts_are_one_line_errors(tmp_path: Path, workers: str) -> None:
    company = write_company(tmp_path / "co", 2)
    run_dir = tmp_path / "run"
    r = _cli(["run", str(company), "--workers", workers, "--sessions", str(run_dir)], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agentcorp: error: --workers:"), r.stderr
    assert not run_dir.exists()  # refused before anything was made


def test_resume_of_a_folder_with_no_run(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 2)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no run to resume") as err:
        agentcorp.run(company, sessions=tmp_path / "run", resume=True, environ={})
    assert "\n" not in str(err.value)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["keep.txt"]


def _ledger_for(folder: RunFolder, company: Path, tasks: list[str], state: str) -> bytes:
    """A run folder with a ledger of ``company`` whose tasks are all in ``state``."""
    from agentcorp.spec import load_company

    co = load_company(company)
    folder.write_settings(co, resolve_config(environ={}, sessions=folder.root))
    led = SqliteLedger(folder.ledger)
    try:
        graph = [t for t in plan_tasks(company) if t.id in tasks]
        led.ensure_tasks(
            [FleetTask(t.id, tuple(d for d in t.depends_on if d in tasks)) for t in graph],
            str(company),
        )
        if state == "passed":
            for t in tasks:
                lease = led.lease(t, "w", "h", 30)
                led.start(t, lease.epoch)
                led.finish(t, lease.epoch, "passed")
    finally:
        led.close()
    return folder.ledger.read_bytes()


def test_ledger_of_another_company_is_refused(tmp_path: Path) -> None:
    ours = write_company(tmp_path / "ours", 2, name="ours")
    theirs = write_company(tmp_path / "theirs", 2, name="theirs")
    folder = RunFolder(tmp_path / "run")
    before = _ledger_for(folder, theirs, ["t00", "t01"], "pending")
    for resume in (False, True):
        with pytest.raises(ConfigError, match="holds a run of company 'theirs', not 'ours'"):
            agentcorp.run(ours, sessions=folder.root, resume=resume, environ={})
    assert folder.ledger.read_bytes() == before


def test_ledger_of_another_task_graph_is_refused(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 3)
    folder = RunFolder(tmp_path / "run")
    before = _ledger_for(folder, company, ["t00", "t01"], "pending")
    with pytest.raises(ConfigError, match="another task graph"):
        agentcorp.run(company, sessions=folder.root, resume=True, environ={}, episode=_NOOP)
    assert folder.ledger.read_bytes() == before


_NOOP = "agentcorp.fleet.runners:noop"


def test_unfinished_run_is_refused_without_resume(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 2)
    folder = RunFolder(tmp_path / "run")
    before = _ledger_for(folder, company, ["t00", "t01"], "pending")
    r = _cli(["run", str(company), "--sessions", str(folder.root)], tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unfinished run" in lines[0] and "--resume" in lines[0]
    assert folder.ledger.read_bytes() == before
    # With --resume it runs to the end.
    report = agentcorp.run(company, sessions=folder.root, resume=True, environ={}, episode=_NOOP)
    assert report.passed and report.resumed
    assert [r.task_id for r in report.results] == ["t00", "t01"]


def test_finished_run_is_kept_aside_and_a_new_one_starts(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 2)
    folder = RunFolder(tmp_path / "run")
    _ledger_for(folder, company, ["t00", "t01"], "passed")
    report = agentcorp.run(company, sessions=folder.root, environ={}, episode=_NOOP)
    assert report.passed and not report.resumed
    kept = list(folder.root.glob(".agentcorp-*/ledger.db"))
    assert len(kept) == 1  # the finished run's ledger, not deleted


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_run_folder(tmp_path: Path, where: str) -> None:
    company = write_company(tmp_path / "co", 2)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "run" if where == "under-a-file" else Path("/proc/1/agentcorp-run")
    r = _cli(["run", str(company), "--sessions", str(target)], tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sessions: cannot write to" in lines[0], r.stderr
    assert blocker.read_text() == "x"


def test_unknown_setting_and_task(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 2)
    with pytest.raises(ConfigError, match=r"unknown setting 'planer_model'.*'planner_model'"):
        agentcorp.run(company, environ={}, planer_model="x")
    with pytest.raises(ConfigError, match="--task: "):
        agentcorp.run(company, environ={}, tasks=["nope"])
    with pytest.raises(ConfigError, match="no selected task has an input named 'zzz'"):
        agentcorp.run(company, environ={}, inputs={"zzz": 1})


def test_json_report_through_the_cli(tmp_path: Path) -> None:
    company = write_company(tmp_path / "co", 3)
    r = _cli(
        ["run", str(company), "--sessions", str(tmp_path / "run"), "--json", "--episode", _NOOP],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["passed"] is True and doc["backend"] == "inline"
    assert [(t["id"], t["status"]) for t in doc["tasks"]] == [
        ("t00", "pass"),
        ("t01", "pass"),
        ("t02", "pass"),
    ]
    for t in doc["tasks"]:
        assert set(t) >= {"id", "status", "mode", "attempts", "actions", "tokens", "cost_usd"}
        assert set(t) >= {"elapsed_s", "session", "inputs"}
