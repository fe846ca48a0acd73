"""Episode runners that ship, and the bridge from a company spec to fleet tasks.

- ``noop``: passes at once (dispatch benchmarks).
- ``command``: runs ``payload["command"]`` (an argv) on the worker's display with the
  episode's environment (``AGENTCORP_IDEMPOTENCY_KEY``, ``DISPLAY``...); exit 0 passes.

A company's tasks run through the application layer's episode function
(``agentcorp.app.episode.EPISODE``), which ``agentcorp.run`` hands to the fleet by value.
"""

from __future__ import annotations

import os
import subprocess

from agentcorp.fleet.model import EpisodeContext, EpisodeResult, FleetTask

__all__ = ["command", "noop"]


def noop(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """Do nothing and pass."""
    return EpisodeResult("passed")


def command(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """Run ``payload["command"]`` with the episode's environment; exit code 0 passes."""
    argv = task.payload.get("command")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        detail = f"task {task.id!r}: payload.command must be a list of strings"
        return EpisodeResult("error", detail)
    timeout = float(task.payload.get("timeout_s", max(10.0, task.expected_s * 2)))
    env = {**os.environ, **ctx.env()}
    try:
        r = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        return EpisodeResult("error", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return EpisodeResult("error", f"{argv[0]}: timed out after {timeout:g}s")
    if r.returncode == 0:
        return EpisodeResult("passed", r.stdout.strip()[-200:])
    tail = (r.stderr or r.stdout).strip().splitlines()
    return EpisodeResult("failed", f"exit {r.returncode}: {tail[-1] if tail else ''}")
