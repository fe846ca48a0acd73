"""The actor: the observe-decide-gate-act-settle loop and its budgets.

``Actor(computer, gate=..., model=..., grounder=..., meter=..., config=...).run(task)`` yields
``agentcorp.types`` step records and returns an ``EpisodeResult``.
"""

from agentcorp.actor.budget import BudgetMeter, Budgets
from agentcorp.actor.loop import Actor, ActorConfig, EpisodeResult, EpisodeTask, run_episode
from agentcorp.actor.script import ScriptStep, parse_step, step_text
from agentcorp.actor.tools import TOOL_SCHEMAS, parse_tool_call

__all__ = [
    "TOOL_SCHEMAS",
    "Actor",
    "ActorConfig",
    "BudgetMeter",
    "Budgets",
    "EpisodeResult",
    "EpisodeTask",
    "ScriptStep",
    "parse_step",
    "parse_tool_call",
    "run_episode",
    "step_text",
]
