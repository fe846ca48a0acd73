from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.errors import RecordingError
from agentcorp.record.episode import RecordedGate, episode_from_manifest, loop_runner
from agentcorp.record.replay import (
    RecordedChatModel,
    ReplayDivergence,
    action_replay,
    decision_replay,
    regrade,
)
from agentcorp.record.session import open_session
from agentcorp.sandbox.recorded import RecordedFramesComputer
from agentcorp.types import ActionStep, ChatRequest, ObservationStep
from tests.record._app import SUCCESS, Recorded, make_app, model_script, record

ROOT = Path(__file__).resolve().parents[2]


def test_decision_replay_without_sandbox_reproduces(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    report = decision_replay(s, loop_runner(s))
    assert report.ok and report.exit_code == 0, report.summary()
    assert report.model_calls == 4
    assert [o.status for o in report.outcomes] == ["matched"] * 4


def test_prompt_change_names_the_step_and_the_difference(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    _, config = episode_from_manifest(s)
    changed = replace(
        config,
        system_prompt=config.system_prompt.replace(
            "You operate a computer", "You drive a computer"
        ),
    )
    report = decision_replay(s, loop_runner(s, config=changed))
    assert report.exit_code == 1
    assert report.divergence is not None
    assert report.divergence.startswith("step 0: model call 1: messages[0].content differs: ")
    assert "'You operate a computer" in report.divergence
    assert "'You drive a computer" in report.divergence


def test_changed_tool_reply_handling_diverges_at_a_later_step(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    _, config = episode_from_manifest(s)
    report = decision_replay(s, loop_runner(s, config=replace(config, image_history=0)))
    assert report.exit_code == 1
    # the first request has no history yet, so it matches; the second differs
    assert report.divergence is not None and report.divergence.startswith(
        "step 1: model call 2: messages["
    )
    assert report.model_calls == 1


def test_recorded_model_refuses_unrecorded_requests(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    model = RecordedChatModel(s)
    with pytest.raises(ReplayDivergence, match=r"model call 1: messages\[0\]"):
        model.complete(ChatRequest(model="grok-test", messages=[{"role": "user", "content": "x"}]))
    with pytest.raises(ReplayDivergence):  # stays failed
        model.complete(ChatRequest(model="grok-test", messages=[]))


def test_recorded_frames_computer_serves_frames_in_order(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    comp = RecordedFramesComputer(s)
    shas = [e.refs["frame"] for e in s.observations]
    assert comp.size == (1280, 800)
    first = comp.screenshot()
    assert first.sha256 == shas[0]
    assert comp.screenshot().sha256 == shas[0]  # no action: same frame
    comp.click(250, 120)
    settled = comp.settle(since=first)
    assert settled.frame.sha256 == shas[1] and settled.changed is not None
    comp.wait(1.0)  # waiting does not move time or frames in a replay
    assert comp.screenshot().sha256 == shas[1]
    assert comp.settle().frame.pil().size == (1280, 800)  # pixels decode lazily
    assert [c.method for c in comp.calls][:3] == ["screenshot", "screenshot", "click"]
    exp = comp.expected_actions(0)
    assert exp and exp[0].kind == "click" and (exp[0].x, exp[0].y) == (250, 120)


def test_recorded_gate_serves_recorded_decisions(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    from agentcorp.policy.base import GateContext
    from agentcorp.types import Action, PolicyStep

    recorded = [e.step for e in s.events if isinstance(e.step, PolicyStep)]
    gate = RecordedGate(s)
    assert len(gate.decisions) == len(recorded) >= 3
    ctx = GateContext(task_id="t", role="r", sandbox="s", source="replay")
    got = [gate.check(Action("wait"), ctx).decision for _ in recorded]
    assert got == [p.decision for p in recorded]
    extra = gate.check(Action("wait"), ctx)
    assert extra.allowed and extra.message == "beyond the recording"


def test_action_replay_matches_on_a_fresh_app(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rec = record(tmp_path / "s", home, steps=[{"type": "Alice", "into": "Name"}, {"click": "OK"}])
    assert rec.result.status == "done"
    s = open_session(rec.folder)
    (home / "form.txt").unlink()
    fresh = make_app(home)
    report = action_replay(s, fresh, fresh.widget_grounder(), out=tmp_path / "out")
    assert report.ok, report.summary()
    assert [o.status for o in report.outcomes] == ["matched"] * 3
    assert (home / "form.txt").read_text() == "Alice"


def test_action_replay_relocates_a_moved_button(tmp_path: Path) -> None:
    from agentcorp.types import Box

    home = tmp_path / "home"
    rec = record(tmp_path / "s", home, steps=[{"type": "Alice", "into": "Name"}, {"click": "OK"}])
    s = open_session(rec.folder)
    moved = make_app(home, ok_at=Box(700, 500, 120, 40))
    report = action_replay(s, moved, moved.widget_grounder(), out=tmp_path / "out")
    statuses = [o.status for o in report.outcomes]
    assert statuses == ["matched", "matched", "relocated"], report.outcomes
    assert "'OK' moved from (160, 220) to (760, 520)" in report.outcomes[2].detail
    assert moved.widget("ok").clicks == 1 and report.ok


def test_action_replay_reports_divergence_with_both_frames(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rec = record(tmp_path / "s", home, steps=[{"type": "Alice", "into": "Name"}, {"click": "OK"}])
    s = open_session(rec.folder)
    gone = make_app(home)
    gone.widget("ok").visible = False
    report = action_replay(s, gone, gone.widget_grounder(), out=tmp_path / "out")
    assert report.exit_code == 1
    bad = report.outcomes[-1]
    assert bad.status == "diverged" and "'OK' not found" in bad.detail
    assert bad.frames is not None
    for path in bad.frames:
        assert Path(path).is_file() and Path(path).stat().st_size > 1000


def test_regrade_reproduces_and_detects_a_changed_check(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    report = regrade(s)
    assert report.ok, report.outcomes
    assert any("form.txt" in o.detail for o in report.outcomes)
    harder = {"all": [{"check": "file_contains", "path": "~/form.txt", "text": "Bob"}]}
    other = regrade(s, tree=harder)
    assert other.exit_code == 1
    assert "recorded pass" in " ".join(o.detail for o in other.outcomes)
    assert SUCCESS["all"]


def test_regrade_keeps_what_the_recording_cannot_re_evaluate(tmp_path: Path) -> None:
    rec = record(tmp_path / "s", tmp_path / "home", script=model_script(), capture=False)
    s = open_session(rec.folder)
    report = regrade(s)  # the file was never kept: its recorded verdict stands
    assert report.ok and "kept" in report.outcomes[0].detail
    both = {
        "all": [
            SUCCESS["all"][0],
            {"check": "http", "url": "http://127.0.0.1:9/never", "name": "svc"},
        ]
    }
    rec2 = record(tmp_path / "s2", tmp_path / "home2", script=model_script())
    s2 = open_session(rec2.folder)
    # not recorded at all: evaluated now (nothing listens on port 9), so the verdict changes
    unrecorded = regrade(s2, tree=both)
    assert unrecorded.exit_code == 1
    assert "check 'success': now error, recorded pass" in unrecorded.outcomes[-1].detail
    # recorded as passing: an http check needs the live service, so its verdict is kept
    m = json.loads((rec2.folder / "manifest.json").read_text())
    m["checks"].insert(1, {"name": "svc", "status": "pass", "detail": ""})
    (rec2.folder / "manifest.json").write_text(json.dumps(m))
    kept = regrade(open_session(rec2.folder), tree=both)
    assert kept.ok, kept.outcomes
    assert "kept: this http check" in kept.outcomes[1].detail
    assert json.loads((rec2.folder / "manifest.json").read_text())["final_state"] == {
        "files": {"~/form.txt": s2.manifest["final_state"]["files"]["~/form.txt"]},
        "url": None,
        "captured": True,
    }


def test_incomplete_session_is_a_bad_recording(recorded: Recorded) -> None:
    (recorded.folder / "manifest.json").unlink()
    s = open_session(recorded.folder)
    with pytest.raises(RecordingError, match="incomplete session"):
        decision_replay(s, loop_runner)


# --- the CLI ------------------------------------------------------------------------------


def test_cli_replay_exit_codes(recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(recorded.folder)
    assert main(["replay", folder, "--mode", "decision", "--no-sandbox"]) == 0
    assert "decision replay reproduced" in capsys.readouterr().out
    assert main(["replay", folder, "--mode", "regrade"]) == 0
    capsys.readouterr()
    assert main(["replay", folder, "--mode", "regrade", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["mode"] == "regrade" and data["outcomes"]
    # a tampered request body is a bad recording: exit 2 with one line
    s = open_session(recorded.folder)
    call = next(e for e in s.events if "request" in e.refs)
    (recorded.folder / "blobs" / call.refs["request"]).write_bytes(b"{}")
    capsys.readouterr()
    assert main(["replay", folder, "--mode", "decision", "--no-sandbox"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "blob tampered" in err[0]


def test_cli_replay_diverges_with_exit_1(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = recorded.folder / "manifest.json"
    m = json.loads(manifest.read_text())
    m["actor_config"]["system_prompt"] = "You were told to operate a computer."
    manifest.write_text(json.dumps(m))
    assert main(["replay", str(recorded.folder), "--no-sandbox"]) == 1
    err = capsys.readouterr().err
    assert "DIVERGED" in err and "step 0: model call 1: messages[0].content differs" in err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--mode", "sideways"], 2, "sideways"),
        (["--mode", "regrade", "--no-sandbox"], 2, "--no-sandbox applies to --mode decision"),
    ],
)
def test_cli_replay_bad_flags(
    recorded: Recorded, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, needle: str
) -> None:
    assert main(["replay", str(recorded.folder), *argv]) == code
    captured = capsys.readouterr()
    assert needle in captured.err + captured.out


def test_cli_subprocess_bad_recording_exit_2(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "manifest.json").write_text('{"format_version": 42}')
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "replay", str(tmp_path / "s"), "--no-sandbox"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "format version 42 is not supported" in lines[0]


def test_observation_steps_in_replay_match_recorded_hashes(recorded: Recorded) -> None:
    s = open_session(recorded.folder)
    seen: list[str] = []
    decision_replay(
        s,
        loop_runner(s),
        on_step=lambda st: (
            seen.append(st.frame_sha256) if isinstance(st, ObservationStep) else None
        ),
    )
    assert seen == [e.step.frame_sha256 for e in s.observations]
    assert all(isinstance(e.step, ActionStep) for e in s.events if e.step.kind == "action")
    assert model_script()


def test_planned_run_replays_its_last_episode(tmp_path: Path) -> None:
    """A planner call and a PlanStep precede the episode; the loop's part replays alone."""
    from agentcorp.actor.budget import BudgetMeter, Budgets
    from agentcorp.actor.loop import ActorConfig
    from agentcorp.actor.runner import TaskInput, run_task
    from agentcorp.checks import CheckContext
    from agentcorp.planner.plan import Planner
    from agentcorp.policy.base import AllowAll
    from agentcorp.record.episode import episode_manifest
    from agentcorp.record.recorder import SessionRecorder
    from agentcorp.testing.scripted import ScriptedLLM
    from agentcorp.types import ModelCallStep, PlanStep

    home = tmp_path / "home"
    home.mkdir()
    fc = make_app(home)
    plan = json.dumps({"subgoals": ["Type Alice into the Name field and press OK"], "steps": []})
    llm = ScriptedLLM([{"content": plan}, *model_script()], model="grok-test")
    cfg = ActorConfig(model="grok-test")
    ti = TaskInput("fill-form", "Enter Alice as the customer name and press OK", success=SUCCESS)
    gen = run_task(
        ti,
        fc,
        gate=AllowAll(),
        meter=BudgetMeter(Budgets()),
        check_context=CheckContext(home=home),
        actor_model=llm,
        planner=Planner(llm, model_name="grok-test"),
        grounder=fc.widget_grounder(),
        config=cfg,
    )
    rec = SessionRecorder(
        tmp_path / "s", task_id="fill-form", spec_hash="h", sandbox_info={}, models={}
    )
    while True:
        try:
            rec.write(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert result.status == "pass", result
    rec.finish("pass", **episode_manifest(result.episode, cfg))
    s = open_session(tmp_path / "s")
    assert any(isinstance(e.step, ModelCallStep) and e.step.purpose == "plan" for e in s.events)
    assert any(isinstance(e.step, PlanStep) for e in s.events)
    report = decision_replay(s, loop_runner(s))
    assert report.ok, report.summary()
    assert report.model_calls == 4
    assert s.actor_part().skipped_lines > 0
