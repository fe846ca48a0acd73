"""Issue 16 defect 6: a hostile session folder cannot make a reader allocate without bound."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from agentcorp.errors import RecordingError
from agentcorp.record.session import open_session
from tests.record._app import Recorded
from tests.test_io import png_header

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["manifest.json", "events.jsonl"])
def test_manifest_or_events_linked_to_dev_zero(recorded: Recorded, name: str) -> None:
    target = recorded.folder / name
    target.unlink()
    target.symlink_to("/dev/zero")
    with pytest.raises(RecordingError, match="not followed"):
        open_session(recorded.folder)


def test_blob_linked_to_dev_zero_or_a_fifo(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    call = next(e for e in s.events if "request" in e.refs)
    blob = recorded.folder / "blobs" / call.refs["request"]
    blob.unlink()
    blob.symlink_to("/dev/zero")
    with pytest.raises(RecordingError, match="not followed"):
        s.blob(call.refs["request"])
    blob.unlink()
    os.mkfifo(blob)
    with pytest.raises(RecordingError, match="not a regular file"):
        s.blob(call.refs["request"])


@pytest.mark.parametrize("side", [12000, 40000])
def test_huge_frame_refused_from_its_header(recorded: Recorded, side: int) -> None:
    s = open_session(recorded.folder)
    sha = "f" * 64
    (recorded.folder / "blobs" / f"{sha}.png").write_bytes(png_header(side, side))
    tracemalloc.start()
    try:
        with pytest.raises(RecordingError, match=r"frame unreadable.*pixel"):
            s.frame(sha)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20, peak


def test_cli_report_on_dev_zero_manifest_is_one_line(recorded: Recorded, tmp_path: Path) -> None:
    (recorded.folder / "manifest.json").unlink()
    (recorded.folder / "manifest.json").symlink_to("/dev/zero")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "report",
            str(recorded.folder),
            "-o",
            str(tmp_path / "t.html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not followed" in r.stderr
