from __future__ import annotations

import base64
import io
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentcorp.policy import (
    AuditedGate,
    AuditLog,
    GateContext,
    PolicyConfig,
    PolicyGate,
    SecretSpec,
    SecretVault,
    TerminalApprover,
    WebhookApprover,
)
from agentcorp.policy.approvers import (
    AllowAndAuditApprover,
    DenyApprover,
    PendingAction,
    make_approver,
)
from agentcorp.policy.config import ApproverConfig
from agentcorp.types import Action

JPEG = b"\xff\xd8\xff\xe0fake-but-bytes\xff\xd9"
SECRET = "pw-Value-123456"


class Hook:
    """A real HTTP server on loopback; ``reply`` decides what each POST gets back."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.reply: Callable[[Hook], tuple[int, bytes]] = lambda h: (200, b"{}")
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                hook.bodies.append(json.loads(self.rfile.read(n)))
                status, body = hook.reply(hook)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/approve"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    try:
        yield h
    finally:
        h.close()


def _pending(text: str = "Transfer") -> PendingAction:
    ctx = GateContext(
        "t1",
        "clerk",
        "bo",
        "model",
        url="http://localhost:8000/pay",
        target_text=text,
        screenshot_jpeg=JPEG,
    )
    return PendingAction(
        Action("click", x=10, y=20, target=text), ctx, "confirm:Transfer", "needs approval"
    )


def _json(obj: Any) -> Callable[[Hook], tuple[int, bytes]]:
    return lambda h: (200, json.dumps(obj).encode())


def test_webhook_approve_records_who(hook: Hook) -> None:
    hook.reply = _json({"decision": "approve", "by": "alice@acme"})
    answer = WebhookApprover(hook.url, timeout=10).decide(_pending())
    assert answer.approved and answer.by == "webhook:alice@acme"
    body = hook.bodies[0]
    assert body["action"] == {"kind": "click", "x": 10, "y": 20, "target": "Transfer"}
    assert body["context"]["task_id"] == "t1" and body["context"]["url"].endswith("/pay")
    assert body["rule"] == "confirm:Transfer"
    assert base64.b64decode(body["screenshot_jpeg_b64"]) == JPEG


def test_webhook_deny_keeps_reason(hook: Hook) -> None:
    hook.reply = _json({"decision": "deny", "by": "bob", "reason": "not\nthis one"})
    answer = WebhookApprover(hook.url, timeout=10).decide(_pending())
    assert not answer.approved
    assert answer.by == "webhook:bob" and answer.reason == "denied by webhook: not this one"


def test_webhook_timeout_denies(hook: Hook) -> None:
    def never(h: Hook) -> tuple[int, bytes]:
        h.release.wait(30)
        return 200, b'{"decision": "approve"}'

    hook.reply = never
    answer = WebhookApprover(hook.url, timeout=0.5).decide(_pending())
    assert not answer.approved
    assert answer.reason == "no answer within 0.5s: denied"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"<html>ok</html>", "reply is not JSON ('<html>ok</html>'): denied"),
        (200, b"[1]", "reply is not a JSON object: denied"),
        (200, b'{"decision": "yes"}', "reply.decision must be 'approve' or 'deny', got 'yes'"),
        (200, b'{"decision": "approve", "by": 7}', "reply.by must be a string, got 7"),
        (500, b'{"decision": "approve"}', "answered HTTP 500: denied"),
        (200, b"", "reply is not JSON"),
    ],
)
def test_webhook_garbage_is_a_one_line_denial(
    hook: Hook, status: int, body: bytes, reason: str
) -> None:
    hook.reply = lambda h: (status, body)
    answer = WebhookApprover(hook.url, timeout=10).decide(_pending())
    assert not answer.approved
    assert reason in answer.reason and "\n" not in answer.reason


def test_webhook_unreachable_denies() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer = WebhookApprover(f"http://127.0.0.1:{port}/x", timeout=5).decide(_pending())
    assert not answer.approved and answer.reason.startswith("request failed:")


def test_webhook_payload_never_carries_a_secret(hook: Hook) -> None:
    hook.reply = _json({"decision": "deny"})
    vault = SecretVault([SecretSpec("PW")], {"PW": SECRET})
    WebhookApprover(hook.url, 10, vault.redactor()).decide(_pending(f"Send {SECRET}"))
    raw = json.dumps(hook.bodies[0])
    assert SECRET not in raw and "[REDACTED]" in raw


def test_gate_with_webhook_audits_the_approver(hook: Hook, tmp_path: Path) -> None:
    hook.reply = _json({"decision": "approve", "by": "carol"})
    cfg = PolicyConfig(confirm=("Transfer",), approver=ApproverConfig("webhook", hook.url, 10))
    audit = AuditLog(tmp_path / "audit.jsonl")
    gate = AuditedGate(PolicyGate(cfg, approver=make_approver(cfg.approver)), audit)
    d = gate.check(_pending().action, _pending().context)
    assert d.allowed and d.decision == "approved" and d.approver == "webhook:carol"
    hook.reply = _json({"decision": "deny", "by": "dave"})
    d = gate.check(_pending().action, _pending().context)
    assert not d.allowed and d.decision == "rejected" and d.approver == "webhook:dave"
    audit.close()
    rows = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["policy", "decision", "decision"]
    assert [(r["decision"], r["approver"]) for r in rows[1:]] == [
        ("approved", "webhook:carol"),
        ("rejected", "webhook:dave"),
    ]


def test_deny_and_allow_approvers() -> None:
    assert not DenyApprover().decide(_pending()).approved
    a = AllowAndAuditApprover().decide(_pending())
    assert a.approved and a.by == "policy:allow-and-audit"


def test_terminal_without_tty_denies() -> None:
    answer = TerminalApprover(stdin=io.StringIO("y\n"), stdout=io.StringIO()).decide(_pending())
    assert not answer.approved and "no terminal" in answer.reason


@pytest.mark.parametrize(
    ("typed", "approved"),
    [("y\n", True), ("YES\n", True), ("n\n", False), ("\n", False), ("maybe\n", False)],
)
def test_terminal_on_a_real_pty(typed: str, approved: bool) -> None:
    master, slave = os.openpty()
    out = io.StringIO()
    with os.fdopen(slave, "r") as tty_in:
        os.write(master, typed.encode())
        answer = TerminalApprover(stdin=tty_in, stdout=out, timeout=10).decide(_pending())
    os.close(master)
    assert answer.approved is approved
    assert answer.by.startswith("terminal:")
    assert "approval needed" in out.getvalue() and "Transfer" in out.getvalue()


def test_terminal_with_no_answer_in_time_denies() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "r") as tty_in:
        answer = TerminalApprover(stdin=tty_in, stdout=io.StringIO(), timeout=0.2).decide(
            _pending()
        )
    os.close(master)
    assert not answer.approved and "no answer within 0.2s" in answer.reason
