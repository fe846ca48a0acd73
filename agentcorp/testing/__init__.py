"""agentcorp.testing."""
