"""Acceptance, on real apps: learn a model-driven task once, then run new input rows from the skill.

For a Tk form on our own Xvfb and for the same form as a page in real Chromium, each task
has no ``steps``: the (fake, loopback HTTP) model drives the first instance. Then a new run
takes 5 rows from a CSV file and another run 3 rows from JSON Lines: every instance passes,
from the skill, and the model server receives no request after the first episode. Finally,
with no model configured and the Save button moved (a layout the skill never saw), the
instance fails at once naming the action, and nothing is saved.

The skills live in the company folder (``.agentcorp/skills``): they travel with it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agentcorp.actor.runner import TaskResult
from agentcorp.app.config import resolve_config
from agentcorp.app.runner import TaskRunner
from agentcorp.spec import load_company, read_input_rows, with_inputs
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.testing.skills_apps import model_script, write_company
from agentcorp.types import ActionStep, ModelCallStep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def runner(company_file: Path, base_url: str | None) -> Iterator[TaskRunner]:
    company = load_company(company_file)
    flags: dict[str, Any] = {"environ": {}, "no_plan": True}
    if base_url is not None:
        flags.update(base_url=base_url, actor_model="fake-actor")
    with TaskRunner.open(company, resolve_config(**flags)) as r:
        yield r


def run_rows(r: TaskRunner, task_id: str, rows: list[dict[str, Any]]) -> list[TaskResult]:
    task = r.company.task(task_id)
    out: list[TaskResult] = []
    for row in rows:
        steps, res = drive(r.run(with_inputs(task, row)))
        assert res.status == "pass", (row, res.reason)
        assert not [s for s in steps if isinstance(s, ModelCallStep)], row
        assert {s.source for s in steps if isinstance(s, ActionStep)} == {"skill"}, row
        out.append(res)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("task_id", ["add-customer", "add-web-customer"])
def test_learn_once_then_rows_from_the_skill_and_no_model_fails_fast(
    tmp_path: Path, task_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite points skills at a scratch folder; here they live in the company folder.
    monkeypatch.delenv("AGENTCORP_CACHE_DIR", raising=False)
    monkeypatch.delenv("AGENTCORP_SKILLS_DIR", raising=False)
    co = tmp_path / "co"
    company_file = write_company(co, free_port())
    csv = tmp_path / "rows.csv"
    csv.write_text('name\nBob\nZoë Ng\n"Lee, Kim"\n2041\nAnnabel\n', encoding="utf-8")
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"name": "Mo"}\n{"name": "Ann-Marie O\'Neil"}\n{"name": "7"}\n')
    with FakeOpenAIServer(model_script("Ann", task_id)) as srv:
        # 1. one instance learns the skill, driven by the model
        with runner(company_file, srv.base_url) as r:
            steps, first = drive(r.run(r.company.task(task_id)))
            assert first.status == "pass", first
            assert first.mode == "model"
        learned = len(srv.chat_requests)
        assert learned == 4
        skills = list((co / ".agentcorp" / "skills").glob("*.json"))
        assert len(skills) == 1 and "{inputs.name}" in skills[0].read_text(encoding="utf-8")
        # 2. a new run: 5 rows from a CSV file, all from the skill
        with runner(company_file, srv.base_url) as r:
            task = r.company.task(task_id)
            results = run_rows(r, task_id, read_input_rows(csv, task))
        assert [x.status for x in results] == ["pass"] * 5, results
        assert {x.mode for x in results} == {"skill"}
        assert all(x.usage.total_tokens == 0 for x in results)
        # 3. and again in another run, 3 more rows from JSON Lines
        with runner(company_file, srv.base_url) as r:
            task = r.company.task(task_id)
            results = run_rows(r, task_id, read_input_rows(jsonl, task))
            if task_id == "add-customer":
                with r.sandboxes.session("desk") as (desk, _):
                    saved = (Path(str(desk.home)) / "saved.txt").read_text()
                assert saved.splitlines() == ["Saved: Mo", "Saved: Ann-Marie O'Neil", "Saved: 7"]
        assert [x.status for x in results] == ["pass"] * 3, results
        assert len(srv.chat_requests) == learned  # nothing after the first episode

    # 4. no model, and the Save button moved: fails at once, naming the action
    (co / "layout.txt").write_text("moved\n", encoding="utf-8")
    with runner(company_file, None) as r:
        steps, res = drive(r.run(with_inputs(r.company.task(task_id), {"name": "Cy"})))
    assert res.status == "fail", res
    assert "skill diverged at action 3/3" in res.reason and "--no-model" in res.reason
    clicks = [s for s in steps if isinstance(s, ActionStep) and s.action.kind == "click"]
    assert len(clicks) == 1  # the field only; the moved Save was never clicked blindly
