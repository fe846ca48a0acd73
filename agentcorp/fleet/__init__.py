"""agentcorp.fleet."""
