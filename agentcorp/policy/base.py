"""The enforcement seam: every action, from any source, passes one ``ActionGate`` check.

The actor loop calls ``gate.check(action, context)`` before anything reaches the ``Computer``.
A denied action never reaches the sandbox; the loop records the decision and tells the model
``decision.message`` as a tool error so it can choose another way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agentcorp.types import Action, Box

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Frame

__all__ = ["ActionGate", "AllowAll", "GateContext", "GateDecision"]


@dataclass(frozen=True, slots=True)
class GateContext:
    """What the gate may look at besides the action itself."""

    task_id: str
    role: str
    sandbox: str
    source: Literal["model", "script", "skill", "cache", "replay"]
    url: str | None = None
    window_title: str | None = None
    window_class: str | None = None
    target_text: str | None = None
    screenshot_jpeg: bytes | None = None
    screenshot_png: bytes | None = None
    # The focused input field, as the sandbox (not the model) sees it: the browser's
    # ``focused_field()`` or the grounding box of the field the last click landed in. Secret
    # placeholders are only typed where these show a permitted target.
    field_box: Box | None = None
    field_is_password: bool | None = None
    field_label: str | None = None


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The verdict. ``allowed`` is what matters; the rest is for the record and the model."""

    allowed: bool
    decision: Literal["allowed", "denied", "approved", "rejected"]
    rule: str | None = None
    approver: str | None = None
    message: str = ""


class ActionGate(ABC):
    """Decides whether an action may run."""

    @abstractmethod
    def check(self, action: Action, context: GateContext) -> GateDecision:
        """Return the decision for ``action``; may block while an approver answers."""

    def redact_frame(self, frame: Frame, task_id: str) -> Frame:
        """``frame`` with what policy hides (fields holding a typed secret) blanked.

        The loop passes every frame it stores or sends to a model through this, at full
        screen size, before downscaling. The default hides nothing.
        """
        return frame


class AllowAll(ActionGate):
    """Allows everything (for tests of the loop itself; never the CLI default)."""

    def check(self, action: Action, context: GateContext) -> GateDecision:
        """Always allowed."""
        return GateDecision(True, "allowed")
