"""Objectives end to end: the manager (fake OpenAI server, real HTTP) plans, the one run path
runs the plan on a real Xvfb desktop with a real editor, a failure is replanned, the manager's
session decision-replays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.app.attempt import RunObserver
from agentcorp.app.objectives import plan_objective, replay_manager, run_objective
from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.policy.approvers import DenyApprover
from agentcorp.record.session import open_session
from agentcorp.testing.fake_openai import FakeOpenAIServer

FAST = RetryPolicy(max_attempts=2, initial_wait=0.001, max_wait=0.002)

COMPANY = """\
version: 1
company: objective-test
defaults:
  budgets: {steps: 100, usd: 5.0, wall_clock: 10m}
roles:
  clerk: {title: Clerk, goal: Keep the log, instructions: Save after every change., sandbox: desk}
  auditor: {title: Auditor, goal: Audit the log, sandbox: desk}
sandboxes:
  desk:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/log.txt"], wait_for_window: log}
    files: {"~/log.txt": log.txt}
tasks:
  - id: hello
    role: clerk
    description: Say hello in the log.
    steps: [{key: ctrl+End}, {type: "hello"}, {key: ctrl+s}]
    success: {check: file_contains, path: "~/log.txt", text: hello}
objectives:
  - id: welcome
    goal: Welcome {inputs.who} in the log.
    inputs: {who: Initech}
    roles: [clerk]
    budgets: {steps: 100, usd: 1.0}
"""


def _task(tid: str, text: str, check: str, deps: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": tid,
        "role": "clerk",
        "description": f"Write {{inputs.line}} in the log ({tid}).",
        "inputs": {"line": text},
        "depends_on": deps or [],
        "steps": [{"key": "ctrl+End"}, {"type": f" {text}"}, {"key": "ctrl+s"}],
        "success": {"check": "file_contains", "path": "~/log.txt", "text": check},
        "budgets": {"steps": 20, "usd": 0.25},
    }


class _Notes(RunObserver):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def notice(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture
def company(tmp_path: Path) -> Path:
    folder = tmp_path / "co"
    folder.mkdir()
    (folder / "log.txt").write_text("log:\n")
    (folder / "company.yaml").write_text(COMPANY)
    return folder / "company.yaml"


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[FakeOpenAIServer] = []

    def start(script: Any) -> OpenAIClient:
        srv = FakeOpenAIServer(script).start()
        servers.append(srv)
        return OpenAIClient(custom(srv.base_url), retry=FAST, timeout=10)

    yield start
    for srv in servers:
        srv.stop()


def test_failed_task_is_replanned_and_the_objective_passes(
    company: Path, tmp_path: Path, serve: Any
) -> None:
    first = {
        "summary": "two lines",
        "tasks": [
            _task("greet", "Welcome Initech", "Welcome Initech"),
            _task("sign", "signed", "signed by the clerk", ["greet"]),  # its check cannot pass
            _task("close", "closed", "closed", ["sign"]),  # skipped: never ran, may change
        ],
    }
    # The fix depends on a task that passed in round 1: its line is still in the log.
    second = {
        "tasks": [
            _task("sign-2", "signed by the clerk", "Welcome Initech", ["greet"]),
            _task("close", "closed", "closed", ["sign-2"]),
        ]
    }
    client = serve(
        [
            {"when": {"user_contains": "Objective welcome"}, "json": first, "times": 1},
            {"when": {"user_contains": "What happened"}, "json": second},
        ]
    )
    notes = _Notes()
    with client:
        report = run_objective(
            company,
            "welcome",
            sessions=tmp_path / "run",
            model=client,
            environ={},
            observers=[notes],
        )
    assert report.status == "passed", report.to_json()
    assert report.rounds == 2
    assert "objective welcome: round 2: 2 task(s): sign-2, close" in notes.lines
    status = {t.task_id: t.status for t in report.tasks}
    assert status == {"greet": "pass", "sign": "fail", "sign-2": "pass", "close": "pass"}
    log = tmp_path / "run" / "welcome" / "round-2" / ".agentcorp" / "sandboxes" / "desk"
    text = (log / "log.txt").read_text()
    assert "Welcome Initech" in text and "signed by the clerk" in text and "closed" in text
    doc = report.to_json()
    assert doc["tokens"] > 0 and doc["rounds"] == 2 and len(doc["tasks"]) == 4
    # What the manager was told of the failure, and decided, is in its session.
    session = open_session(report.session)  # type: ignore[arg-type]
    plans = [e.step.plan for e in session.events if e.step.kind == "plan"]  # type: ignore[union-attr]
    assert [p["round"] for p in plans] == [1, 2]
    assert plans[1]["ran"] == ["greet", "sign"] and plans[1]["feedback"]["not_run"] == ["close"]
    told = {r["task"]: r for r in plans[1]["feedback"]["ran"]}
    assert "does not contain 'signed by the clerk'" in told["sign"]["reason"]
    assert told["sign"]["checks"][0]["status"] == "fail"
    ok, detail, calls = replay_manager(report.session)  # type: ignore[arg-type]
    assert ok, detail
    assert calls == 2


def test_approval_denied_ends_the_objective_cleanly(
    company: Path, tmp_path: Path, serve: Any
) -> None:
    text = company.read_text().replace("budgets: {steps: 100, usd: 1.0}", "approval: true")
    company.write_text(text)
    client = serve([{"json": {"tasks": [_task("greet", "hi", "hi")]}}])
    with client:
        report = run_objective(
            company,
            "welcome",
            sessions=tmp_path / "run",
            model=client,
            approver=DenyApprover(),
            environ={},
        )
    assert report.status == "denied" and "denied" in report.reason
    assert report.tasks == [] and not (tmp_path / "run" / "welcome" / "round-1").exists()
    assert report.session is not None and (report.session / "manifest.json").is_file()
    ok, detail, _ = replay_manager(report.session)
    assert ok, detail


def test_plan_without_running(company: Path, serve: Any) -> None:
    client = serve([{"json": {"tasks": [{"use": "hello"}]}, "times": "forever"}])
    with client:
        out = plan_objective(company, "welcome", model=client, environ={})
    assert out.status == "invalid"  # hello sets no budgets: the objective's budget is shared
    assert out.problems == [
        "task 'hello' sets no budgets.steps: the objective's steps budget of 100 is shared "
        "by its tasks, so each task sets its part",
        "task 'hello' sets no budgets.usd: the objective's usd budget of 1 is shared "
        "by its tasks, so each task sets its part",
    ]


def test_the_plan_runs_on_worker_processes(company: Path, tmp_path: Path, serve: Any) -> None:
    # Worker processes load the plan's company from its file in the round's folder, with the
    # original company's folder as base (the desk's ~/log.txt comes from there).
    plan = {"tasks": [_task("greet", "Welcome Initech", "Welcome Initech")]}
    client = serve([{"json": plan}])
    with client:
        report = run_objective(
            company, "welcome", sessions=tmp_path / "run", model=client, environ={}, workers=2
        )
    assert report.status == "passed", report.to_json()
    settings = json.loads(
        (tmp_path / "run" / "welcome" / "round-1" / ".agentcorp" / "run.json").read_text()
    )
    assert settings["company_file"].endswith("round-1/plan.yaml")
    assert settings["base_dir"] == str(company.parent.resolve())
