"""agentcorp.record."""
