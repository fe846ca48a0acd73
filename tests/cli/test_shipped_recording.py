"""The sample company's shipped recording: found, small, green, and refused once stale.

``schedule-follow-up`` has no scripted steps; offline it runs by decision replay of
``tasks/acme/recordings/schedule-follow-up/`` on a live mousepad desktop. It was recorded by
``bench/record_demo.py`` with the loopback fake OpenAI server playing the model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.record.find import find_recording, stale_message
from agentcorp.record.session import open_session
from agentcorp.spec import load_company, task_spec_hash

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"
TASK = "schedule-follow-up"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "XAI_API_KEY",
        "OPENAI_API_KEY",
        "AGENTCORP_API_KEY",
        "AGENTCORP_PROVIDER",
        "AGENTCORP_BASE_URL",
        "AGENTCORP_SESSIONS",
        "BACKOFFICE_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_shipped_recording_is_found_small_and_model_driven() -> None:
    company = load_company(ACME)
    task = company.task(TASK)
    assert not task.steps and task.success is not None
    found = find_recording(TASK, task_spec_hash(company, task), ACME / "recordings")
    assert found is not None and found.parent == ACME / "recordings" / TASK
    size = sum(p.stat().st_size for p in found.rglob("*") if p.is_file())
    assert size < 1_000_000
    s = open_session(found)
    assert s.complete and s.outcome["status"] == "pass"
    assert sum(1 for e in s.events if type(e.step).__name__ == "ModelCallStep") >= 2
    assert stale_message(TASK, task_spec_hash(company, task), ACME / "recordings") is None


def test_shipped_recording_replays_without_a_sandbox(capsys: pytest.CaptureFixture[str]) -> None:
    company = load_company(ACME)
    task = company.task(TASK)
    found = find_recording(TASK, task_spec_hash(company, task), ACME / "recordings")
    assert main(["replay", str(found), "--mode", "decision", "--no-sandbox"]) == 0, (
        capsys.readouterr()
    )


@pytest.mark.slow
def test_offline_run_uses_the_shipped_recording_on_a_live_desktop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            str(ACME),
            "--task",
            "log-support-call",
            "--task",
            TASK,
            "--sessions",
            str(tmp_path / "s"),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.splitlines()[0].endswith(
        "offline (no model configured): log-support-call=steps, schedule-follow-up=recording"
    )
    assert f"✔ {TASK} pass (via recording)" in err


def test_a_changed_task_refuses_its_stale_recording_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    co = tmp_path / "acme"
    shutil.copytree(ACME, co)
    text = (co / "company.yaml").read_text(encoding="utf-8")
    changed = text.replace("and save the log:", "and then save the log:")
    assert changed != text
    (co / "company.yaml").write_text(changed, encoding="utf-8")
    code = main(["run", str(co), "--task", TASK])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert f"{TASK}=nothing to run" in out.splitlines()[0]
    [line] = [ln for ln in err.splitlines() if ln.startswith(f"! {TASK} error")]
    assert "was made for another version of task 'schedule-follow-up'" in line
    assert "python bench/record_demo.py" in line
