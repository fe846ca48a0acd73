"""Run a company's task graph on many workers, with a ledger that never loses a task.

- ``SqliteLedger`` (``agentcorp.fleet.ledger``): the durable record of a run; fenced writes.
- ``SchedulerPolicy`` (``agentcorp.fleet.policy``): the pure scheduling policy shared by the
  coordinators and the simulator.
- ``run_local`` (``agentcorp.fleet.local``): worker processes on this machine (default).
- ``run_ray`` (``agentcorp.fleet.ray_backend``): one actor per desktop slot on a Ray cluster
  (``pip install "agentcorp[ray]"``; the only module that imports ray, lazily).
- ``simulate`` (``agentcorp.fleet.sim``): the policy on a simulated fleet.
- ``FleetTask``, ``EpisodeContext``, ``EpisodeResult``, ``idempotency_key``
  (``agentcorp.fleet.model``): what an episode runner gets and returns.

Names are imported lazily so ``import agentcorp.fleet`` stays cheap and never needs ray.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EpisodeContext",
    "EpisodeResult",
    "FleetTask",
    "LocalOptions",
    "RayOptions",
    "SchedulerPolicy",
    "SimConfig",
    "SqliteLedger",
    "idempotency_key",
    "run_local",
    "run_ray",
    "simulate",
]

_WHERE = {
    "EpisodeContext": "agentcorp.fleet.model",
    "EpisodeResult": "agentcorp.fleet.model",
    "FleetTask": "agentcorp.fleet.model",
    "idempotency_key": "agentcorp.fleet.model",
    "SqliteLedger": "agentcorp.fleet.ledger",
    "SchedulerPolicy": "agentcorp.fleet.policy",
    "LocalOptions": "agentcorp.fleet.local",
    "run_local": "agentcorp.fleet.local",
    "RayOptions": "agentcorp.fleet.ray_backend",
    "run_ray": "agentcorp.fleet.ray_backend",
    "SimConfig": "agentcorp.fleet.sim",
    "simulate": "agentcorp.fleet.sim",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp.fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
