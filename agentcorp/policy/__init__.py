"""agentcorp.policy."""
