"""The simulator at a small size: the real policy and state machine, nothing lost or doubled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.errors import ConfigError
from agentcorp.fleet.sim import SimConfig, load_durations, simulate

ROOT = Path(__file__).resolve().parents[2]


def test_small_fleet_loses_nothing_and_duplicates_nothing() -> None:
    r = simulate(SimConfig(nodes=300, tasks=6000, seed=3))
    assert r.completed == 6000
    assert r.lost == 0 and r.duplicates == 0
    assert r.passed > 5000
    # The availability model really bit: leases were lost and zombies were fenced out.
    assert r.requeued > 0 and r.fenced > 0
    assert 0 < r.wasted_fraction < 0.05
    assert r.decision_us > 0 and r.dispatches >= 6000 - r.skipped - r.budget_exceeded


def test_same_seed_same_run() -> None:
    a = simulate(SimConfig(nodes=50, tasks=500, seed=11))
    b = simulate(SimConfig(nodes=50, tasks=500, seed=11))
    keys = ("completed", "passed", "requeued", "fenced", "dispatches", "makespan_s")
    assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys]


def test_harsh_fleet_all_sudden_losses_still_exactly_once() -> None:
    r = simulate(
        SimConfig(
            nodes=40,
            tasks=800,
            seed=5,
            mean_online_s=900.0,
            announced_fraction=0.0,
            zombie_fraction=1.0,
        )
    )
    assert r.lost == 0 and r.duplicates == 0 and r.completed == 800
    assert r.fenced > 0


def test_durations_from_recorded_sessions(tmp_path: Path) -> None:
    for i, d in enumerate([30.0, 45.5, 60.0]):
        s = tmp_path / f"s{i}"
        s.mkdir()
        (s / "manifest.json").write_text(json.dumps({"duration_s": d, "task": f"x{i}"}))
    durations = load_durations(tmp_path)
    assert sorted(durations) == [30.0, 45.5, 60.0]
    r = simulate(SimConfig(nodes=20, tasks=200, seed=1), durations)
    assert r.lost == 0 and r.completed == 200


def test_bad_durations_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no manifest\.json with duration_s"):
        load_durations(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable manifest"):
        load_durations(tmp_path)


def test_cli_simulate_json_and_garbage_flags() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "fleet",
            "simulate",
            "--nodes",
            "30",
            "--tasks",
            "300",
            "--seed",
            "2",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["lost"] == 0 and out["duplicates"] == 0 and out["tasks"] == 300
    for args, msg in [
        (["--nodes", "0"], "--nodes must be 1 to 100,000"),
        (["--tasks", "-5"], "--tasks must be 1 to 1,000,000"),
    ]:
        bad = subprocess.run(
            [sys.executable, "-m", "agentcorp", "fleet", "simulate", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 2, bad.stderr
        assert msg in bad.stderr and "Traceback" not in bad.stderr
