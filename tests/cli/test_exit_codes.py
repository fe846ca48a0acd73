"""Issue 16 defects 7 and 9: the README's exit codes, one line each, for hostile CLI input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.cli import main
from tests.record._app import Recorded, model_script, record

ROOT = Path(__file__).resolve().parents[2]
BIG = "99999999999999999999"

COMPANY = """\
version: 1
company: x
roles:
  r: {title: R, goal: g, sandbox: d}
sandboxes:
  d: {kind: desktop, screen: [320, 240]}
tasks:
  - {id: t, role: r, description: d, steps: [{key: Escape}]}
"""


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    return record(tmp_path / "session", tmp_path / "home", script=model_script())


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fleet", "simulate", "--nodes", BIG], "--nodes must be 1 to 100,000"),
        (["fleet", "simulate", "--tasks", BIG], "--tasks must be 1 to 1,000,000"),
        (["fleet", "simulate", "--seed", "-1"], "--seed must be"),
        (["fleet", "simulate", "--nodes", "many"], "'--nodes'"),
        (["run", "company.yaml", "--workers", BIG], "--workers"),
        (["run", "company.yaml", "--spare", BIG], "--spare must be 0 to 4096"),
        (["run", "company.yaml", "--lease", "nan"], "--lease"),
        (["fleet", "drain", "--ledger", ".", "--node", "x", "--in", "nan"], "--in must be"),
        (["run"], "Missing argument"),
        (["no-such-command"], "No such command"),
    ],
)
def test_bad_numbers_and_usage_are_exit_2_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    needle: str,
) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert needle in _one_line(capsys.readouterr().err)


def test_empty_api_key_is_exit_3_not_offline(tmp_path: Path) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "AGENTCORP_"))}
    env.update(XAI_API_KEY="", PYTHONPATH=str(ROOT))
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "run", "company.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 3
    assert "XAI_API_KEY is set but empty" in _one_line(r.stderr)
    assert r.stdout == ""  # nothing ran


def test_unwritable_report_paths_are_exit_2(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(recorded.folder), "-o", "/proc/trace.html"]) == 2
    assert "cannot write the trace" in _one_line(capsys.readouterr().err)
    assert main(["report", str(recorded.folder), "--gif", "/proc/t.gif", "-o", "/dev/null"]) == 2


def test_unwritable_sessions_folder_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "company.yaml", "--sessions", "/proc/no/such"]) == 2
    assert "--sessions" in _one_line(capsys.readouterr().err)


def test_regrade_with_missing_blobs_is_a_bad_recording(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for blob in (recorded.folder / "blobs").iterdir():
        blob.unlink()
    assert main(["replay", str(recorded.folder), "--mode", "regrade"]) == 2
    assert "missing" in _one_line(capsys.readouterr().err)


def test_audit_verify_of_dev_null_or_an_empty_file_is_not_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "/dev/null"]) == 2
    assert "not a regular file" in _one_line(capsys.readouterr().err)
    (tmp_path / "empty.jsonl").touch()
    assert main(["audit", "verify", str(tmp_path / "empty.jsonl")]) == 1
    captured = capsys.readouterr()
    assert "intact" not in captured.out and "empty" in captured.err


def test_manifest_with_wrong_types_never_crashes(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    base = json.loads((recorded.folder / "manifest.json").read_text())
    for key in base:
        for value in (5, [], None):
            bad = tmp_path / "bad"
            shutil.rmtree(bad, ignore_errors=True)
            shutil.copytree(recorded.folder, bad)
            (bad / "manifest.json").write_text(json.dumps({**base, key: value}))
            for argv in (
                ["replay", str(bad), "--no-sandbox"],
                ["replay", str(bad), "--mode", "regrade"],
                ["report", str(bad), "-o", str(tmp_path / "t.html")],
            ):
                code = main(argv)
                err = capsys.readouterr().err
                assert "internal error" not in err and "Traceback" not in err, (key, value, err)
                assert code in (0, 1, 2), (key, value, argv, code)
                if code == 2:
                    _one_line(err)
