"""agentcorp: run an AI-only company on computers.

Task YAMLs describe the company; a planner LLM breaks each task into steps; a real-time actor
drives a virtual desktop or browser; every session is recorded and replayable as a test.

    import agentcorp
    report = agentcorp.run("tasks/acme", sessions="runs/demo")
    assert report.passed

``run``, ``RunReport`` and ``TaskRun`` are imported on first use, so ``import agentcorp``
stays cheap.
"""

from __future__ import annotations

from typing import Any

from agentcorp.errors import AgentcorpError, SpecError

__version__ = "0.1.0"

__all__ = [
    "AgentcorpError",
    "RunObserver",
    "RunReport",
    "SpecError",
    "TaskRun",
    "__version__",
    "run",
    "run_objective",
]

_LAZY = {
    "run": "agentcorp.app.running",
    "run_objective": "agentcorp.app.objectives",
    "RunReport": "agentcorp.app.report",
    "TaskRun": "agentcorp.app.attempt",
    "RunObserver": "agentcorp.app.attempt",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
