"""What the page did beyond an action (a dialog, a new tab) survives recording and shows in
the trace, with a secret in it redacted."""

from __future__ import annotations

from pathlib import Path

from agentcorp.record.recorder import SessionRecorder
from agentcorp.record.report import trace_steps
from agentcorp.record.session import open_session
from agentcorp.types import Action, ActionResultStep, ActionStep


def test_action_notes_are_recorded_and_shown(tmp_path: Path) -> None:
    rec = SessionRecorder(
        tmp_path / "s",
        task_id="t",
        spec_hash="h",
        sandbox_info={},
        models={},
        secrets=["4711"],
    )
    rec.write(ActionStep(1, 0.0, Action("click", x=1, y=2, target="Delete all"), "script"))
    note = "the page asked (confirm) 'Really delete 4711?': accepted"
    rec.write(ActionResultStep(1, 0.0, True, notes=[note]))
    rec.finish("pass")
    (step,) = trace_steps(open_session(tmp_path / "s"))
    assert step.notes == ["the page asked (confirm) 'Really delete [REDACTED]?': accepted"]
