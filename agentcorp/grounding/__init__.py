"""agentcorp.grounding."""
