"""The application layer: everything one run of a company owns.

``agentcorp.run`` (``agentcorp.app.running.run``) resolves the configuration, opens the sandboxes,
runs each task instance (choosing steps, cache, recording or model), records every attempt
through an observer of the step stream, keeps the audit log, the ledger and the traces, and
returns a ``RunReport``. The command line, the pytest plugin and the fleet's workers
(``agentcorp.app.episode.EPISODE``) all go through here.

Names are imported lazily so ``import agentcorp.app`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EPISODE",
    "RunConfig",
    "RunObserver",
    "RunPlan",
    "RunReport",
    "TaskRun",
    "TaskRunner",
    "resolve_config",
    "run",
]

_WHERE = {
    "EPISODE": "agentcorp.app.episode",
    "RunConfig": "agentcorp.app.config",
    "resolve_config": "agentcorp.app.config",
    "RunObserver": "agentcorp.app.attempt",
    "TaskRun": "agentcorp.app.attempt",
    "RunPlan": "agentcorp.app.running",
    "run": "agentcorp.app.running",
    "RunReport": "agentcorp.app.report",
    "TaskRunner": "agentcorp.app.runner",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp.app' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
