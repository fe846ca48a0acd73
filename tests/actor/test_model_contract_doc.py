"""docs/model_contract.md stays true: its tools, its fake script and its plan example parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from agentcorp.actor.tools import TOOLS, ParsedCall, parse_tool_call
from agentcorp.planner.plan import Plan
from agentcorp.types import ToolCall

DOC = (Path(__file__).resolve().parents[2] / "docs" / "model_contract.md").read_text()


def _block(lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", DOC, re.DOTALL)
    assert found, lang
    return found.group(1)


def test_every_tool_is_documented() -> None:
    table = DOC[DOC.index("### Tools") : DOC.index("### Several tool calls")]
    first_cells = " ".join(re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE))
    assert sorted(t for t in TOOLS if f"`{t}`" not in first_cells) == []


def test_the_fake_actor_script_is_valid() -> None:
    script = yaml.safe_load(_block("yaml"))
    calls = [c for entry in script["replies"] for c in entry["tool_calls"]]
    assert {c["name"] for c in calls} >= {"click", "type", "key", "zoom", "done"}
    for c in calls:
        parsed = parse_tool_call(
            ToolCall(c["id"], c["name"], json.dumps(c["arguments"])), (1024, 640)
        )
        assert isinstance(parsed, ParsedCall), (c, parsed)


def test_the_plan_example_validates() -> None:
    plan = Plan.model_validate_json(_block("json"))
    assert plan.steps and plan.subgoals
