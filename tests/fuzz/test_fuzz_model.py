"""Model replies: tool calls and planner JSON from a hostile or broken model."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agentcorp.actor.tools import TOOLS, ParsedCall, ToolError, parse_tool_call
from agentcorp.planner.plan import Plan, PlanError, Planner, PlanTask
from agentcorp.testing.drive import drive
from agentcorp.testing.scripted import FunctionLLM
from agentcorp.types import ToolCall
from tests.fuzz._guard import FUZZ, bounded

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)
NAMES = st.sampled_from(sorted(TOOLS)) | st.text(max_size=12)
ARGS = (
    st.dictionaries(
        st.sampled_from(
            [
                "x",
                "y",
                "text",
                "keys",
                "dx",
                "dy",
                "path",
                "seconds",
                "summary",
                "intent",
                "w",
                "h",
                "target",
                "url",
            ]
        )
        | st.text(max_size=8),
        JSON,
        max_size=5,
    ).map(json.dumps)
    | st.text(max_size=60)
    | st.sampled_from(["", "null", "[]", "{", '{"x": 1e999}', '{"x": NaN}', '{"x": -0}'])
)


@FUZZ
@given(name=NAMES, arguments=ARGS, w=st.integers(1, 4000), h=st.integers(1, 4000))
def test_any_tool_call_is_parsed_or_refused_never_raised(
    name: str, arguments: str, w: int, h: int
) -> None:
    with bounded():
        got = parse_tool_call(ToolCall("c1", name, arguments), (w, h))
    assert isinstance(got, ParsedCall | ToolError)
    if isinstance(got, ToolError):
        assert got.message.strip()
    else:
        a = got.action
        for v in (a.x, a.y):
            assert v is None or 0 <= v < max(w, h) + 1


PLANS: Any = st.one_of(
    st.text(max_size=200),
    JSON.map(json.dumps),
    st.fixed_dictionaries(
        {
            "subgoals": st.lists(st.text(max_size=20), max_size=3),
            "steps": st.lists(JSON, max_size=4),
        }
    ).map(json.dumps),
)


@FUZZ
@given(replies=st.lists(PLANS, min_size=1, max_size=3))
def test_any_planner_reply_is_a_plan_or_a_clean_plan_error(replies: list[str]) -> None:
    answers = itertools.cycle(replies)
    model = FunctionLLM(lambda request: next(answers), model="p")
    planner = Planner(model, model_name="p", max_reasks=2)
    with bounded():
        try:
            _, plan = drive(planner.plan(PlanTask("t", "do the thing")))
        except PlanError as exc:
            assert str(exc).strip()
            return
    assert isinstance(plan, Plan)
