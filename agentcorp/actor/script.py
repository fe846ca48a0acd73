"""Steps of the spec's vocabulary, read into the flat form the loop executes.

The vocabulary is defined once, by the spec's step models (``agentcorp.spec.models``): a step
is a one-key mapping (``click: "Save"``, ``type: "x"`` with ``into:``, ``key: "ctrl+s"``,
``scroll: {direction, amount, at}``, ``drag: {from, to}``, ``wait_for: "Saved"`` with
``timeout``, ``open_url: URL``, ``wait: seconds``). ``parse_step`` validates a mapping or a
step model with the spec's own validator, then flattens it into a ``ScriptStep``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentcorp.spec.models import (
    ClickStep,
    DoubleClickStep,
    DragStep,
    KeyStep,
    OpenUrlStep,
    RightClickStep,
    ScrollStep,
    TypeStep,
    WaitForStep,
    WaitStep,
    validate_step,
)
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
    role: Literal["button", "link", "field", "menu", "text"] | None = None


def parse_step(step: Any, where: str = "step") -> ScriptStep:
    """Read one step of the spec vocabulary; raises ``ValueError`` naming ``where`` and why."""
    match validate_step(step, where):
        case ClickStep(click=target, role=role):
            return ScriptStep("click", target=target, role=role)
        case DoubleClickStep(double_click=target, role=role):
            return ScriptStep("double_click", target=target, role=role)
        case RightClickStep(right_click=target, role=role):
            return ScriptStep("right_click", target=target, role=role)
        case TypeStep(type=text, into=into):
            return ScriptStep("type", text=text, into=into)
        case KeyStep(key=keys):
            return ScriptStep("key", keys=keys.strip())
        case ScrollStep(scroll=s):
            return ScriptStep("scroll", direction=s.direction, amount=s.amount, target=s.at)
        case DragStep(drag=d):
            return ScriptStep("drag", target=d.from_, to=d.to)
        case WaitForStep(wait_for=text, timeout=timeout):
            return ScriptStep("wait_for", target=text, timeout=timeout)
        case OpenUrlStep(open_url=url):
            return ScriptStep("open_url", url=url)
        case WaitStep(wait=seconds):
            return ScriptStep("wait", seconds=seconds)
    raise AssertionError("validate_step returned an unknown step")  # pragma: no cover


def step_text(step: ScriptStep) -> str:
    """A short human (and model) readable description of the step."""

    def t(v: Target | None) -> str:
        # Invisible characters are shown escaped: "click ''" would hide what is wrong.
        if isinstance(v, str):
            return f"'{v}'" if v.isprintable() else repr(v)
        return f"{v}"

    match step.kind:
        case "click" | "double_click" | "right_click":
            role = f" ({step.role})" if step.role else ""
            return f"{step.kind.replace('_', ' ')} {t(step.target)}{role}"
        case "type":
            into = f" into the field labelled {t(step.into)}" if step.into else ""
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
