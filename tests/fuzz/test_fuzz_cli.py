"""CLI arguments: random commands, flags and values; README exit codes, one line, no writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcorp.cli import main
from tests.fuzz._guard import FUZZ, bounded, check_cli_error

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = st.sampled_from(
    [
        ["validate"],
        ["replay"],
        ["report"],
        ["audit", "verify"],
        ["fleet", "simulate"],
        ["fleet", "status"],
        ["fleet", "drain"],
        ["doctor"],
        ["nosuch"],
        [],
    ]
)
FLAGS = st.sampled_from(
    [
        "--nodes",
        "--tasks",
        "--seed",
        "--mode",
        "--json",
        "--ledger",
        "--node",
        "--in",
        "--head",
        "-o",
        "--gif",
        "--company",
        "--no-sandbox",
        "--out",
        "--help",
        "--workers",
        "--",
        "-",
    ]
)
VALUES = st.sampled_from(
    [
        "99999999999999999999",
        "-1",
        "0",
        "1",
        "nan",
        "inf",
        "-inf",
        "1e308",
        "",
        " ",
        "x",
        "/dev/zero",
        "/dev/null",
        "/proc/self/mem",
        "..",
        "../../etc/passwd",
        "a" * 500,
        "\u202e",
        "regrade",
        "decision",
        "action",
        "company.yaml",
        "missing/",
    ]
) | st.text(max_size=15)


@FUZZ
@given(command=COMMANDS, rest=st.lists(FLAGS | VALUES, max_size=6))
def test_any_arguments_give_a_readme_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    rest: list[str],
) -> None:
    if command == ["fleet", "simulate"] and "--help" not in rest:
        # A valid simulation of the default 1000 nodes is work, not a parse; keep it small.
        rest = ["--nodes", "5", "--tasks", "20", *rest]
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    with bounded():
        code = main([*command, *rest])
    err = capsys.readouterr().err
    check_cli_error(code, err, one_line=command != ["validate"])
    written = set(tmp_path.iterdir()) - before
    # Only the outputs a flag asked for: a trace (-o), an animation (--gif) or a folder.
    assert all(p.name in rest or p.name in ("trace.html",) for p in written), written


def test_the_fuzzed_commands_wrote_nothing_in_the_repository() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")  # an installed copy has no tree to compare
    r = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "agentcorp", "tasks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
    )
    assert not [line for line in r.stdout.splitlines() if line.startswith("??")], r.stdout
