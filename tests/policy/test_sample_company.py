"""The shipped sample company under its own policy: every scripted step passes, the obvious
attacks on each task's sandbox do not, and a fresh random secret never reaches the audit."""

from __future__ import annotations

import json
import secrets as pysecrets
from pathlib import Path

import pytest

from agentcorp.actor.script import parse_step
from agentcorp.policy import AuditedGate, GateContext, build_gate, verify
from agentcorp.spec import effective_policy, load_company
from agentcorp.types import Action, Box

ROOT = Path(__file__).resolve().parents[2]
COMPANY = load_company(ROOT / "tasks" / "acme")
TASKS = [t.id for t in COMPANY.tasks]
FIELD = Box(400, 300, 300, 36)
WINDOW = {"gnumeric": "Gnumeric", "mousepad": "Mousepad"}


def _base_ctx(task_id: str) -> GateContext:
    task = COMPANY.task(task_id)
    name = COMPANY.task_sandbox(task)
    sandbox = COMPANY.sandboxes[name]
    ctx = GateContext(task.id, task.role, name, "script")
    if sandbox.kind == "browser":
        return GateContext(task.id, task.role, name, "script", url=sandbox.start_url)
    app = sandbox.apps[0].command[0]
    return (
        GateContext(
            task.id,
            task.role,
            name,
            "script",
            window_class=WINDOW[app],
            window_title=f"{app} - sample",
        )
        if app in WINDOW
        else ctx
    )


def _gate(task_id: str, tmp_path: Path, value: str) -> AuditedGate:
    task = COMPANY.task(task_id)
    gate = build_gate(
        effective_policy(COMPANY, task),
        COMPANY.secrets,
        audit=tmp_path / "audit.jsonl",
        environ={"BACKOFFICE_PASSWORD": value},
        scope=task_id,
    )
    assert isinstance(gate, AuditedGate)
    return gate


def _actions(task_id: str) -> list[tuple[Action, GateContext]]:
    """The actions the loop makes of a task's steps, with the context the sandbox reports."""
    ctx = _base_ctx(task_id)
    out: list[tuple[Action, GateContext]] = []
    for i, raw in enumerate(COMPANY.task(task_id).steps or []):  # model-driven: no steps
        s = parse_step(raw, f"steps[{i}]")
        if s.kind == "open_url":
            out.append((Action("open_url", url=s.url), ctx))
            ctx = GateContext(ctx.task_id, ctx.role, ctx.sandbox, "script", url=s.url)
        elif s.kind == "type":
            typing = ctx
            if s.into:
                out.append((Action("click", x=500, y=318, target=s.into), ctx))
                typing = GateContext(
                    ctx.task_id,
                    ctx.role,
                    ctx.sandbox,
                    "script",
                    url=ctx.url,
                    window_class=ctx.window_class,
                    field_box=FIELD,
                    field_label=s.into,
                    field_is_password=s.into == "Password",
                )
            out.append((Action("type", text=s.text, into=s.into), typing))
        elif s.kind == "key":
            out.append((Action("key", keys=s.keys), ctx))
        elif s.kind in ("click", "double_click", "right_click"):
            out.append((Action(s.kind, x=10, y=10, target=str(s.target)), ctx))
    return out


def test_sample_declares_a_secret_and_types_it_somewhere() -> None:
    assert "BACKOFFICE_PASSWORD" in COMPANY.secret_specs
    typed = [a for t in TASKS for a, _ in _actions(t) if "${secrets." in (a.text or "")]
    assert typed


@pytest.mark.parametrize("task_id", TASKS)
def test_every_scripted_step_passes_its_policy(task_id: str, tmp_path: Path) -> None:
    value = pysecrets.token_urlsafe(18)
    gate = _gate(task_id, tmp_path, value)
    for action, ctx in _actions(task_id):
        d = gate.check(action, ctx)
        assert d.allowed, (action, d.message)
    gate.audit.close()
    audit = tmp_path / "audit.jsonl"
    assert value not in audit.read_text()
    assert verify(audit) == []
    kinds = [json.loads(x)["kind"] for x in audit.read_text().splitlines()]
    assert kinds[0] == "policy"


@pytest.mark.parametrize("task_id", TASKS)
def test_attacks_on_each_sample_sandbox_are_refused(task_id: str, tmp_path: Path) -> None:
    value = pysecrets.token_urlsafe(18)
    gate = _gate(task_id, tmp_path, value)
    ctx = _base_ctx(task_id)
    chat = GateContext(
        ctx.task_id,
        ctx.role,
        ctx.sandbox,
        "model",
        url=ctx.url,
        window_class=ctx.window_class,
        field_label="Notes",
        field_box=FIELD,
        field_is_password=False,
    )
    attacks = [
        (Action("type", text="${secrets.BACKOFFICE_PASSWORD}"), chat, "secrets:field"),
        (Action("type", text=f"pw: {value}"), ctx, "secrets:literal"),
        (Action("key", keys="ctrl+alt+Delete"), ctx, "forbid_keys:"),
        (Action("key", keys="ctrl+alt+t"), ctx, "forbid_keys:"),
        (Action("type", text="rm -rf ~"), ctx, "forbid_text:"),
        (Action("click", x=1, y=1, target="Delete"), ctx, "confirm:"),
        (
            Action("open_url", url="https://evil.example/?q=x"),
            ctx,
            "allow_urls" if ctx.url else None,
        ),
        (
            Action("type", text="x"),
            GateContext(
                ctx.task_id, ctx.role, ctx.sandbox, "model", url=ctx.url, window_class="XTerm"
            ),
            "allow_apps" if COMPANY.roles[COMPANY.task(task_id).role].policy else None,
        ),
    ]
    for action, c, rule in attacks:
        d = gate.check(action, c)
        if rule is None:
            continue
        assert not d.allowed and (d.rule or "").startswith(rule), (action, d)
    gate.audit.close()
    assert value not in (tmp_path / "audit.jsonl").read_text()
