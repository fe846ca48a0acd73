"""``AuditedGate``: wraps any ``ActionGate`` so each decision lands in the audit log.

The loop sees only ``ActionGate``. This wrapper fails closed twice over: an exception inside
the wrapped gate is a denial, and an allowed action whose audit entry cannot be written is
refused too (an action that leaves no trace must not run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentcorp.policy.approvers import action_to_dict
from agentcorp.policy.audit import AuditLog
from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.policy.secrets import PLACEHOLDER_RE
from agentcorp.types import Action

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Frame

__all__ = ["AuditedGate"]


class AuditedGate(ActionGate):
    """Delegates to ``inner`` and appends one ``decision`` entry per check.

    Allowed ``type`` actions that carry ``${secrets.NAME}`` placeholders also append one
    ``secret_use`` entry per name (never the value). When ``inner`` has a ``config`` with
    ``to_dict()`` (a ``PolicyGate``), the policy in force is logged once as a ``policy`` entry.
    """

    def __init__(self, inner: ActionGate, audit: AuditLog, scope: str = "run") -> None:
        self.inner = inner
        self.audit = audit
        config = getattr(inner, "config", None)
        to_dict = getattr(config, "to_dict", None)
        if callable(to_dict):
            self.policy_change(to_dict(), scope=scope, reason="policy in force")

    def policy_change(self, policy: Mapping[str, Any], *, scope: str, reason: str) -> None:
        """Record a policy (or a change to it) for ``scope`` (run, a task id, a role)."""
        self.audit.append("policy", scope=scope, reason=reason, policy=dict(policy))

    def check(self, action: Action, context: GateContext) -> GateDecision:
        """The inner decision, recorded; refused if it cannot be recorded."""
        try:
            decision = self.inner.check(action, context)
        except Exception as exc:  # a gate bug must never let an action through
            decision = GateDecision(
                False,
                "denied",
                "gate-error",
                message=f"refused: the policy check failed ({type(exc).__name__})",
            )
        try:
            self.audit.append("decision", **_decision_fields(action, context, decision))
            if decision.allowed and action.kind == "type" and action.text:
                for name in dict.fromkeys(m.group(1) for m in PLACEHOLDER_RE.finditer(action.text)):
                    self.audit.append(
                        "secret_use",
                        name=name,
                        task=context.task_id,
                        field_label=context.field_label,
                        field_is_password=context.field_is_password,
                        url=context.url,
                    )
        except OSError as exc:
            return GateDecision(
                False,
                "denied",
                "audit",
                message=f"refused: the audit log could not be written ({exc.strerror or exc})",
            )
        return decision

    def redact_frame(self, frame: Frame, task_id: str) -> Frame:
        """Whatever the inner gate hides."""
        return self.inner.redact_frame(frame, task_id)


def _decision_fields(action: Action, ctx: GateContext, decision: GateDecision) -> dict[str, Any]:
    shot = ctx.screenshot_jpeg or ctx.screenshot_png
    return {
        "task": ctx.task_id,
        "role": ctx.role,
        "sandbox": ctx.sandbox,
        "source": ctx.source,
        "action": action_to_dict(action),
        "context": {
            k: v
            for k, v in (
                ("url", ctx.url),
                ("window_title", ctx.window_title),
                ("window_class", ctx.window_class),
                ("target_text", ctx.target_text),
                ("field_label", ctx.field_label),
                ("field_is_password", ctx.field_is_password),
            )
            if v is not None
        },
        "screenshot_sha256": hashlib.sha256(shot).hexdigest() if shot else None,
        "decision": decision.decision,
        "allowed": decision.allowed,
        "rule": decision.rule,
        "approver": decision.approver,
        "message": decision.message,
    }
