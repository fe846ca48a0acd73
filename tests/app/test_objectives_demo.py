"""The sample company's objective offline: the shipped recording of the manager plans it, the
plan's tasks run on the real apps, the objective passes; the session decision-replays."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.app.objectives import objective_hash, plan_objective, replay_manager
from agentcorp.errors import SetupError
from agentcorp.spec import load_company

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"
SHIPPED = ACME / "recordings" / "objective.onboard-customer" / "manager"


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_PASSWORD")) and not k.startswith("AGENTCORP_")
    }
    # The back office's service is `python3 serve.py`: this interpreter's, with Django.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcorp", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_shipped_manager_session_fits_the_company() -> None:
    company = load_company(ACME)
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert manifest["spec_hash"] == objective_hash(company, company.objective("onboard-customer"))
    ok, detail, calls = replay_manager(SHIPPED)
    assert ok and calls == 1, detail


def test_offline_demo_runs_the_objective_and_it_passes(tmp_path: Path) -> None:
    r = _cli(
        [
            "run",
            str(ACME),
            "--objective",
            "onboard-customer",
            "--json",
            "--sessions",
            str(tmp_path / "run"),
            "--no-cache",
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["passed"]
    [obj] = doc["objectives"]
    assert obj["id"] == "onboard-customer" and obj["status"] == "passed" and obj["rounds"] == 1
    assert {t["id"]: t["status"] for t in obj["tasks"]} == {
        "onboard-add-customer": "pass",
        "onboard-book-invoice": "pass",
        "onboard-create-invoice": "pass",
        "onboard-log": "pass",
    }
    # Offline, the manager is its shipped recording: nothing is spent in this run, and what
    # the recording cost when it was made is reported apart.
    assert obj["tokens"] == 0 and obj["cost_usd"] == 0
    assert obj["manager"]["replayed"] and obj["manager"]["tokens"] > 0
    # The run's own manager session replays to the same plan, through the command line.
    replay = _cli(["replay", obj["session"], "--json"], tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["ok"] is True


def test_plan_command_shows_the_plan_offline(tmp_path: Path) -> None:
    r = _cli(["plan", str(ACME), "--objective", "onboard-customer"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Plan for objective onboard-customer:")
    assert any(
        ln.startswith(
            "- onboard-add-customer (sales-ops), after nothing: Create the customer "
            "Initech LLC <billing@initech.example>"
        )
        for ln in lines
    )
    bad = _cli(["plan", str(ACME), "--objective", "onboard"], tmp_path)
    assert bad.returncode == 2
    assert "unknown objective 'onboard' (did you mean 'onboard-customer'?)" in bad.stderr


def test_a_changed_company_does_not_replay_a_stale_plan(tmp_path: Path) -> None:
    copy = tmp_path / "acme"
    shutil.copytree(ACME, copy, ignore=shutil.ignore_patterns("recordings"))
    shutil.copytree(
        ACME / "recordings" / "objective.onboard-customer",
        copy / "recordings" / "objective.onboard-customer",
    )
    text = (copy / "company.yaml").read_text()
    (copy / "company.yaml").write_text(text.replace("Initech LLC", "Initrode LLC"))
    with pytest.raises(SetupError, match="made for another version") as err:
        plan_objective(copy, "onboard-customer", environ={})
    assert "\n" not in str(err.value)
