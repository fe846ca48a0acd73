"""Finding a task's shipped recording for the offline main job.

Shipped recordings live in ``tasks/<company>/recordings/<task-id>/<session>/``. A recording
fits a task when its manifest names the same task id and the same spec hash (so a changed
task never replays a stale recording), it is complete, and its outcome passed.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentcorp.errors import RecordingError
from agentcorp.record.format import MANIFEST
from agentcorp.record.session import open_session

__all__ = ["find_recording", "recording_candidates", "stale_message", "stale_recording"]

#: How to make a fresh recording (the sample company has a script for it).
RERECORD_HINT = (
    "re-record it: run the task with a model configured and --sessions "
    "pointing at the recordings folder (for the sample company: python "
    "bench/record_demo.py)"
)


def recording_candidates(task_id: str, folder: str | os.PathLike[str]) -> list[Path]:
    """Session folders that may hold ``task_id``'s recording, nearest first."""
    root = Path(folder)
    out: list[Path] = []
    for base in (root / task_id, root):
        if (base / MANIFEST).is_file():
            out.append(base)
        if base.is_dir():
            out.extend(sorted(p for p in base.iterdir() if (p / MANIFEST).is_file()))
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def find_recording(
    task_id: str, spec_hash: str, folder: str | os.PathLike[str], *, require_pass: bool = True
) -> Path | None:
    """The newest complete, passing recording of ``task_id`` with ``spec_hash`` under ``folder``.

    ``folder`` may be the recordings root (``tasks/acme/recordings``), the task's own folder,
    or a session folder. Damaged or foreign sessions are skipped, never raised.
    """
    best: tuple[str, Path] | None = None
    for path in recording_candidates(task_id, folder):
        try:
            session = open_session(path)
        except RecordingError:
            continue
        if not session.complete or session.task_id != task_id:
            continue
        if session.spec_hash != spec_hash:
            continue
        if require_pass and session.outcome.get("status") not in ("pass", "done", "passed"):
            continue
        key = str(session.manifest.get("ended_at") or "")
        if best is None or key > best[0]:
            best = (key, path)
    return best[1] if best else None


def stale_recording(
    task_id: str, spec_hash: str, folder: str | os.PathLike[str]
) -> tuple[Path, str] | None:
    """A complete, passing recording of ``task_id`` made for *another* spec hash, if any.

    Returns the session folder and the spec hash it was recorded with, so ``agentcorp run``
    can say why the recording is not used instead of only "no recording".
    """
    for path in reversed(recording_candidates(task_id, folder)):
        try:
            session = open_session(path)
        except RecordingError:
            continue
        if (
            session.complete
            and session.task_id == task_id
            and session.spec_hash != spec_hash
            and session.outcome.get("status") in ("pass", "done", "passed")
        ):
            return path, str(session.spec_hash)
    return None


def stale_message(task_id: str, spec_hash: str, folder: str | os.PathLike[str]) -> str | None:
    """One line on why ``task_id``'s shipped recording cannot be used, or ``None``."""
    found = stale_recording(task_id, spec_hash, folder)
    if found is None:
        return None
    path, old = found
    return (
        f"the shipped recording {path} was made for another version of task {task_id!r} "
        f"(spec hash {old[:12]}, the task is now {spec_hash[:12]}); {RERECORD_HINT}"
    )
