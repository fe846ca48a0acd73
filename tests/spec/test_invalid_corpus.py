"""Every file in tests/spec/invalid/ is refused with exit 2 and exactly the issues in its header.

Each file starts with one ``# expect: LINE:COL: path: message`` comment per issue it must
produce; the file's own path is the prefix of every reported line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentcorp.cli import main

INVALID = Path(__file__).parent / "invalid"
FILES = sorted(INVALID.glob("*.yaml"))
_EXPECT = re.compile(rb"^# expect: (.*)$", re.MULTILINE)


def _expected(path: Path) -> list[str]:
    return [m.decode("utf-8") for m in _EXPECT.findall(path.read_bytes())]


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 40
    assert all(_expected(f) for f in FILES), [f.name for f in FILES if not _expected(f)]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_invalid_file_is_refused_with_exact_position(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    issues = [ln for ln in lines if not ln.startswith("agentcorp:")]
    assert issues == [f"{path}:{e}" for e in _expected(path)]
    assert lines[-1].startswith(f"agentcorp: {len(issues)} error")
    assert "Traceback" not in out + err
    assert out == ""


def test_whole_corpus_in_one_run_reports_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(INVALID)])
    _, err = capsys.readouterr()
    assert code == 2
    expected = sum(len(_expected(f)) for f in FILES)
    assert err.splitlines()[-1] == f"agentcorp: {expected} errors in {len(FILES)} files"
