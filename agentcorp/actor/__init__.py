"""agentcorp.actor."""
