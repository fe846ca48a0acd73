from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentcorp.policy import (
    ActionGate,
    AllowAll,
    AuditedGate,
    AuditLog,
    GateContext,
    GateDecision,
    PolicyConfig,
    PolicyGate,
    SecretSpec,
    SecretVault,
    build_gate,
    verify,
)
from agentcorp.policy.approvers import AllowAndAuditApprover
from agentcorp.sandbox.base import Frame
from agentcorp.types import Action, Box

PW = "Tr0ub4dor&3-horse"
CTX = GateContext("t1", "clerk", "bo", "model", url="http://localhost:8000/login")


def _gate(**cfg: Any) -> PolicyGate:
    vault = SecretVault(
        [SecretSpec("BO_PW", allow_domains=("localhost:8000",), allow_fields=("Password",))],
        {"BO_PW": PW},
    )
    return PolicyGate(PolicyConfig(**cfg), vault)


def _ok(gate: ActionGate, action: Action, ctx: GateContext = CTX) -> bool:
    return gate.check(action, ctx).allowed


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bo.acme.test/", True),
        ("https://bo.acme.test/records/5?x=1", True),
        ("HTTPS://BO.ACME.TEST/x", True),
        ("https://acme.test.evil.example/", False),
        ("https://evil.example/?next=https://bo.acme.test/", False),
        ("https://evil.example/.acme.test/", False),
        ("https://bo.acme.test@evil.example/", False),
        ("https://user:pw@bo.acme.test/", False),
        ("http://bo.acme.test/", False),  # scheme in the pattern is https
        ("http://localhost:8000/admin", True),
        ("http://localhost:8001/admin", False),
        ("about:blank", True),
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("data:text/html,<script>", False),
        ("not a url", False),
        ("http://[::1", False),
    ],
)
def test_allow_urls_globs(url: str, allowed: bool) -> None:
    gate = _gate(allow_urls=("https://*.acme.test/*", "localhost:8000"))
    assert _ok(gate, Action("open_url", url=url)) is allowed


def test_without_allow_urls_only_dangerous_schemes_are_refused() -> None:
    gate = _gate()
    assert _ok(gate, Action("open_url", url="https://anything.example/"))
    assert not _ok(gate, Action("open_url", url="file:///etc/shadow"))
    assert not _ok(gate, Action("open_url", url="view-source:https://x.example/"))


def test_explicit_opaque_pattern_allows_that_scheme() -> None:
    gate = _gate(allow_urls=("data:image/*", "https://x.test"))
    assert _ok(gate, Action("open_url", url="data:image/png;base64,AAAA"))
    assert not _ok(gate, Action("open_url", url="data:text/html,hi"))
    assert _ok(gate, Action("open_url", url="https://x.test/any/path"))


def test_current_page_and_window_title_are_checked_for_interactions() -> None:
    gate = _gate(allow_urls=("localhost:8000",))
    click = Action("click", x=1, y=1)
    assert _ok(gate, click)
    assert not _ok(gate, click, replace(CTX, url="https://evil.example/"))
    # Leaving the page is allowed; pressing Return on it is not.
    evil = replace(CTX, url="https://evil.example/")
    assert _ok(gate, Action("key", keys="alt+Left"), evil)
    assert _ok(gate, Action("key", keys="Escape"), evil)
    assert not _ok(gate, Action("key", keys="Return"), evil)
    assert not _ok(gate, Action("key", keys="alt+Left Return"), evil)
    # done/wait/move are not interactions with the page
    assert _ok(gate, Action("wait", seconds=1), replace(CTX, url="https://evil.example/"))
    desk = GateContext(
        "t1",
        "clerk",
        "desk",
        "model",
        window_class="chromium",
        window_title="http://evil.example/steal - Chromium",
    )
    assert not _ok(gate, click, desk)
    assert _ok(gate, click, replace(desk, window_title="Back office - Chromium"))


def test_allow_apps_matches_class_or_its_parts_case_insensitively() -> None:
    gate = _gate(allow_apps=("mousepad", "Gnumeric*"))
    base = GateContext("t1", "clerk", "desk", "model")
    assert _ok(gate, Action("click", x=1, y=1), replace(base, window_class="Mousepad"))
    assert _ok(gate, Action("key", keys="ctrl+s"), replace(base, window_class="gnumeric.Gnumeric"))
    d = gate.check(Action("type", text="ls"), replace(base, window_class="XTerm"))
    assert not d.allowed and d.rule == "allow_apps" and "'XTerm'" in d.message
    assert _ok(gate, Action("click", x=1, y=1), base)  # no window reported: browser sandbox


def test_forbid_text_across_consecutive_type_actions() -> None:
    gate = _gate(forbid_text=(r"DE\d{2}(?: ?\d{4}){4} ?\d{2}",))
    assert _ok(gate, Action("type", text="DE89 3704 "))
    d = gate.check(Action("type", text="0044 0532 0130 00"), CTX)
    assert not d.allowed and d.rule is not None and d.rule.startswith("forbid_text:")
    # The refused piece was not remembered; other tasks have their own window.
    assert _ok(gate, Action("type", text="0044"), replace(CTX, task_id="t2"))


def test_forbid_text_applies_to_urls() -> None:
    gate = _gate(forbid_text=(r"(?i)wire[-_ ]?transfer",))
    assert not _ok(gate, Action("open_url", url="https://bank.example/Wire-Transfer"))


def test_confirm_uses_the_screen_text_at_the_point() -> None:
    screen = {(10, 10): "Delete record", (50, 50): "Save"}
    gate = PolicyGate(
        PolicyConfig(confirm=(r"\bdelete\b",)), text_at=lambda x, y: screen.get((x, y))
    )
    d = gate.check(Action("click", x=10, y=10), CTX)  # the model claims no target
    assert d.decision == "rejected" and d.rule == r"confirm:\bdelete\b"
    assert d.approver == "policy:deny"
    assert _ok(gate, Action("click", x=50, y=50))


def test_confirm_fails_closed_when_the_probe_breaks() -> None:
    def broken(x: int, y: int) -> str | None:
        raise RuntimeError("no DOM")

    gate = PolicyGate(PolicyConfig(confirm=("Pay",)), text_at=broken)
    d = gate.check(Action("click", x=1, y=1), CTX)
    assert d.decision == "rejected" and d.rule == "confirm:unreadable"


def test_approved_actions_are_marked_and_approver_bugs_reject() -> None:
    gate = PolicyGate(PolicyConfig(confirm=("Pay",)), approver=AllowAndAuditApprover())
    d = gate.check(Action("click", x=1, y=1, target="Pay now"), CTX)
    assert (d.allowed, d.decision, d.approver) == (True, "approved", "policy:allow-and-audit")

    class Boom(AllowAndAuditApprover):
        def decide(self, pending: Any) -> Any:
            raise ValueError("bug")

    gate = PolicyGate(PolicyConfig(confirm=("Pay",)), approver=Boom())
    assert gate.check(Action("click", x=1, y=1, target="Pay"), CTX).decision == "rejected"


PW_FIELD = replace(CTX, field_is_password=True, field_box=Box(100, 200, 300, 30))


@pytest.mark.parametrize(
    ("ctx", "action", "rule"),
    [
        (PW_FIELD, Action("type", text="${secrets.BO_PW}\n"), None),
        (
            replace(CTX, field_label="Password", field_box=Box(1, 1, 9, 9)),
            Action("type", text="${secrets.BO_PW}"),
            None,
        ),
        (
            replace(CTX, field_label="password ", field_box=Box(1, 1, 9, 9)),
            Action("type", text="${secrets.BO_PW}"),
            None,
        ),
        # a label but no box to blank: refused
        (
            replace(CTX, field_label="Password"),
            Action("type", text="${secrets.BO_PW}"),
            "secrets:field",
        ),
        # the model claims the field; the sandbox does not agree
        (
            replace(CTX, field_label="Message", field_box=Box(1, 1, 9, 9)),
            Action("type", text="${secrets.BO_PW}", into="Password"),
            "secrets:field",
        ),
        (
            replace(PW_FIELD, url="http://localhost:9000/login"),
            Action("type", text="${secrets.BO_PW}"),
            "secrets:domain",
        ),
        (replace(PW_FIELD, url=None), Action("type", text="${secrets.BO_PW}"), "secrets:domain"),
        (PW_FIELD, Action("type", text="${secrets.OTHER}"), "secrets:unknown"),
        (PW_FIELD, Action("type", text="${secrets.BO_PW"), "secrets:syntax"),
        (PW_FIELD, Action("type", text="${secrets.BO_PW}${secrets.}"), "secrets:syntax"),
        (PW_FIELD, Action("type", text=PW), "secrets:literal"),
        (PW_FIELD, Action("done", summary=f"the password is {PW}"), "secrets:literal"),
        # a scripted step's `into` is the task author's word (box still required)
        (
            replace(CTX, source="script", field_box=Box(1, 1, 9, 9)),
            Action("type", text="${secrets.BO_PW}", into="Password"),
            None,
        ),
        (
            replace(CTX, source="model", field_box=Box(1, 1, 9, 9)),
            Action("type", text="${secrets.BO_PW}", into="Password"),
            "secrets:field",
        ),
    ],
)
def test_secret_placeholders_need_a_permitted_target(
    ctx: GateContext, action: Action, rule: str | None
) -> None:
    d = _gate().check(action, ctx)
    assert d.rule == rule, d.message
    assert d.allowed is (rule is None)
    assert PW not in d.message


def test_typed_secret_fields_are_blanked_per_task() -> None:
    gate = _gate()
    frame = Frame(b"\xff" * (500 * 300 * 3), 500, 300)
    assert gate.redact_frame(frame, "t1") is frame
    assert gate.check(Action("type", text="${secrets.BO_PW}"), PW_FIELD).allowed
    assert gate.secret_regions("t1") == (Box(100, 200, 300, 30),)
    out = gate.redact_frame(frame, "t1").pil()
    assert out.getpixel((250, 215)) == (0, 0, 0) and out.getpixel((50, 50)) == (255, 255, 255)
    assert gate.redact_frame(frame, "t2") is frame
    gate.forget_task("t1")
    assert gate.secret_regions("t1") == ()


class _Raises(ActionGate):
    def check(self, action: Action, context: GateContext) -> GateDecision:
        raise KeyError("bug in a gate")


def test_audited_gate_fails_closed(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    d = AuditedGate(_Raises(), log).check(Action("click", x=1, y=1), CTX)
    assert (d.allowed, d.rule) == (False, "gate-error")
    log.close()
    # A full disk: the action must not run without its audit entry.
    full = AuditLog("/dev/full")
    d = AuditedGate(AllowAll(), full).check(Action("click", x=1, y=1), CTX)
    assert d.message.startswith("refused: the audit log could not be written")
    assert (d.allowed, d.rule) == (False, "audit")


def test_build_gate_logs_policy_decisions_and_secret_uses(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    gate = build_gate(
        {"confirm": ["Delete"], "forbid_keys": ["alt+F2"]},
        [{"name": "BO_PW", "allow_domains": ["localhost:*"]}],
        audit=audit,
        environ={"BO_PW": PW},
        scope="t1",
    )
    assert gate.check(Action("type", text="user\t${secrets.BO_PW}\n"), PW_FIELD).allowed
    assert not gate.check(Action("key", keys="alt+F2"), CTX).allowed
    assert not gate.check(Action("type", text=f"x{PW}"), CTX).allowed
    assert not gate.check(Action("click", x=1, y=1, target="Delete"), CTX).allowed
    assert isinstance(gate, AuditedGate)
    gate.audit.close()
    rows = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [r["kind"] for r in rows] == [
        "policy",
        "decision",
        "secret_use",
        "decision",
        "decision",
        "decision",
    ]
    assert rows[0]["scope"] == "t1" and rows[0]["policy"]["forbid_keys"] == ["alt+F2"]
    assert rows[2]["name"] == "BO_PW" and rows[2]["field_is_password"] is True
    assert [r.get("decision") for r in rows[3:]] == ["denied", "denied", "rejected"]
    assert PW not in audit.read_text()
    assert verify(audit) == []
