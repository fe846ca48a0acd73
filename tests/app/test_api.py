"""``agentcorp.run`` from Python: the report, observers, run-time inputs, in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import agentcorp
from agentcorp.types import ActionStep, Step

COMPANY = """\
version: 1
company: api-co
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: write
    role: writer
    description: Append {inputs.word} to the notes and save them.
    inputs: {word: nope}
    steps:
      - key: ctrl+End
      - type: "{inputs.word} was here."
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "Fleet was here."}
  - id: again
    role: writer
    description: Save the notes again.
    depends_on: [write]
    steps:
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "Fleet was here."}
"""


class Recorder(agentcorp.RunObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def run_started(self, plan: Any) -> None:
        self.events.append(("run", plan.header()))

    def attempt_started(self, task_id: str, mode: str, attempt: int) -> None:
        self.events.append(("start", (task_id, mode, attempt)))

    def step(self, task_id: str, step: Step) -> None:
        if isinstance(step, ActionStep):
            self.events.append(("action", (task_id, step.action.kind)))

    def attempt_ended(self, task_id: str, result: Any, session: Path | None) -> None:
        self.events.append(("end", (task_id, result.status, session)))

    def task_finished(self, run: Any) -> None:
        self.events.append(("finished", (run.task_id, run.status)))


@pytest.mark.slow
def test_run_from_python_with_inputs_and_an_observer(tmp_path: Path) -> None:
    co = tmp_path / "co"
    co.mkdir()
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    obs = Recorder()
    report = agentcorp.run(
        co,
        sessions=tmp_path / "run",
        inputs={"word": "Fleet"},
        observers=[obs],
        environ={},
        no_cache=True,
    )
    assert report.passed, report.to_json()
    assert [r.task_id for r in report.results] == ["write", "again"]
    w = report.result("write")
    assert (w.status, w.mode, w.attempts, w.actions) == ("pass", "scripted", 1, 3)
    assert w.inputs == {"word": "Fleet"}
    assert w.session and Path(w.session, "manifest.json").is_file()
    kinds = [k for k, _ in obs.events]
    assert kinds[0] == "run" and "api-co: 2 task(s) offline" in obs.events[0][1]
    assert kinds.count("start") == 2 and kinds.count("action") == 4
    assert obs.events[-2:] == [("finished", ("write", "pass")), ("finished", ("again", "pass"))]
    # The second task saw the first one's saved file: one desktop for the run.
    notes = (tmp_path / "run" / ".agentcorp" / "sandboxes" / "notes" / "notes.txt").read_text()
    assert notes.count("Fleet was here.") == 1
    doc = report.to_json()
    json.dumps(doc)  # JSON-ready
    assert doc["backend"] == "inline" and len(doc["audit"]) == 1 and doc["audit"][0]["head"]
    assert report.trace is not None and report.trace.is_file()
