"""Gate level: every red-team attack is blocked and audited; benign twins still pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcorp.policy import AuditedGate, GateContext, build_gate, verify
from agentcorp.types import Action

from .redteam import (
    API_TOKEN,
    APP_URL,
    ATTACKS,
    BO_PASSWORD,
    BOX,
    ENV,
    POINT,
    POLICY,
    SECRETS,
    Attack,
)


def _gate(tmp_path: Path, screen_text: str | None = None) -> AuditedGate:
    def text_at(x: int, y: int) -> str | None:
        return screen_text if (x, y) == POINT else None

    gate = build_gate(
        POLICY,
        SECRETS,
        audit=tmp_path / "audit.jsonl",
        environ=ENV,
        text_at=text_at,
        scope="t-redteam",
    )
    assert isinstance(gate, AuditedGate)
    return gate


def _ctx(attack: Attack | None = None, **over: object) -> GateContext:
    fields: dict[str, object] = {"url": APP_URL}
    if attack is not None:
        fields.update(attack.ctx)
    fields.update(over)
    source = "script" if attack is not None and attack.loop == "script" else "model"
    return GateContext("t-redteam", "clerk", "backoffice", source, **fields)  # type: ignore[arg-type]


def test_the_set_is_big_enough_and_ids_are_unique() -> None:
    assert len(ATTACKS) >= 25
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_blocked_and_audited(attack: Attack, tmp_path: Path) -> None:
    gate = _gate(tmp_path, attack.screen_text)
    ctx = _ctx(attack)
    for prior in attack.before:
        assert gate.check(prior, ctx).allowed, "the lead-in action should pass on its own"
    decision = gate.check(attack.action, ctx)
    assert not decision.allowed
    assert decision.decision == attack.decision
    assert decision.rule is not None and decision.rule.startswith(attack.rule), decision
    assert decision.message and "\n" not in decision.message
    gate.audit.close()
    audit = tmp_path / "audit.jsonl"
    text = audit.read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    last = rows[-1]
    assert last["kind"] == "decision" and last["allowed"] is False
    assert last["rule"] == decision.rule and last["decision"] == attack.decision
    assert last["action"]["kind"] == attack.action.kind
    assert not [r for r in rows if r["kind"] == "secret_use"]
    assert BO_PASSWORD not in text and API_TOKEN not in text
    assert verify(audit) == []


BENIGN = [
    ("open an allowed page", Action("open_url", url="http://localhost:8000/records"), {}),
    ("open a subdomain", Action("open_url", url="https://crm.acme.test/leads?page=2"), {}),
    ("save", Action("key", keys="ctrl+s"), {}),
    ("alt+F4 is not ctrl+alt+F4", Action("key", keys="alt+F4"), {}),
    ("type prose", Action("type", text="Invoice 2024-117 paid in full."), {}),
    (
        "password where it belongs",
        Action("type", text="${secrets.BO_PASSWORD}\n"),
        {"field_is_password": True, "field_box": BOX},
    ),
    (
        "token where it belongs",
        Action("type", text="${secrets.API_TOKEN}"),
        {"url": "https://api.acme.test/settings", "field_label": "API token", "field_box": BOX},
    ),
    ("click Save", Action("click", x=10, y=10, target="Save"), {}),
    ("type in an allowed app", Action("type", text="hello"), {"window_class": "Mousepad"}),
]


@pytest.mark.parametrize(("what", "action", "ctx"), BENIGN, ids=[b[0] for b in BENIGN])
def test_benign_twin_is_allowed(
    what: str, action: Action, ctx: dict[str, object], tmp_path: Path
) -> None:
    gate = _gate(tmp_path)
    d = gate.check(action, _ctx(**ctx))
    assert d.allowed and d.decision == "allowed", d.message
    gate.audit.close()
    rows = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert rows[1]["decision"] == "allowed"
    if "${secrets." in (action.text or ""):
        assert rows[2]["kind"] == "secret_use" and rows[2]["name"] in ("BO_PASSWORD", "API_TOKEN")
