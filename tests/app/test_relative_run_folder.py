"""A run folder given as a relative path (README's `--sessions runs/demo`) works like an
absolute one: the sandboxes' homes live in it, and apps running in other working folders
must still see `~/notes.txt` as the same file the checks read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_relative_sessions_folder_desktop_task_passes(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "run", str(ROOT / "tasks/acme"),
         "--task", "log-support-call", "--sessions", "runs/rel", "--no-cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    notes = list((tmp_path / "runs/rel/.agentcorp/sandboxes").rglob("notes.txt"))
    assert notes and "Call from Globex" in notes[0].read_text()
