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


def test_no_dead_code_in_the_package() -> None:
    # Configuration in pyproject.toml [tool.vulture]; framework-used names are listed in
    # tests/vulture_whitelist.py with the reason each one is used.
    r = _run(sys.executable, "-m", "vulture")
    assert r.returncode in (0, 3), r.stdout + r.stderr  # 3: something found (filtered below)
    dead = [line for line in r.stdout.splitlines() if line.startswith("agentcorp/")]
    assert not dead, "dead code (delete it, or whitelist a framework-used name):\n" + "\n".join(
        dead
    )


def test_the_dead_code_check_finds_an_unused_helper(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text(
        "def used() -> int:\n    return 1\n\n\ndef unused() -> int:\n    return 2\n\n\nused()\n"
    )
    r = _run(sys.executable, "-m", "vulture", str(module), "--min-confidence", "60")
    assert r.returncode == 3 and "unused function 'unused'" in r.stdout, r.stdout + r.stderr


def test_complexity_gate_is_on_for_the_package() -> None:
    # C901 <= 15 is part of `ruff check` (pyproject), so test_ruff_clean enforces it.
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C90" in cfg["select"] and cfg["mccabe"]["max-complexity"] <= 15
    assert not any("C90" in v for k, v in cfg["per-file-ignores"].items() if "agentcorp" in k)
