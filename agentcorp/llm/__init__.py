"""agentcorp.llm."""
