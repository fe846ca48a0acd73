"""agentcorp.planner."""
