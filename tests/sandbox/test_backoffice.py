"""The back office server's own entry point: bad flags fail in one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[2] / "sandboxes" / "backoffice" / "serve.py"


@pytest.mark.parametrize("argv", [["--port", "abc"], ["--nope"]])
def test_bad_flags_exit_2_with_a_usage_line(argv: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, str(SERVE), *argv], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("serve.py: error:")
