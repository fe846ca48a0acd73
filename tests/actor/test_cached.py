"""``run_task_cached`` on a FakeComputer: the gate sees cached actions, garbage is survivable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcorp.actor import BudgetMeter, Budgets
from agentcorp.actor.cached import entries_from_doc, run_task_cached
from agentcorp.actor.runner import TaskInput, TaskResult
from agentcorp.checks import CheckContext
from agentcorp.grounding.cache import ActionCache, ActionCacheError
from agentcorp.grounding.provenance import skill_key
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.types import Action, ActionStep, Box, ErrorStep, Step

SUCCESS = {"check": "screen_contains", "text": "Saved"}
KEY = skill_key("spec", {"x": 1}, ["x"])


def screen() -> FakeComputer:
    def save(fc: FakeComputer) -> None:
        fc.add(Widget("saved", "label", Box(400, 400, 200, 30), "Saved"))

    return FakeComputer(
        [
            Widget("lbl", "label", Box(40, 100, 120, 30), "Customer"),
            Widget("customer", "field", Box(170, 100, 300, 30), "Customer"),
            Widget("save", "button", Box(100, 200, 120, 40), "Save", on_click=save),
        ]
    )


class NoCachedSave(ActionGate):
    """Refuses a click on Save when it comes from the cache; records what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def check(self, action: Action, context: GateContext) -> GateDecision:
        self.seen.append((context.source, action.kind))
        if context.source == "skill" and action.target == "Save":
            return GateDecision(False, "denied", "test:no-cached-save", message="no cached saves")
        return GateDecision(True, "allowed")


def run(
    fc: FakeComputer, cache: ActionCache, tmp_path: Path, gate: ActionGate | None = None
) -> tuple[list[Step], TaskResult]:
    task = TaskInput(
        "t",
        "Save the customer",
        steps=[{"type": "ACME", "into": "Customer"}, {"click": "Save"}],
        success=SUCCESS,
    )
    g = fc.widget_grounder()
    return drive(
        run_task_cached(
            task,
            fc,
            cache=cache,
            key=KEY,
            gate=gate or NoCachedSave(),
            meter=BudgetMeter(Budgets()),
            check_context=CheckContext(home=tmp_path, computer=fc, grounder=g),
            grounder=g,
        )
    )


def test_cached_actions_pass_the_gate_and_a_refusal_hands_over(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache")
    _, first = run(screen(), cache, tmp_path)
    assert first.status == "pass" and first.mode == "scripted"
    assert cache.lookup(KEY) is not None
    gate = NoCachedSave()
    steps, again = run(screen(), cache, tmp_path, gate)
    assert again.status == "pass", again
    assert again.mode == "skill+scripted"
    # the cached click + type ran, the cached Save was refused, the script's Save ran
    assert gate.seen == [
        ("skill", "click"),
        ("skill", "type"),
        ("skill", "click"),
        ("script", "click"),
    ]
    note = [s for s in steps if isinstance(s, ErrorStep) and s.error_type == "SkillDivergence"]
    assert len(note) == 1 and "action 3/3" in note[0].message
    assert "no cached saves" in note[0].message
    sources = [s.source for s in steps if isinstance(s, ActionStep)]
    assert sources == ["skill", "skill", "skill", "script"]


def test_a_damaged_cache_file_is_reported_and_replaced(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache")
    cache.dir.mkdir(parents=True)
    bad = cache.dir / f"{KEY}.json"
    bad.write_text("{not json", encoding="utf-8")
    steps, res = run(screen(), cache, tmp_path)
    assert res.status == "pass" and res.mode == "scripted"
    [err] = [s for s in steps if isinstance(s, ErrorStep)]
    assert err.error_type == "ActionCacheError" and str(bad) in err.message
    assert "\n" not in err.message
    assert cache.lookup(KEY) is not None  # replaced by the passing run's actions


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("nope", "expected a JSON object"),
        ({"version": 1, "actions": []}, "actor_config: expected an object"),
        ({"version": 1, "actions": [], "actor_config": {"warp": 9}}, "unexpected keyword"),
        ({"version": 7, "actions": [], "actor_config": {}}, "unsupported skill version"),
    ],
)
def test_garbage_cached_run_is_one_clear_line(doc: object, message: str) -> None:
    with pytest.raises(ActionCacheError) as info:
        entries_from_doc(json.loads(json.dumps(doc)), "manifest.json: cached_run")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("manifest.json: cached_run")


def test_a_literal_secret_never_reaches_the_cache_file(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache")
    task = TaskInput(
        "t",
        "Save the customer",
        steps=[{"type": "ACME-s3cr3t", "into": "Customer"}, {"click": "Save"}],
        success=SUCCESS,
    )
    fc = screen()
    g = fc.widget_grounder()
    _, res = drive(
        run_task_cached(
            task,
            fc,
            cache=cache,
            key=KEY,
            gate=NoCachedSave(),
            meter=BudgetMeter(Budgets()),
            check_context=CheckContext(home=tmp_path, computer=fc, grounder=g),
            grounder=g,
            secrets=["s3cr3t"],
        )
    )
    assert res.status == "pass"
    assert cache.lookup(KEY) is None
    assert not any("s3cr3t" in p.read_text() for p in tmp_path.rglob("*.json"))


def test_a_skills_folder_that_cannot_be_written_is_a_notice_not_the_outcome(
    tmp_path: Path,
) -> None:
    # A read-only company folder (an image's /opt/...): the task still passes; storing the
    # skill is reported as one line, and the store itself is a clear one-line error.
    from agentcorp.types import ErrorStep

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the skills folder would be")
    cache = ActionCache(blocked / "skills")
    steps, result = run(screen(), cache, tmp_path)
    assert result.status == "pass"
    notes = [s for s in steps if isinstance(s, ErrorStep) and s.error_type == "SkillNotStored"]
    assert len(notes) == 1 and "cannot store skills here" in notes[0].message
    assert "\n" not in notes[0].message
