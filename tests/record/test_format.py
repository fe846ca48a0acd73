from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcorp.errors import RecordingError
from agentcorp.record.format import FORMAT_VERSION
from agentcorp.record.recorder import SessionRecorder
from agentcorp.record.session import open_session
from agentcorp.types import ActionStep, ModelCallStep, ObservationStep
from tests.record._app import Recorded

ROOT = Path(__file__).resolve().parents[2]


def test_roundtrip_manifest_events_blobs(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    assert s.complete and s.reason is None
    m = s.manifest
    assert m["format_version"] == FORMAT_VERSION
    assert m["task_id"] == "fill-form" and len(m["spec_hash"]) == 64
    assert m["agentcorp_version"] and m["sandbox"]["screen"] == [1280, 800]
    assert m["models"]["actor"] == "grok-test" and m["seeds"] == {"python": 0}
    assert m["budgets"] == {"steps": 50} and m["started_at"] <= m["ended_at"]
    assert m["outcome"]["status"] == "pass"
    assert {"name": "success", "status": "pass"}.items() <= m["checks"][-1].items()
    # every step the loop yielded is there, in order, equal to the original
    assert [type(x).__name__ for x in s.steps()] == [type(x).__name__ for x in recorded.steps]
    for got, want in zip(s.steps(), recorded.steps, strict=True):
        if not isinstance(want, ModelCallStep):
            assert got == want
    s.verify()
    obs = s.observations[1]
    assert isinstance(obs.step, ObservationStep)
    frame = s.observation_frame(obs)
    assert frame is not None and frame.sha256 == obs.step.frame_sha256
    original = next(
        x
        for x in recorded.steps
        if isinstance(x, ObservationStep) and x.frame_sha256 == obs.step.frame_sha256
    )
    assert s.observation_image(obs) == original.image
    call = next(e for e in s.events if isinstance(e.step, ModelCallStep))
    body = s.request_body(call, inline_images=True)
    assert body == next(x for x in recorded.steps if isinstance(x, ModelCallStep)).request


def test_blobs_are_deduplicated(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    frames = {e.refs["frame"] for e in s.observations}
    pngs = list((recorded.folder / "blobs").glob("*.png"))
    assert len(pngs) == len(frames) < len(s.observations) + 1
    # the first screenshot appears in every request body, but is stored once
    first = s.observations[0].refs["image"]
    assert (recorded.folder / "blobs" / first).is_file()
    assert not list((recorded.folder / "blobs").glob(".*tmp"))


def test_manifest_is_written_last(tmp_path: Path, recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    rec = SessionRecorder(
        tmp_path / "partial", task_id="t", spec_hash="h", sandbox_info={}, models={}
    )
    for e in s.events[:5]:
        rec.write(e.step)
    rec.flush()
    assert not (tmp_path / "partial" / "manifest.json").exists()
    part = open_session(tmp_path / "partial")
    assert not part.complete and "manifest.json" in (part.reason or "")
    assert len(part.events) == 5
    rec.finish("pass")
    assert open_session(tmp_path / "partial").complete
    with pytest.raises(RecordingError, match="already finished"):
        rec.write(s.events[0].step)
    with pytest.raises(RecordingError, match="not empty"):
        SessionRecorder(
            tmp_path / "partial", task_id="t", spec_hash="h", sandbox_info={}, models={}
        )


@pytest.mark.parametrize("with_manifest", [True, False])
def test_truncation_at_every_byte(tmp_path: Path, recorded: Recorded, with_manifest: bool) -> None:
    # A small session (the first steps of a real run) so every byte offset can be tried.
    folder = tmp_path / "cut"
    rec = SessionRecorder(folder, task_id="t", spec_hash="h", sandbox_info={}, models={})
    for e in open_session(recorded.folder).events[:7]:
        rec.write(e.step)
    rec.finish("pass")
    if not with_manifest:
        (folder / "manifest.json").unlink()
    events = folder / "events.jsonl"
    data = events.read_bytes()
    assert 1000 < len(data) < 5000
    full_lines = data.count(b"\n")
    for k in range(len(data)):
        events.write_bytes(data[:k])
        s = open_session(folder)  # must never raise on a clean truncation
        assert not s.complete, k
        assert s.reason and ("events.jsonl" in s.reason or "manifest.json" in s.reason), k
        assert len(s.events) == data[:k].count(b"\n") <= full_lines
        if data[:k].endswith(b"\n") or k == 0:
            continue
        if with_manifest:
            assert f"events.jsonl:{len(s.events) + 1}" in s.reason, (k, s.reason)
    events.write_bytes(data)
    assert open_session(folder).complete is with_manifest


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from PIL import Image, ImageDraw
    from agentcorp.record.recorder import SessionRecorder
    from agentcorp.sandbox.base import Frame
    from agentcorp.types import ObservationStep, ErrorStep
    rec = SessionRecorder(sys.argv[1], task_id="t", spec_hash="h", sandbox_info={},
                          models={}, secrets=["s3cr3t-value"])
    i = 0
    while True:
        img = Image.new("RGB", (320, 200), (i % 256, 40, 90))
        ImageDraw.Draw(img).text((10, 10), f"frame {i}", fill=(255, 255, 255))
        f = Frame.from_pil(img)
        rec.write(ObservationStep(i, time.time(), f.sha256, f.size, f.size, frame=f,
                                  image=f"img{i}".encode() * 50))
        rec.write(ErrorStep(i, time.time(), "Note", "x" * 3000 + " s3cr3t-value"))
        i += 1
        if i == 20:
            rec.flush()
            print("ready", flush=True)
""")


def test_kill_9_mid_write_is_incomplete_never_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    s = open_session(folder)
    assert not s.complete and "manifest.json" in (s.reason or "")
    assert len(s.events) >= 40
    for e in s.observations:  # blobs that exist are whole (written via rename)
        sha = e.refs["image"]
        if (folder / "blobs" / sha).exists():
            s.blob(sha)
    assert b"s3cr3t-value" not in (folder / "events.jsonl").read_bytes()
    with pytest.raises(RecordingError, match="incomplete session"):
        s.require_complete()


def test_tampered_blob_fails_its_hash_check(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    sha = s.observations[0].refs["image"]
    path = recorded.folder / "blobs" / sha
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=f"blobs/{sha}: blob tampered"):
        s.blob(sha)
    with pytest.raises(RecordingError, match="tampered"):
        s.verify()


def test_tampered_frame_fails_its_pixel_hash(recorded: Recorded) -> None:
    from PIL import Image

    s = open_session(recorded.folder)
    sha = s.observations[0].refs["frame"]
    path = recorded.folder / "blobs" / f"{sha}.png"
    with Image.open(path) as img:
        img = img.convert("RGB")
    img.putpixel((5, 5), (1, 2, 3))
    img.save(path)
    with pytest.raises(RecordingError, match="frame tampered"):
        s.frame(sha)
    path.write_bytes(b"not a png")
    with pytest.raises(RecordingError, match="frame unreadable"):
        s.frame(sha)


def test_missing_blob_is_named(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    sha = s.observations[0].refs["image"]
    (recorded.folder / "blobs" / sha).unlink()
    with pytest.raises(RecordingError, match="blob missing"):
        s.blob(sha)
    with pytest.raises(RecordingError, match="invalid blob name"):
        s.blob("../manifest.json")


def _rewrite_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def test_unknown_version_is_rejected_clearly(recorded: Recorded) -> None:
    _rewrite_manifest(recorded.folder, format_version=99)
    with pytest.raises(RecordingError) as info:
        open_session(recorded.folder)
    msg = str(info.value)
    assert "\n" not in msg and "manifest.json" in msg and "format version 99" in msg
    _rewrite_manifest(recorded.folder, format_version="1")
    with pytest.raises(RecordingError, match="must be an integer"):
        open_session(recorded.folder)


@pytest.mark.parametrize(
    ("where", "content", "expected"),
    [
        ("manifest.json", b"{not json", r"manifest.json:1: not valid JSON"),
        ("manifest.json", b"[1, 2]", r"manifest.json: must hold a JSON object"),
        ("events.jsonl", b'{"kind":"observation"}\n', r"events.jsonl:1: observation step"),
        ("events.jsonl", b"garbage\n{}\n", r"events.jsonl:1: not a JSON line"),
        ("events.jsonl", b"[]\n", r"events.jsonl:1: event must be a JSON object"),
        ("events.jsonl", b'{"kind":"nope"}\n', r"events.jsonl:1: unknown step kind 'nope'"),
        (
            "events.jsonl",
            b'{"kind":"error","step":0,"t":0,"error_type":"E","message":"m","_ref":[1]}\n',
            r"events.jsonl:1: _ref must map",
        ),
        ("events.jsonl", b"\xff\xfe\n", r"events.jsonl:1: not a JSON line"),
    ],
)
def test_garbage_is_one_clear_line(
    recorded: Recorded, where: str, content: bytes, expected: str
) -> None:
    (recorded.folder / where).write_bytes(content)
    with pytest.raises(RecordingError, match=expected) as info:
        open_session(recorded.folder)
    assert "\n" not in str(info.value)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such session folder"):
        open_session(tmp_path / "nothing")


def test_v0_layout_is_migrated_on_read(tmp_path: Path) -> None:
    """A made-up prototype layout (v0): other key names, outcome as a bare string."""
    folder = tmp_path / "v0"
    (folder / "blobs").mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "version": 0,
                "session_id": "old",
                "task": "fill-form",
                "spec_sha": "abc",
                "result": "pass",
                "models": {"actor": "grok-2"},
            }
        )
    )
    lines = [
        {
            "type": "action",
            "step": 1,
            "ts": 10.5,
            "source": "model",
            "action": {"kind": "click", "x": 3, "y": 4},
        },
        {"type": "check", "step": 1, "ts": 11.0, "name": "saved", "status": "pass"},
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    s = open_session(folder)
    assert s.version == 0 and s.complete
    assert s.task_id == "fill-form" and s.spec_hash == "abc"
    assert s.outcome == {"status": "pass", "reason": ""}
    assert s.manifest["format_version"] == FORMAT_VERSION
    first = s.steps()[0]
    assert isinstance(first, ActionStep) and first.t == 10.5 and first.action.x == 3
    assert [c.kind for c in s.steps()] == ["action", "check"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=400), keep=st.integers(min_value=0, max_value=6))
def test_reader_never_crashes_on_garbage(recorded: Recorded, garbage: bytes, keep: int) -> None:
    """Any bytes after a few good lines: a clear RecordingError or an incomplete session."""
    events = recorded.folder / "events.jsonl"
    original = recorded.folder / "events.original"  # the fixture is shared by all examples
    if not original.exists():
        original.write_bytes(events.read_bytes())
    lines = original.read_bytes().split(b"\n")
    assert len(lines) > 7
    events.write_bytes(b"\n".join(lines[:keep]) + (b"\n" if keep else b"") + garbage)
    try:
        s = open_session(recorded.folder)
    except RecordingError as exc:
        assert "\n" not in str(exc) and "events.jsonl:" in str(exc)
    else:
        assert not s.complete  # fewer lines than the manifest says, whatever the garbage
        assert s.reason


def test_small_changes_store_only_the_changed_rectangle(recorded: Recorded) -> None:
    from PIL import Image

    s = open_session(recorded.folder)
    shas = list(dict.fromkeys(e.refs["frame"] for e in s.observations))
    blobs = recorded.folder / "blobs"
    kinds = []
    for sha in shas:
        with Image.open(blobs / f"{sha}.png") as img:
            kinds.append((img.size, img.info.get("agentcorp-delta")))
    assert kinds[0] == ((1280, 800), None)  # the first frame is whole
    deltas = [k for k in kinds[1:] if k[1] is not None]
    assert deltas and all(size[0] * size[1] < 1280 * 800 // 2 for size, _ in deltas)
    fresh = open_session(recorded.folder)
    for sha in shas:  # every frame rebuilds to exactly the recorded pixels
        assert fresh.frame(sha).sha256 == sha
    # a damaged parent shows up in its children too
    with Image.open(blobs / f"{shas[0]}.png") as img:
        whole = img.convert("RGB")
    whole.putpixel((1279, 799), (1, 2, 3))
    whole.save(blobs / f"{shas[0]}.png")
    child = next(sha for sha, k in zip(shas[1:], kinds[1:], strict=True) if k[1])
    with pytest.raises(RecordingError, match="tampered"):
        open_session(recorded.folder).frame(child)
