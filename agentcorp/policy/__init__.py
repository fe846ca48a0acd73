"""Safety enforcement outside the model: policy gate, approvers, secrets and the audit log.

The actor loop sees only ``ActionGate`` (``agentcorp.policy.base``); the wiring builds a
``PolicyGate`` (optionally wrapped in ``AuditedGate``) with ``build_gate``.
"""

from agentcorp.policy.approvers import (
    AllowAndAuditApprover,
    Approval,
    Approver,
    DenyApprover,
    PendingAction,
    TerminalApprover,
    WebhookApprover,
    make_approver,
)
from agentcorp.policy.audit import AuditLog, AuditProblem, verify
from agentcorp.policy.audited import AuditedGate
from agentcorp.policy.base import ActionGate, AllowAll, GateContext, GateDecision
from agentcorp.policy.config import ApproverConfig, PolicyConfig, SecretSpec, secrets_from_spec
from agentcorp.policy.factory import build_gate
from agentcorp.policy.gate import PolicyGate
from agentcorp.policy.keys import KeyCombo, parse_combo
from agentcorp.policy.probe import SandboxProbe
from agentcorp.policy.secrets import (
    PLACEHOLDER_RE,
    RedactingFilter,
    Redactor,
    SecretVault,
    blank_regions,
    placeholder,
)

__all__ = [
    "PLACEHOLDER_RE",
    "ActionGate",
    "AllowAll",
    "AllowAndAuditApprover",
    "Approval",
    "Approver",
    "ApproverConfig",
    "AuditLog",
    "AuditProblem",
    "AuditedGate",
    "DenyApprover",
    "GateContext",
    "GateDecision",
    "KeyCombo",
    "PendingAction",
    "PolicyConfig",
    "PolicyGate",
    "RedactingFilter",
    "Redactor",
    "SandboxProbe",
    "SecretSpec",
    "SecretVault",
    "TerminalApprover",
    "WebhookApprover",
    "blank_regions",
    "build_gate",
    "make_approver",
    "parse_combo",
    "placeholder",
    "secrets_from_spec",
    "verify",
]
