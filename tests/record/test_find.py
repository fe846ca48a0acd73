from __future__ import annotations

import json
import shutil
from pathlib import Path

from agentcorp.record.find import find_recording
from tests.record._app import Recorded, model_script, record


def _set(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    m = json.loads(path.read_text())
    m.update(changes)
    path.write_text(json.dumps(m))


def test_find_recording_by_task_and_spec_hash(recorded: Recorded, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    spec = json.loads((recorded.folder / "manifest.json").read_text())["spec_hash"]
    target = root / "fill-form" / "2026-01-01"
    shutil.copytree(recorded.folder, target)
    assert find_recording("fill-form", spec, root) == target
    assert find_recording("fill-form", spec, root / "fill-form") == target
    assert find_recording("fill-form", spec, target) == target
    # another spec (the task changed), another task, nothing there: no recording
    assert find_recording("fill-form", "0" * 64, root) is None
    assert find_recording("other", spec, root) is None
    assert find_recording("fill-form", spec, tmp_path / "missing") is None
    # the newest passing one wins; failed, incomplete and damaged ones are skipped
    newer = root / "fill-form" / "2026-02-01"
    shutil.copytree(recorded.folder, newer)
    _set(newer, ended_at="2999-01-01T00:00:00.000+00:00")
    assert find_recording("fill-form", spec, root) == newer
    _set(newer, outcome={"status": "fail", "reason": "x"})
    assert find_recording("fill-form", spec, root) == target
    assert find_recording("fill-form", spec, root, require_pass=False) == newer
    (target / "events.jsonl").write_bytes((target / "events.jsonl").read_bytes()[:-10])
    assert find_recording("fill-form", spec, root) is None
    (newer / "manifest.json").write_text("{broken")
    assert find_recording("fill-form", spec, root, require_pass=False) is None


def test_find_ignores_a_failed_run(tmp_path: Path) -> None:
    rec = record(
        tmp_path / "rec" / "fill-form" / "a", tmp_path / "home", script=model_script(text="Bob")
    )
    spec = json.loads((rec.folder / "manifest.json").read_text())["spec_hash"]
    assert json.loads((rec.folder / "manifest.json").read_text())["outcome"]["status"] == "fail"
    assert find_recording("fill-form", spec, tmp_path / "rec") is None
