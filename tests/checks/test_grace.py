"""Checks that only read are read again for a moment when they fail (an app writes its file
a little after the last action); checks that run something run once."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from agentcorp.checks import CheckContext, evaluate_steps, passive


def test_a_file_written_a_moment_later_passes_within_the_grace(tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    later = threading.Timer(0.5, lambda: out.write_text("Saved order 42"))
    later.start()
    try:
        tree = {"check": "file_contains", "path": "~/order.txt", "text": "order 42"}
        status, steps = evaluate_steps(tree, CheckContext(home=tmp_path), grace_s=5.0)
    finally:
        later.cancel()
    assert status == "pass", [(s.name, s.status, s.detail) for s in steps]
    # Without a grace the same check, read at once, fails.
    out.unlink()
    assert evaluate_steps(tree, CheckContext(home=tmp_path))[0] == "fail"


def test_a_check_that_runs_something_runs_once(tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    script = (
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); raise SystemExit(1)"
    )
    tree = {
        "all": [
            {"check": "file_exists", "path": "~/nothing"},
            {"check": "command", "argv": [sys.executable, "-c", script]},
        ]
    }
    assert not passive(tree)
    status, _ = evaluate_steps(tree, CheckContext(home=tmp_path), grace_s=5.0)
    assert status == "fail"
    assert counter.read_text() == "x"  # run once, not polled
    assert passive({"not": {"any": [{"check": "sqlite", "database": "d", "query": "q"}]}})
