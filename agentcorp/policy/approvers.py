"""Approvers: who says yes or no when a confirmation rule matches an action.

An approver never raises for a "no": every failure to get a clear yes (no terminal, timeout,
an HTTP error, a garbled reply) is a denial with a one-line reason, so the gate fails closed.
"""

from __future__ import annotations

import base64
import getpass
import json
import select
import sys
import threading
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any, TextIO

import httpx

from agentcorp.policy.base import GateContext
from agentcorp.policy.config import ApproverConfig
from agentcorp.policy.secrets import Redactor
from agentcorp.types import Action

__all__ = [
    "CONSOLE_TOKEN_ENV",
    "CONSOLE_URL_ENV",
    "AllowAndAuditApprover",
    "Approval",
    "Approver",
    "ConsoleApprover",
    "DenyApprover",
    "PendingAction",
    "TerminalApprover",
    "WebhookApprover",
    "action_to_dict",
    "make_approver",
]


@dataclass(frozen=True, slots=True)
class PendingAction:
    """An action waiting for a decision, with the rule that stopped it."""

    action: Action
    context: GateContext
    rule: str
    reason: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_payload(self, redactor: Redactor | None = None) -> dict[str, Any]:
        """The JSON body an approver sees: action, context, rule, base64 JPEG screenshot."""
        ctx = {
            f.name: getattr(self.context, f.name)
            for f in fields(self.context)
            if f.name not in ("screenshot_jpeg", "screenshot_png", "field_box")
        }
        box = self.context.field_box
        ctx["field_box"] = None if box is None else [box.x, box.y, box.w, box.h]
        shot = self.context.screenshot_jpeg
        body: dict[str, Any] = {
            "id": self.id,
            "rule": self.rule,
            "reason": self.reason,
            "action": action_to_dict(self.action),
            "context": ctx,
        }
        if redactor is not None:
            body = redactor.redact_json(body)
        body["screenshot_jpeg_b64"] = None if shot is None else base64.b64encode(shot).decode()
        png = self.context.screenshot_png
        body["screenshot_png_b64"] = None if png is None else base64.b64encode(png).decode()
        return body

    def describe(self) -> str:
        """One line for a human: what, where, and why it needs approval."""
        a = self.action
        what: str = a.kind
        for name in ("target", "into", "text", "keys", "url"):
            value = getattr(a, name)
            if value:
                what += f" {name}={value!r}"
        where = self.context.url or self.context.window_title or self.context.sandbox
        return f"[{self.context.task_id}] {what} on {where} (rule {self.rule}: {self.reason})"


@dataclass(frozen=True, slots=True)
class Approval:
    """The answer: approved or not, by whom (recorded in the audit log), and why."""

    approved: bool
    by: str
    reason: str = ""


def action_to_dict(action: Action) -> dict[str, Any]:
    """The action's fields that are set, as JSON-ready values."""
    out: dict[str, Any] = {}
    for f in fields(action):
        value = getattr(action, f.name)
        if f.name == "kind" or value != f.default:
            out[f.name] = (
                [list(p) for p in value]
                if f.name == "path"
                else (list(value) if isinstance(value, tuple) else value)
            )
    return out


class Approver(ABC):
    """Decides a pending action. Implementations must be safe to call from several threads."""

    name: str = "approver"

    @abstractmethod
    def decide(self, pending: PendingAction) -> Approval:
        """Block until a decision; anything but a clear yes is a denial."""


class DenyApprover(Approver):
    """Denies every action that needs approval: the headless default."""

    name = "deny"

    def decide(self, pending: PendingAction) -> Approval:
        """Always no."""
        return Approval(False, "policy:deny", "no approver is configured (headless): denied")


class AllowAndAuditApprover(Approver):
    """Approves everything; the approval is still recorded in the audit log as automatic."""

    name = "allow"

    def decide(self, pending: PendingAction) -> Approval:
        """Always yes."""
        return Approval(True, "policy:allow-and-audit", "approved automatically")


class TerminalApprover(Approver):
    """Asks a person on a terminal; denies when there is no TTY or no answer in time."""

    name = "prompt"

    def __init__(
        self,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        timeout: float | None = None,
    ) -> None:
        self._in = stdin if stdin is not None else sys.stdin
        self._out = stdout if stdout is not None else sys.stderr
        self._timeout = timeout
        self._lock = threading.Lock()

    def decide(self, pending: PendingAction) -> Approval:
        """Print the pending action and read y/N from the terminal."""
        try:
            tty = self._in.isatty()
        except (ValueError, OSError):
            tty = False
        if not tty:
            return Approval(False, "terminal", "no terminal to ask on: denied")
        with self._lock:
            try:
                self._out.write(f"\nagentcorp: approval needed: {pending.describe()}\n")
                self._out.write("Approve? [y/N] ")
                self._out.flush()
                ready, _, _ = select.select([self._in], [], [], self._timeout)
                if not ready:
                    self._out.write("\n(no answer in time: denied)\n")
                    self._out.flush()
                    return Approval(False, "terminal", f"no answer within {self._timeout}s: denied")
                answer = self._in.readline().strip().lower()
            except (OSError, ValueError) as exc:
                return Approval(False, "terminal", f"terminal failed ({exc}): denied")
        who = f"terminal:{_user()}"
        if answer in ("y", "yes"):
            return Approval(True, who, "approved at the terminal")
        return Approval(False, who, f"answered {answer[:20]!r} at the terminal: denied")


class WebhookApprover(Approver):
    """POSTs the pending action (JSON, screenshot as base64 JPEG) and waits for a decision.

    The endpoint answers ``{"decision": "approve" | "deny", "by": "who"}`` with a 2xx status.
    ``timeout`` bounds the whole exchange, connect to last byte: no answer in time is a denial.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        timeout: float = 60.0,
        redactor: Redactor | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._redactor = redactor
        self._headers = dict(headers or {})
        # One client for the approver's life: building an SSL context per request is slow.
        self._client = httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def decide(self, pending: PendingAction) -> Approval:
        """POST and wait; every failure is a denial naming what went wrong."""
        body = pending.to_payload(self._redactor)
        result: list[Approval] = []

        def run() -> None:
            result.append(self._post(body))

        # httpx's timeout is per phase (connect, each read); a thread join gives the hard
        # deadline for a server that trickles bytes.
        worker = threading.Thread(target=run, name="agentcorp-webhook", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not result:
            why = f"no answer within {self.timeout}s: denied"
            return Approval(False, f"webhook:{self.url}", why)
        return result[0]

    def _post(self, body: dict[str, Any]) -> Approval:
        who = f"webhook:{self.url}"
        try:
            resp = self._client.post(self.url, json=body, headers=self._headers)
        except httpx.TimeoutException:
            return Approval(False, who, f"no answer within {self.timeout}s: denied")
        except httpx.HTTPError as exc:
            return Approval(False, who, f"request failed: {_one_line(str(exc))}: denied")
        if not 200 <= resp.status_code < 300:
            return Approval(False, who, f"answered HTTP {resp.status_code}: denied")
        try:
            reply = json.loads(resp.content)
        except ValueError:
            return Approval(
                False, who, f"reply is not JSON ({_one_line(resp.text[:60])!r}): denied"
            )
        if not isinstance(reply, dict):
            return Approval(False, who, "reply is not a JSON object: denied")
        decision = reply.get("decision")
        by = reply.get("by")
        if decision not in ("approve", "deny"):
            return Approval(
                False, who, f"reply.decision must be 'approve' or 'deny', got {decision!r}: denied"
            )
        if by is not None and not isinstance(by, str):
            return Approval(False, who, f"reply.by must be a string, got {by!r}: denied")
        by_who = f"webhook:{_one_line(by)[:80]}" if by else who
        if decision == "approve":
            return Approval(True, by_who, "approved by webhook")
        reason = reply.get("reason")
        why = f": {_one_line(reason)[:120]}" if isinstance(reason, str) and reason else ""
        return Approval(False, by_who, f"denied by webhook{why}")


#: Where a run's operator console listens, and its token: set by the console for the run's
#: processes (the coordinator and its workers inherit them), never written to a file.
CONSOLE_URL_ENV = "AGENTCORP_CONSOLE_URL"
CONSOLE_TOKEN_ENV = "AGENTCORP_CONSOLE_TOKEN"


class ConsoleApprover(Approver):
    """Asks the person watching the run's operator console (``agentcorp run --console``).

    The pending action goes to the console as a webhook call would (same body, same reply);
    the console shows it with Approve / Deny and answers when someone clicks or at the
    timeout. With no console for this run, every action is denied with a reason saying so.
    """

    name = "console"

    def __init__(
        self,
        timeout: float = 60.0,
        redactor: Redactor | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        import os

        env = os.environ if environ is None else environ
        self._url, self._token = env.get(CONSOLE_URL_ENV, ""), env.get(CONSOLE_TOKEN_ENV, "")
        self._timeout, self._redactor = timeout, redactor

    def decide(self, pending: PendingAction) -> Approval:
        """Wait for the console's answer; no console running is a denial."""
        if not (self._url and self._token):
            return Approval(False, "console", "no operator console for this run: denied")
        # The console holds the decision until its own deadline: ours is a little later.
        # One client per question: approvals are rare, and nothing is left open between them.
        hook = WebhookApprover(
            self._url.rstrip("/") + f"/api/approvals?timeout={self._timeout:g}",
            self._timeout + 5.0,
            self._redactor,
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            got = hook.decide(pending)
        finally:
            hook.close()
        by = got.by.removeprefix("webhook:")
        by = "console" if by.startswith("http") else by
        by = by if by.startswith("console") else f"console:{by}"
        return Approval(got.approved, by, got.reason.replace("webhook", "console"))


def make_approver(
    config: ApproverConfig, redactor: Redactor | None = None, stdin: TextIO | None = None
) -> Approver:
    """The approver a policy's ``approver:`` section asks for."""
    if config.kind == "allow":
        return AllowAndAuditApprover()
    if config.kind == "prompt":
        return TerminalApprover(stdin=stdin, timeout=config.timeout)
    if config.kind == "webhook":
        assert config.url is not None  # ApproverConfig validated it
        return WebhookApprover(config.url, config.timeout, redactor)
    if config.kind == "console":
        return ConsoleApprover(config.timeout, redactor)
    return DenyApprover()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
