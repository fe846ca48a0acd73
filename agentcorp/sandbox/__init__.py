"""agentcorp.sandbox."""
