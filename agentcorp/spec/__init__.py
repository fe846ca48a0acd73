"""agentcorp.spec."""
