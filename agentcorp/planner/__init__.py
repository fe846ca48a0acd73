"""The planner: a task in, a ``Plan`` (concrete steps + subgoals) out, with bounded re-asks."""

from agentcorp.planner.plan import Plan, PlanError, Planner, PlanTask

__all__ = ["Plan", "PlanError", "PlanTask", "Planner"]
