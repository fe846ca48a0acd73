"""One call from spec objects to the gate the loop uses (for ``agentcorp.app``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from agentcorp.policy.approvers import make_approver
from agentcorp.policy.audit import AuditLog
from agentcorp.policy.audited import AuditedGate
from agentcorp.policy.base import ActionGate
from agentcorp.policy.config import PolicyConfig, secrets_from_spec
from agentcorp.policy.gate import PolicyGate
from agentcorp.policy.secrets import SecretVault

__all__ = ["build_gate"]


def build_gate(
    policy: Any,
    secrets: Any = None,
    *,
    audit: AuditLog | str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    vault: SecretVault | None = None,
    stdin: TextIO | None = None,
    scope: str = "run",
    text_at: Callable[[int, int], str | None] | None = None,
    computer: object | None = None,
) -> ActionGate:
    """A ``PolicyGate`` for the spec's ``policy`` and ``secrets`` objects, audited if asked.

    ``policy`` may be a ``PolicyConfig`` already, the spec's policy object or a mapping;
    ``secrets`` the spec's secrets section (values come from ``environ``, by default the
    process environment) unless a ready ``vault`` is given. An ``audit`` path opens an
    ``AuditLog`` redacting every secret value; pass one ``AuditLog`` to share it between the
    per-task gates of a run (``scope`` names the task in its ``policy`` entry). ``text_at``
    reads screen text at a point for confirmation rules; ``computer`` (the task's sandbox)
    lets the gate read the page URL, focused window and focused field itself (see
    ``PolicyGate``).
    """
    config = policy if isinstance(policy, PolicyConfig) else PolicyConfig.from_spec(policy)
    if vault is None:
        specs = secrets_from_spec(secrets)
        vault = SecretVault.from_env(specs, environ) if specs else None
    redactor = vault.redactor() if vault is not None else None
    approver = make_approver(config.approver, redactor, stdin)
    gate: ActionGate = PolicyGate(config, vault, approver, text_at=text_at, computer=computer)
    if audit is None:
        return gate
    log = audit if isinstance(audit, AuditLog) else AuditLog(audit, redactor=redactor)
    return AuditedGate(gate, log, scope=scope)
