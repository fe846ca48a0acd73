"""Without Xvfb or Chromium the CLI says what to install and exits 3, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentcorp", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _path_without(tmp_path: Path, *missing: str) -> str:
    # A PATH holding every program of the real PATH except ``missing``.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = bindir / name
            if name in missing or link.exists():
                continue
            link.symlink_to(Path(d) / name)
    return str(bindir)


def test_run_without_xvfb_names_the_package(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_without(tmp_path, "Xvfb")}
    r = _run(
        [
            "run",
            "tasks/acme",
            "--task",
            "log-support-call",
            "--no-cache",
            "--sessions",
            str(tmp_path / "s"),
        ],
        env,
        tmp_path,
    )
    assert r.returncode == 3, r.stderr
    assert "apt-get install xvfb" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_without_chromium_names_the_package(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTCORP_CHROMIUM": str(tmp_path / "no-chromium-here")}
    r = _run(
        [
            "run",
            "tasks/acme",
            "--task",
            "backoffice-login",
            "--no-cache",
            "--sessions",
            str(tmp_path / "s"),
        ],
        env,
        tmp_path,
    )
    assert r.returncode == 3, r.stderr
    assert "apt-get install chromium" in r.stderr
    assert "Traceback" not in r.stderr
    # The flag wins over the environment, and says the same.
    r = _run(
        [
            "run",
            "tasks/acme",
            "--task",
            "backoffice-login",
            "--no-cache",
            "--chromium",
            str(tmp_path / "elsewhere"),
            "--sessions",
            str(tmp_path / "t"),
        ],
        dict(os.environ),
        tmp_path,
    )
    assert r.returncode == 3, r.stderr
    assert f"at {tmp_path / 'elsewhere'}" in r.stderr


def test_doctor_without_xvfb_exits_3(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_without(tmp_path, "Xvfb")}
    r = _run(["doctor", "--quiet"], env, tmp_path)
    assert r.returncode == 3
    assert "apt-get install xvfb" in r.stderr
