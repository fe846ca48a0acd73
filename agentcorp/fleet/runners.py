"""Episode runners that ship, and the bridge from a company spec to fleet tasks.

- ``noop``: passes at once (dispatch benchmarks).
- ``command``: runs ``payload["command"]`` (an argv) on the worker's display with the
  episode's environment (``AGENTCORP_IDEMPOTENCY_KEY``, ``DISPLAY``...); exit 0 passes.
- ``spec``: runs the spec task through the same wiring as ``agentcorp run`` (the default
  of ``agentcorp fleet run``).
"""

from __future__ import annotations

import importlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError, SetupError
from agentcorp.fleet.model import EpisodeContext, EpisodeResult, FleetTask

__all__ = ["FleetPlan", "command", "load_plan", "noop", "plan_from_company", "spec"]

DEFAULT_EXPECTED_S = 600.0


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


def spec(task: FleetTask, ctx: EpisodeContext) -> EpisodeResult:
    """Run the spec task named by the payload through ``agentcorp.cli.wiring``."""
    try:
        wiring: Any = importlib.import_module("agentcorp.cli.wiring")
    except ImportError as exc:
        raise SetupError(f"agentcorp.cli.wiring is not available: {exc}") from exc
    fn = getattr(wiring, "run_fleet_episode", None)
    if fn is None:
        raise SetupError("agentcorp.cli.wiring has no run_fleet_episode(task, ctx)")
    result = fn(task, ctx)
    if not isinstance(result, EpisodeResult):
        raise SetupError(f"run_fleet_episode returned {type(result).__name__}")
    return result


# --- company spec → fleet tasks -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """What a fleet run needs from a company file."""

    tasks: list[FleetTask]
    budgets: dict[str, float]
    source: str


def plan_from_company(company: Any, source: str = "") -> FleetPlan:
    """Map a loaded ``agentcorp.spec`` company to fleet tasks.

    Each task reserves its own ``budgets.usd`` from the company's ``defaults.budgets.usd``
    while it runs; its ``wall_clock`` budget (else the company's, else 10 minutes) is the
    duration estimate drain decisions use.
    """
    name = str(company.company)
    defaults = company.defaults.budgets
    budgets: dict[str, float] = {}
    if defaults.usd is not None:
        budgets[name] = float(defaults.usd)
    tasks: list[FleetTask] = []
    for t in company.task_order():
        tb = t.budgets
        usd = tb.usd if tb is not None and tb.usd is not None else None
        wall = tb.wall_clock if tb is not None and tb.wall_clock is not None else None
        wall = wall if wall is not None else defaults.wall_clock
        tasks.append(
            FleetTask(
                id=t.id,
                depends_on=tuple(dict.fromkeys(t.depends_on)),
                company=name,
                cost=float(usd) if usd is not None else 0.0,
                expected_s=float(wall) if wall is not None else DEFAULT_EXPECTED_S,
                api_key="llm",
                payload={"company_file": source, "task_id": t.id},
            )
        )
    return FleetPlan(tasks, budgets, source)


def load_plan(path: str | Path) -> FleetPlan:
    """Load and validate a company file (or a folder holding one) into a ``FleetPlan``."""
    from agentcorp.spec import load_company

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such company file or folder")
    company = load_company(p)
    src = company.source if company.source is not None else p
    return plan_from_company(company, str(Path(src).resolve()))
