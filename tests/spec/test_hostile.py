"""Hostile inputs that are generated at test time (too big to commit) or need a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.spec import SpecError, load_company, load_company_text

ROOT = Path(__file__).resolve().parents[2]


def test_fifty_megabyte_file_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.write(b"version: 1\ncompany: big\ndescription: ")
        fh.write(b"x" * (50 * 1024 * 1024))
    code = main(["validate", str(big)])
    _, err = capsys.readouterr()
    assert code == 2
    size = big.stat().st_size
    assert err.splitlines()[0] == (
        f"{big}:1:1: spec file is {size:,} bytes, over the 5,242,880-byte limit"
    )
    assert "Traceback" not in err


def test_size_limit_is_configurable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--max-bytes", "100", str(ROOT / "tasks")])
    _, err = capsys.readouterr()
    assert code == 2
    assert "over the 100-byte limit" in err


def test_text_api_enforces_size_limit() -> None:
    with pytest.raises(SpecError) as info:
        load_company_text("version: 1\n" * 100, "x.yaml", max_bytes=50)
    assert str(info.value) == "x.yaml:1:1: file is over the 50-byte limit for spec files"


def test_python_object_tag_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"version: 1\ncompany: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError) as info:
        load_company_text(text, "evil.yaml")
    assert not marker.exists()
    assert info.value.issues[0].line == 2
    assert "may not construct Python objects" in info.value.issues[0].message


def test_real_subprocess_validate_exit_codes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run(
        [sys.executable, "-m", "agentcorp", "validate", "tasks/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "agentcorp", "validate", "tests/spec/invalid/unknown_role_ref.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == (
        "tests/spec/invalid/unknown_role_ref.yaml:26:11: tasks[1].role: "
        "unknown role 'agnet' (did you mean 'agent'?)"
    )
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""


def test_missing_path_and_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(tmp_path / "nope.yaml"), str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.splitlines()[:2] == [
        f"{tmp_path / 'nope.yaml'}:1:1: no such file or folder",
        f"{tmp_path}:1:1: no *.yaml or *.yml files here",
    ]


def test_folder_with_two_companies_is_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("version: 1\ncompany: x\n")
    with pytest.raises(SpecError) as info:
        load_company(tmp_path)
    assert "exactly one company file" in str(info.value)
    assert "a.yaml, b.yaml" in str(info.value)
