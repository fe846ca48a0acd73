"""The planner's structured output, its bounded re-ask, and replanning."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from agentcorp.actor.script import parse_step
from agentcorp.planner import Plan, PlanError, Planner, PlanTask
from agentcorp.testing.drive import drive
from agentcorp.testing.scripted import ScriptedLLM
from agentcorp.types import ModelCallStep, PlanStep

TASK = PlanTask(
    "enter-invoice",
    "Enter invoice INV-1042 for 120.00",
    role="Bookkeeper",
    sandbox="office (desktop: gnumeric)",
    success={"check": "file_contains", "path": "~/books.csv", "text": "INV-1042"},
    suggested_steps=[{"click": "A1"}],
    inputs={"month": "2026-10"},
)

GOOD = {
    "subgoals": ["save the sheet"],
    "steps": [
        {"click": "Customer"},
        {"type": "INV-1042", "into": "Invoice"},
        {"key": "ctrl+s"},
        {"wait_for": "Saved", "timeout": 5},
        {"scroll": {"direction": "down", "amount": 2}},
        {"drag": {"from": [1, 2], "to": "Trash"}},
        {"click": [10, 20]},
    ],
}


def test_valid_plan_first_time() -> None:
    llm = ScriptedLLM([json.dumps(GOOD)])
    steps, plan = drive(Planner(llm, model_name="p").plan(TASK))
    assert plan.model_dump(mode="json", by_alias=True, exclude_none=True)["steps"] == GOOD["steps"]
    req = llm.calls[0]
    assert req.purpose == "plan" and req.model == "p"
    assert req.response_format is not None and req.response_format["type"] == "json_schema"
    schema = req.response_format["json_schema"]["schema"]
    jsonschema.validate(GOOD, schema)  # the schema we send accepts what we accept
    prompt = req.messages[1]["content"]
    assert "INV-1042" in prompt and "Bookkeeper" in prompt and '"click": "A1"' in prompt
    assert [type(s) for s in steps] == [ModelCallStep, PlanStep]
    # Every planned step is executable by the actor's step reader, as a model or a mapping.
    for i, s in enumerate(plan.steps):
        assert parse_step(s, f"steps[{i}]") == parse_step(
            s.model_dump(mode="json", by_alias=True), f"steps[{i}]"
        )


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (json.dumps({"steps": [{"click": "A", "key": "x"}]}), "exactly one action"),
        (json.dumps({"steps": [{"teleport": "A"}]}), "exactly one action: click, double_click"),
        (json.dumps({}), "at least one step or subgoal"),
        (json.dumps({"steps": [{"type": "x", "timeout": 3}]}), "type.timeout: Extra inputs"),
        (json.dumps({"steps": [{"click": [1, 2, 3]}]}), "at most 2 items"),
        (json.dumps({"steps": [{"wait": 7200}]}), "over the 3600s limit"),
    ],
)
def test_invalid_output_is_reasked_with_the_error(bad: str, problem: str) -> None:
    llm = ScriptedLLM([bad, json.dumps(GOOD)])
    steps, plan = drive(Planner(llm, model_name="p").plan(TASK))
    assert len(plan.steps) == 7
    second = llm.calls[1].messages
    assert second[2] == {"role": "assistant", "content": bad}
    assert second[3]["role"] == "user" and problem in second[3]["content"]
    assert sum(isinstance(s, ModelCallStep) for s in steps) == 2


def test_reask_is_bounded_then_clear_error() -> None:
    llm = ScriptedLLM(["{}", "[]", '{"steps": 5}'])
    with pytest.raises(PlanError) as info:
        drive(Planner(llm, model_name="p", max_reasks=2).plan(TASK))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("planner for task 'enter-invoice': no valid plan after 3 attempts")
    assert "steps: Input should be a valid array" in msg
    assert len(llm.calls) == 3


def test_replan_sends_previous_plan_and_failure() -> None:
    llm = ScriptedLLM([json.dumps(GOOD), json.dumps({"subgoals": ["find the Save button"]})])
    planner = Planner(llm, model_name="p")
    s1, plan = drive(planner.plan(TASK))
    s2, new = drive(planner.replan(TASK, plan, "click 'Customer': not found", "a dialog"))
    assert new.subgoals == ["find the Save button"] and new.steps == []
    prompt = llm.calls[1].messages[1]["content"]
    assert "This step failed: click 'Customer': not found" in prompt
    assert '"Customer"' in prompt and "The screen now: a dialog" in prompt
    plans = [s for s in s1 + s2 if isinstance(s, PlanStep)]
    assert [p.revision for p in plans] == [0, 1]


def test_plan_schema_is_valid_json_schema() -> None:
    schema: dict[str, Any] = Plan.model_json_schema(by_alias=True)
    jsonschema.Draft202012Validator.check_schema(schema)
