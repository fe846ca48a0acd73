"""agentcorp: run an AI-only company on computers.

Task YAMLs describe the company; a planner LLM breaks each task into steps; a real-time actor
drives a virtual desktop or browser; every session is recorded and replayable as a test.
"""

from agentcorp.errors import AgentcorpError, SpecError

__version__ = "0.1.0"

__all__ = ["AgentcorpError", "SpecError", "__version__"]
