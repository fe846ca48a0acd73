"""Issue 16 defect 8: a long action is interrupted when its budget runs out, on real Xvfb.

The scripted step types 200,000 characters (allowed by a raised policy cap) with a 1 s
wall-clock budget; typing them takes far longer, so the step must stop part-way, report
failure (never ok), and the episode end as budget_exceeded.
"""

from __future__ import annotations

from agentcorp.actor.budget import BudgetMeter, Budgets
from agentcorp.actor.loop import EpisodeTask, run_episode
from agentcorp.policy.config import PolicyConfig
from agentcorp.policy.gate import PolicyGate
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.testing.drive import drive
from agentcorp.types import ActionResultStep, BudgetStep


def test_long_type_is_interrupted_by_the_wall_clock_budget() -> None:
    text = "x" * 200_000
    gate = PolicyGate(PolicyConfig(max_type_chars=1_000_000))
    with XvfbDesktop(screen=(320, 240), window_manager=False) as desk:
        steps, result = drive(
            run_episode(
                desk,
                EpisodeTask("long", "type a lot", steps=[{"type": text}]),
                gate=gate,
                meter=BudgetMeter(Budgets(wall_clock_s=1.0)),
            )
        )
    results = [s for s in steps if isinstance(s, ActionResultStep)]
    assert results and results[-1].ok is False
    assert "interrupted" in (results[-1].error or "")
    assert result.status == "budget_exceeded"
    assert any(isinstance(s, BudgetStep) and s.exceeded for s in steps)


def test_default_cap_refuses_a_megabyte_before_a_key_is_pressed() -> None:
    from agentcorp.testing.fake_computer import FakeComputer

    fc = FakeComputer([])
    steps, _ = drive(
        run_episode(
            fc,
            EpisodeTask("huge", "type a lot", steps=[{"type": "y" * 1_000_000}]),
            gate=PolicyGate(PolicyConfig()),
        )
    )
    assert not any(kind == "type" for kind, *_ in fc.actions)
    refused = [s for s in steps if isinstance(s, ActionResultStep)]
    assert refused and refused[0].ok is False and "max_type_chars" in (refused[0].error or "")
