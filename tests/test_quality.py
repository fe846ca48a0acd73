"""The gates from the first commit: ruff, mypy --strict, and the import-layering contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_clean() -> None:
    r = _run(sys.executable, "-m", "ruff", "check", "agentcorp", "tests", "bench", "sandboxes")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean() -> None:
    r = _run(sys.executable, "-m", "mypy", "agentcorp")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_clean() -> None:
    r = _run(
        sys.executable,
        "-m",
        "ruff",
        "format",
        "--check",
        "agentcorp",
        "tests",
        "bench",
        "sandboxes",
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_layering() -> None:
    exe = shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency; run sandboxes/install.sh --dev"
    r = _run(exe)
    assert r.returncode == 0, r.stdout + r.stderr
