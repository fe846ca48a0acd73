"""Session manifests and events with hostile content, read by replay, regrade and report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcorp.cli import main
from tests.fuzz._guard import FUZZ, bounded, check_cli_error
from tests.fuzz.test_fuzz_model import JSON
from tests.record._app import model_script, record


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-session")
    return record(root / "s", root / "home", script=model_script()).folder


def _copy(session: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(session, dest)
    return dest


def _exercise(folder: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["replay", str(folder), "--mode", "regrade"],
        ["replay", str(folder), "--no-sandbox"],
        ["report", str(folder), "-o", str(out / "t.html")],
    ):
        with bounded():
            code = main(argv)
        check_cli_error(code, capsys.readouterr().err)


@FUZZ
@given(
    changes=st.dictionaries(
        st.text(max_size=12)
        | st.sampled_from(
            [
                "format_version",
                "session_id",
                "task_id",
                "outcome",
                "checks",
                "events",
                "models",
                "actor_config",
                "episode",
                "final_state",
                "started_at",
                "sandbox",
                "task_spec",
                "audit",
            ]
        ),
        JSON,
        min_size=1,
        max_size=3,
    )
)
def test_manifest_fields_of_any_type(
    session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, object]
) -> None:
    folder = _copy(session, tmp_path)
    m = json.loads((folder / "manifest.json").read_text())
    m.update(changes)
    (folder / "manifest.json").write_text(json.dumps(m))
    _exercise(folder, tmp_path, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) <= ["copy", "t.html"]


@FUZZ
@given(
    line=st.integers(0, 40),
    content=st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {
            "kind": st.sampled_from(
                ["observation", "action", "model_call", "check", "error", "policy", "budget"]
            )
        },
        optional={"step": JSON, "t": JSON, "action": JSON, "_ref": JSON, "size": JSON},
    ).map(lambda v: json.dumps(v).encode()),
)
def test_event_lines_of_any_content(
    session: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    line: int,
    content: bytes,
) -> None:
    folder = _copy(session, tmp_path)
    events = (folder / "events.jsonl").read_bytes().split(b"\n")
    events[line % max(1, len(events) - 1)] = content.replace(b"\n", b" ")
    (folder / "events.jsonl").write_bytes(b"\n".join(events))
    _exercise(folder, tmp_path, capsys)


@FUZZ
@given(blob=st.binary(max_size=300), which=st.integers(0, 100))
def test_blobs_of_any_content(
    session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], blob: bytes, which: int
) -> None:
    folder = _copy(session, tmp_path)
    blobs = sorted((folder / "blobs").iterdir())
    blobs[which % len(blobs)].write_bytes(blob)
    _exercise(folder, tmp_path, capsys)
