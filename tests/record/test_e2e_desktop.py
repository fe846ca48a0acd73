"""End to end on a real Xvfb desktop: ``agentcorp run`` records, every replay mode reproduces.

The sample company's ``log-support-call`` task runs offline (scripted steps) in mousepad on a
fresh Xvfb; the recorded session is then replayed by decision (recorded frames, no sandbox;
and again on a live desktop), by action (a fresh desktop, no model) and by regrade, and
turned into a trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.record.session import open_session

ROOT = Path(__file__).resolve().parents[2]
COMPANY = ROOT / "tasks" / "acme"
ENV = {**os.environ, "BACKOFFICE_PASSWORD": "e2e-Backoffice-Pw-77"}


@pytest.fixture(scope="module")
def desktop_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sessions")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(COMPANY),
            "--task",
            "log-support-call",
            "--sessions",
            str(out),
        ],
        cwd=tmp_path_factory.mktemp("cwd"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # one folder per attempt (a retried task leaves several); the run reported a pass
    folders = sorted(
        p for p in (out / "log-support-call").iterdir() if (p / "manifest.json").is_file()
    )
    assert folders, list((out / "log-support-call").iterdir())
    return folders[-1]


def test_the_run_left_a_complete_session(desktop_session: Path) -> None:
    s = open_session(desktop_session)
    assert s.complete and s.task_id == "log-support-call"
    assert s.outcome["status"] == "pass"
    assert len(s.observations) >= 4
    s.verify()


def test_decision_replay_without_a_sandbox(
    desktop_session: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = sum(e.step.kind == "action" for e in open_session(desktop_session).events)
    assert main(["replay", str(desktop_session), "--mode", "decision", "--no-sandbox"]) == 0
    assert f"decision replay reproduced ({actions} matched)" in capsys.readouterr().out


def test_action_and_decision_replay_on_a_fresh_desktop(
    desktop_session: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKOFFICE_PASSWORD", ENV["BACKOFFICE_PASSWORD"])
    assert (
        main(
            [
                "replay",
                str(desktop_session),
                "--mode",
                "action",
                "--company",
                str(COMPANY),
                "--out",
                str(tmp_path / "frames"),
            ]
        )
        == 0
    )
    actions = sum(e.step.kind == "action" for e in open_session(desktop_session).events)
    assert f"action replay reproduced ({actions} matched)" in capsys.readouterr().out
    assert (
        main(["replay", str(desktop_session), "--mode", "decision", "--company", str(COMPANY)]) == 0
    )


def test_regrade_and_report(desktop_session: Path, tmp_path: Path) -> None:
    assert main(["replay", str(desktop_session), "--mode", "regrade"]) == 0
    assert main(["report", str(desktop_session), "-o", str(tmp_path / "t.html")]) == 0
    assert (tmp_path / "t.html").stat().st_size > 10_000


def test_live_replay_without_company_is_a_clear_error(
    desktop_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    # ``agentcorp run`` names the company file in the manifest, but a recording never
    # chooses what a live replay starts: --company is needed either way.
    assert open_session(desktop_session).manifest["company_file"] == str(
        (COMPANY / "company.yaml").resolve()
    )
    bare = tmp_path / "bare"
    shutil.copytree(desktop_session, bare)
    manifest = json.loads((bare / "manifest.json").read_text(encoding="utf-8"))
    del manifest["company_file"]
    (bare / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["replay", str(bare), "--mode", "action"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--company" in err[0]
    assert main(["replay", str(desktop_session), "--mode", "action"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--company" in err[0] and "not opened" in err[0]
