"""Sessions: record every task attempt, replay it as a test, show it as a trace.

- ``SessionRecorder(folder, task_id=..., spec_hash=..., sandbox_info=..., models=...,
  secrets=...)``: ``.write(step)`` per step record, ``.finish(outcome, checks)`` at the end.
- ``open_session(folder) -> Session``: manifest, events, verified blobs, ``complete``/``reason``.
- ``RecordedChatModel``, ``decision_replay``, ``action_replay``, ``regrade``
  (``agentcorp.record.replay``); ``loop_runner`` rebuilds the recorded episode
  (``agentcorp.record.episode``).
- ``write_report`` / ``write_animation``: the self-contained HTML trace and a GIF/WebP.
- ``find_recording(task_id, spec_hash, folder)``: a task's shipped recording, if any.

Names are imported lazily: the actor imports ``agentcorp.record.canonical``, and this package
must not import the actor back at import time.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "RecordedChatModel",
    "ReplayDivergence",
    "ReplayReport",
    "Session",
    "SessionRecorder",
    "action_replay",
    "canonical_request_hash",
    "decision_replay",
    "find_recording",
    "loop_runner",
    "open_session",
    "regrade",
    "write_animation",
    "write_report",
]

_WHERE = {
    "FORMAT_VERSION": "agentcorp.record.format",
    "SessionRecorder": "agentcorp.record.recorder",
    "Session": "agentcorp.record.session",
    "open_session": "agentcorp.record.session",
    "RecordedChatModel": "agentcorp.record.replay",
    "ReplayDivergence": "agentcorp.record.replay",
    "ReplayReport": "agentcorp.record.replay",
    "action_replay": "agentcorp.record.replay",
    "decision_replay": "agentcorp.record.replay",
    "regrade": "agentcorp.record.replay",
    "canonical_request_hash": "agentcorp.record.canonical",
    "loop_runner": "agentcorp.record.episode",
    "find_recording": "agentcorp.record.find",
    "write_report": "agentcorp.record.report",
    "write_animation": "agentcorp.record.report",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp.record' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
