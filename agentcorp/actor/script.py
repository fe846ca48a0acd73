"""The spec's scripted-step vocabulary, read into a small typed form the loop executes.

A step is a one-key mapping in the YAML (``click: "Save"``, ``type: "x"`` with ``into:``,
``key: "ctrl+s"``, ``scroll: {direction, amount}``, ``drag: {from, to}``, ``wait_for: "Saved"``
with ``timeout``, ``open_url: URL``, ``wait: seconds``). Pydantic step models are accepted too
(dumped to that mapping first), so the loop does not depend on the spec package's classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from agentcorp.types import Point

__all__ = ["ScriptStep", "Target", "parse_step", "step_text"]

#: A place on screen: visible text to ground, or screen coordinates.
Target = str | Point

StepKind = Literal[
    "click",
    "double_click",
    "right_click",
    "type",
    "key",
    "scroll",
    "drag",
    "wait_for",
    "open_url",
    "wait",
]
_KINDS: tuple[str, ...] = StepKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ScriptStep:
    """One scripted step; only the fields its ``kind`` uses are set."""

    kind: StepKind
    target: Target | None = None
    to: Target | None = None
    text: str | None = None
    into: str | None = None
    keys: str | None = None
    direction: str = "down"
    amount: int = 3
    timeout: float = 10.0
    url: str | None = None
    seconds: float = 0.0


def _target(value: Any, where: str) -> Target:
    if isinstance(value, str) and value.strip():
        return value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{where}: expected visible text or [x, y], got {value!r}")


def _duration(value: Any, where: str) -> float:
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for suffix in ("ms", "s", "m", "h"):
            if value.endswith(suffix):
                with contextlib.suppress(ValueError):
                    seconds = float(value[: -len(suffix)]) * units[suffix]
                break
    # A finite, bounded wait: a script can never hang the loop.
    if seconds is None or not 0 <= seconds <= 3600:
        raise ValueError(
            f"{where}: expected a duration of 0..3600 s such as 5 or '5s', got {value!r}"
        )
    return seconds


def _as_mapping(step: Any) -> Mapping[str, Any]:
    if isinstance(step, BaseModel):
        dumped = step.model_dump(by_alias=True, exclude_none=True)
        # A root model (one class per step form) dumps to the mapping itself.
        return dumped if isinstance(dumped, Mapping) else {}
    if isinstance(step, Mapping):
        return step
    raise ValueError(f"a step must be a mapping such as {{click: 'Save'}}, got {step!r}")


def parse_step(step: Any, where: str = "step") -> ScriptStep:
    """Read one step of the spec vocabulary; raises ``ValueError`` naming ``where`` and why."""
    data = {k: v for k, v in _as_mapping(step).items() if v is not None}
    kinds = [k for k in data if k in _KINDS]
    if len(kinds) != 1:
        raise ValueError(
            f"{where}: expected exactly one of {', '.join(_KINDS)}, got keys {sorted(data)}"
        )
    kind: StepKind = kinds[0]  # type: ignore[assignment]
    value = data[kind]
    extra = set(data) - {kind, "into", "timeout", "at"}
    if extra:
        raise ValueError(f"{where}: unknown key(s) {sorted(extra)} for {kind}")
    if kind in ("click", "double_click", "right_click"):
        return ScriptStep(kind, target=_target(value, f"{where}.{kind}"))
    if kind == "type":
        if not isinstance(value, str):
            raise ValueError(f"{where}.type: expected text, got {value!r}")
        into = data.get("into")
        if into is not None and not isinstance(into, str):
            raise ValueError(f"{where}.into: expected a field label, got {into!r}")
        return ScriptStep("type", text=value, into=into)
    if kind == "key":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}.key: expected a key combination, got {value!r}")
        return ScriptStep("key", keys=value.strip())
    if kind == "scroll":
        spec = value if isinstance(value, Mapping) else {"direction": value}
        direction = spec.get("direction", "down")
        if direction not in ("up", "down", "left", "right"):
            raise ValueError(f"{where}.scroll.direction: expected up/down/left/right")
        amount = spec.get("amount", 3)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"{where}.scroll.amount: expected a positive integer")
        at = spec.get("at", data.get("at"))
        return ScriptStep(
            "scroll",
            direction=direction,
            amount=amount,
            target=None if at is None else _target(at, f"{where}.scroll.at"),
        )
    if kind == "drag":
        if not isinstance(value, Mapping) or "from" not in value or "to" not in value:
            raise ValueError(f"{where}.drag: expected {{from: ..., to: ...}}")
        return ScriptStep(
            "drag",
            target=_target(value["from"], f"{where}.drag.from"),
            to=_target(value["to"], f"{where}.drag.to"),
        )
    if kind == "wait_for":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}.wait_for: expected visible text, got {value!r}")
        timeout = _duration(data.get("timeout", 10.0), f"{where}.timeout")
        return ScriptStep("wait_for", target=value, timeout=timeout)
    if kind == "open_url":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}.open_url: expected a URL, got {value!r}")
        return ScriptStep("open_url", url=value)
    return ScriptStep("wait", seconds=_duration(value, f"{where}.wait"))


def step_text(step: ScriptStep) -> str:
    """A short human (and model) readable description of the step."""

    def t(v: Target | None) -> str:
        return f"'{v}'" if isinstance(v, str) else f"{v}"

    match step.kind:
        case "click" | "double_click" | "right_click":
            return f"{step.kind.replace('_', ' ')} {t(step.target)}"
        case "type":
            into = f" into the field labelled '{step.into}'" if step.into else ""
            return f"type {step.text!r}{into}"
        case "key":
            return f"press {step.keys}"
        case "scroll":
            at = f" at {t(step.target)}" if step.target is not None else ""
            return f"scroll {step.direction} {step.amount}{at}"
        case "drag":
            return f"drag from {t(step.target)} to {t(step.to)}"
        case "wait_for":
            return f"wait until {t(step.target)} is visible (up to {step.timeout:g}s)"
        case "open_url":
            return f"open {step.url}"
        case _:
            return f"wait {step.seconds:g}s"
