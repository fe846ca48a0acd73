"""The vision tools the actor offers the model, and strict parsing of what the model sends back.

Parsing never raises for bad model output: it returns a ``ToolError`` whose text goes back to
the model as the tool result, so the model can fix its call. Coordinates are validated against
the frame the model saw (``model_size``); mapping to the screen happens in the loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agentcorp.types import Action, Point, ToolCall

__all__ = [
    "HELP_SCHEMA",
    "TOOLS",
    "TOOL_SCHEMAS",
    "ParsedCall",
    "ToolError",
    "parse_tool_call",
]


_INTENT = {
    "type": "string",
    "maxLength": 300,
    "description": "optional: one short sentence on why you take this action (for the log)",
}


def _fn(
    name: str,
    description: str,
    props: dict[str, Any],
    required: list[str],
    *,
    intent: bool = True,
) -> dict[str, Any]:
    properties = {**props, "intent": _INTENT} if intent else props
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_X = {"type": "integer", "description": "x in pixels of the image you were shown"}
_Y = {"type": "integer", "description": "y in pixels of the image you were shown"}
_POINT = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
_SIZE = {"type": "integer", "minimum": 1, "description": "in pixels of the image you were shown"}

#: OpenAI ``tools`` entries, one per action the model may take.
TOOL_SCHEMAS: list[dict[str, Any]] = [
    _fn("click", "Left-click at (x, y).", {"x": _X, "y": _Y}, ["x", "y"]),
    _fn("double_click", "Double-click at (x, y).", {"x": _X, "y": _Y}, ["x", "y"]),
    _fn("right_click", "Right-click at (x, y).", {"x": _X, "y": _Y}, ["x", "y"]),
    _fn(
        "type",
        "Type text into the focused field. Use ${secrets.NAME} for secrets, never their values.",
        {"text": {"type": "string"}},
        ["text"],
    ),
    _fn(
        "key",
        "Press a key combination, e.g. 'Return', 'ctrl+s', 'alt+F4'.",
        {"keys": {"type": "string"}},
        ["keys"],
    ),
    _fn(
        "scroll",
        "Scroll at (x, y).",
        {
            "x": _X,
            "y": _Y,
            "direction": {"type": "string", "enum": ["up", "down", "left", "right"]},
            "amount": {"type": "integer", "minimum": 1, "maximum": 50},
        },
        ["x", "y", "direction"],
    ),
    _fn(
        "drag",
        "Drag with the left button along a path of points (or from one point to another).",
        {
            "path": {"type": "array", "items": _POINT, "minItems": 2},
            "from": _POINT,
            "to": _POINT,
        },
        [],
    ),
    _fn(
        "wait",
        "Wait for the screen to change (seconds, at most 30).",
        {"seconds": {"type": "number", "minimum": 0, "maximum": 30}},
        ["seconds"],
    ),
    _fn(
        "zoom",
        "Look closer: the region (x, y, w, h) of the last screenshot at the screen's full "
        "resolution, as an image after the tool results. Nothing on the computer changes; "
        "coordinates in later calls still refer to the whole screenshot.",
        {"x": _X, "y": _Y, "w": _SIZE, "h": _SIZE},
        ["x", "y", "w", "h"],
    ),
    _fn(
        "done",
        "The task is complete.",
        {"summary": {"type": "string"}},
        ["summary"],
        intent=False,
    ),
    _fn(
        "fail",
        "The task cannot be done.",
        {"reason": {"type": "string"}},
        ["reason"],
        intent=False,
    ),
]
TOOLS = frozenset(t["function"]["name"] for t in TOOL_SCHEMAS)

#: Offered only when the run has someone to ask (an operator console): the task waits for a
#: person's answer, which comes back as this call's result ("no answer" after the timeout).
HELP_SCHEMA = _fn(
    "request_help",
    "Ask the person running this company a question you cannot answer from the screen "
    "(missing information, an unclear instruction). The task waits for their answer.",
    {"question": {"type": "string", "minLength": 1, "maxLength": 2000}},
    ["question"],
)


@dataclass(frozen=True, slots=True)
class ToolError:
    """Why a tool call could not be used; ``message`` is what the model is told."""

    message: str


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A valid tool call as an ``Action`` in *model* coordinates (``x``/``y``/``path``)."""

    action: Action


def _int(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if value is None:
        raise ValueError(f"missing argument {name!r}")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ValueError(f"argument {name!r} must be an integer, got {value!r}")
    return int(value)


def _str(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if value is None:
        raise ValueError(f"missing argument {name!r}")
    if not isinstance(value, str):
        raise ValueError(f"argument {name!r} must be a string, got {value!r}")
    return value


def _point(value: Any, name: str) -> Point:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    ):
        raise ValueError(f"argument {name!r} must be a point [x, y], got {value!r}")
    return (int(value[0]), int(value[1]))


def _check_on_screen(points: list[Point], size: Point) -> None:
    w, h = size
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(
                f"point ({x}, {y}) is off-screen; the image is {w}x{h}, "
                f"x must be in 0..{w - 1} and y in 0..{h - 1}"
            )


_SCROLL = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_MAX_INTENT = 300


def _pointer(name: str, args: dict[str, Any], size: Point) -> Action:
    x, y = _int(args, "x"), _int(args, "y")
    _check_on_screen([(x, y)], size)
    return Action(name, x=x, y=y, model_xy=(x, y))  # type: ignore[arg-type]


def _type(name: str, args: dict[str, Any], size: Point) -> Action:
    return Action("type", text=_str(args, "text"))


def _key(name: str, args: dict[str, Any], size: Point) -> Action:
    keys = _str(args, "keys").strip()
    if not keys:
        raise ValueError("argument 'keys' is empty")
    return Action("key", keys=keys)


def _scroll(name: str, args: dict[str, Any], size: Point) -> Action:
    x, y = _int(args, "x"), _int(args, "y")
    _check_on_screen([(x, y)], size)
    direction = _str(args, "direction")
    if direction not in _SCROLL:
        raise ValueError(f"direction must be one of up/down/left/right, got {direction!r}")
    amount = _int(args, "amount") if "amount" in args else 3
    if not 1 <= amount <= 50:
        raise ValueError(f"amount must be 1..50, got {amount}")
    ux, uy = _SCROLL[direction]
    return Action("scroll", x=x, y=y, dx=ux * amount, dy=uy * amount, model_xy=(x, y))


def _drag(name: str, args: dict[str, Any], size: Point) -> Action:
    if "path" in args:
        raw = args["path"]
        if not isinstance(raw, list) or len(raw) < 2:
            raise ValueError("argument 'path' must be a list of at least 2 points")
        path = [_point(p, "path[]") for p in raw]
    elif "from" in args and "to" in args:
        path = [_point(args["from"], "from"), _point(args["to"], "to")]
    else:
        raise ValueError("drag needs 'path' or both 'from' and 'to'")
    _check_on_screen(path, size)
    return Action("drag", path=tuple(path))


def _wait(name: str, args: dict[str, Any], size: Point) -> Action:
    value = args.get("seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"argument 'seconds' must be a number, got {value!r}")
    if not 0 <= value <= 30:
        raise ValueError(f"seconds must be 0..30, got {value}")
    return Action("wait", seconds=float(value))


def _zoom(name: str, args: dict[str, Any], size: Point) -> Action:
    """A region of the model's frame; ``w``/``h`` are clipped to the frame's edge."""
    x, y, w, h = (_int(args, k) for k in ("x", "y", "w", "h"))
    _check_on_screen([(x, y)], size)
    if w < 1 or h < 1:
        raise ValueError(f"w and h must be at least 1, got {w}x{h}")
    w, h = min(w, size[0] - x), min(h, size[1] - y)
    return Action("zoom", x=x, y=y, region=(x, y, w, h), model_xy=(x, y))


def _help(name: str, args: dict[str, Any], size: Point) -> Action:
    question = " ".join(_str(args, "question").split())
    if not question:
        raise ValueError("question must not be empty")
    return Action("request_help", text=question[:2000])


def _done(name: str, args: dict[str, Any], size: Point) -> Action:
    return Action("done", summary=_str(args, "summary"))


def _fail(name: str, args: dict[str, Any], size: Point) -> Action:
    return Action("fail", summary=_str(args, "reason"))


_BUILDERS: dict[str, Callable[[str, dict[str, Any], Point], Action]] = {
    "click": _pointer,
    "double_click": _pointer,
    "right_click": _pointer,
    "type": _type,
    "key": _key,
    "scroll": _scroll,
    "drag": _drag,
    "wait": _wait,
    "zoom": _zoom,
    "request_help": _help,
    "done": _done,
    "fail": _fail,
}


def _build(name: str, args: dict[str, Any], size: Point) -> Action:
    action = _BUILDERS[name](name, args, size)
    if "intent" not in args:
        return action
    intent = args["intent"]
    if not isinstance(intent, str):
        raise ValueError(f"argument 'intent' must be a string, got {intent!r}")
    # One line: the intent is shown in traces and logs, where a newline would forge a row.
    intent = " ".join(intent.split())[:_MAX_INTENT]
    return replace(action, intent=intent or None)


def parse_tool_call(call: ToolCall, model_size: Point) -> ParsedCall | ToolError:
    """Validate one tool call against the schemas and the frame size the model saw."""
    if call.name not in TOOLS and call.name != "request_help":
        return ToolError(f"unknown tool {call.name!r}; available tools: {', '.join(sorted(TOOLS))}")
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        return ToolError(f"{call.name}: arguments are not valid JSON ({exc.msg} at {exc.pos})")
    if not isinstance(args, dict):
        return ToolError(f"{call.name}: arguments must be a JSON object")
    schemas = [*TOOL_SCHEMAS, HELP_SCHEMA]
    props = next(t for t in schemas if t["function"]["name"] == call.name)["function"]
    unknown = set(args) - set(props["parameters"]["properties"])
    if unknown:
        return ToolError(f"{call.name}: unknown argument(s) {sorted(unknown)}")
    try:
        return ParsedCall(_build(call.name, args, model_size))
    except ValueError as exc:
        return ToolError(f"{call.name}: {exc}")
