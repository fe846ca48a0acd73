"""The vision tools' JSON Schemas and the parser agree; garbage never raises."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcorp.actor.tools import TOOL_SCHEMAS, TOOLS, ParsedCall, ToolError, parse_tool_call
from agentcorp.types import ToolCall

SIZE = (1024, 640)


def test_every_tool_schema_is_valid_json_schema() -> None:
    assert {
        "click",
        "double_click",
        "right_click",
        "type",
        "key",
        "scroll",
        "drag",
        "wait",
        "zoom",
        "done",
        "fail",
    } == TOOLS
    for tool in TOOL_SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(tool["function"]["parameters"])


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("click", {"x": 0, "y": 639}),
        ("double_click", {"x": 1023, "y": 0}),
        ("right_click", {"x": 5, "y": 5}),
        ("type", {"text": "héllo ${secrets.PW}"}),
        ("key", {"keys": "ctrl+s"}),
        ("scroll", {"x": 1, "y": 2, "direction": "down"}),
        ("drag", {"path": [[1, 2], [3, 4], [5, 6]]}),
        ("drag", {"from": [1, 2], "to": [3, 4]}),
        ("wait", {"seconds": 0.5}),
        ("done", {"summary": "ok"}),
        ("fail", {"reason": "no"}),
    ],
)
def test_schema_valid_calls_parse(name: str, args: dict[str, Any]) -> None:
    schema = next(t for t in TOOL_SCHEMAS if t["function"]["name"] == name)
    jsonschema.validate(args, schema["function"]["parameters"])
    parsed = parse_tool_call(ToolCall("c1", name, json.dumps(args)), SIZE)
    assert isinstance(parsed, ParsedCall), parsed
    assert parsed.action.kind == name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([*sorted(TOOLS), "nope", ""]),
    args=st.one_of(st.text(), json_values.map(json.dumps)),
)
def test_garbage_arguments_never_raise(name: str, args: str) -> None:
    parsed = parse_tool_call(ToolCall("c", name, args), SIZE)
    assert isinstance(parsed, ParsedCall | ToolError)
    if isinstance(parsed, ToolError):
        assert parsed.message and "\n" not in parsed.message
    elif parsed.action.x is not None:
        assert 0 <= parsed.action.x < SIZE[0] and 0 <= (parsed.action.y or 0) < SIZE[1]


@pytest.mark.parametrize(
    "raw",
    ['{"x": Infinity, "y": 1}', '{"x": NaN, "y": 1}', '{"x": 1e400, "y": 1}', '{"x": 1.5, "y": 1}'],
)
def test_non_integer_coordinates_are_tool_errors(raw: str) -> None:
    parsed = parse_tool_call(ToolCall("c", "click", raw), SIZE)
    assert isinstance(parsed, ToolError) and "must be an integer" in parsed.message


def test_drag_with_infinite_point_is_a_tool_error() -> None:
    parsed = parse_tool_call(ToolCall("c", "drag", '{"path": [[1, 2], [Infinity, 3]]}'), SIZE)
    assert isinstance(parsed, ToolError) and "must be a point" in parsed.message


@settings(max_examples=300, deadline=None)
@given(
    step=st.dictionaries(
        st.sampled_from(
            [
                "click",
                "double_click",
                "right_click",
                "type",
                "into",
                "key",
                "scroll",
                "drag",
                "wait_for",
                "timeout",
                "open_url",
                "wait",
                "at",
                "x",
            ]
        ),
        json_values,
        max_size=3,
    )
)
def test_garbage_scripted_steps_raise_only_value_error(step: dict[str, Any]) -> None:
    from agentcorp.actor.script import parse_step, step_text

    try:
        parsed = parse_step(step, "steps[3]")
    except ValueError as exc:
        assert str(exc).startswith("steps[3]") and "\n" not in str(exc)
    else:
        assert step_text(parsed)


@pytest.mark.parametrize("bad", [-1, float("inf"), "1e9s", "soon", True, 3601, "2h"])
def test_waits_are_bounded(bad: Any) -> None:
    from agentcorp.actor.script import parse_step

    with pytest.raises(
        ValueError, match=r"^steps\[0\]\.wait: (invalid duration|duration .* limit)"
    ):
        parse_step({"wait": bad}, "steps[0]")
