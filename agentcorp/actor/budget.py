"""Hard budgets enforced live: steps, tokens, USD and wall clock, per task and per company.

A task's ``BudgetMeter`` has the company's meter as ``parent``: every charge goes to both, and
``exceeded()`` reports whichever ran out first. The company meter is shared between tasks (and
threads), so it locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentcorp.types import BudgetStep, Usage

__all__ = ["BudgetMeter", "Budgets"]


@dataclass(frozen=True, slots=True)
class Budgets:
    """Limits; ``None`` means unlimited."""

    steps: int | None = None
    tokens: int | None = None
    usd: float | None = None
    wall_clock_s: float | None = None


class BudgetMeter:
    """Counts use against ``limits``; charges also go to ``parent`` (the company meter)."""

    def __init__(
        self,
        limits: Budgets,
        *,
        name: str = "task",
        parent: BudgetMeter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.name = name
        self.parent = parent
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.steps = 0
        self.usage = Usage()

    def child(self, limits: Budgets, name: str) -> BudgetMeter:
        """A meter for one task that also charges this one."""
        return BudgetMeter(limits, name=name, parent=self, clock=self._clock)

    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds since this meter started."""
        return self._clock() - self.started

    def pause(self, seconds: float) -> None:
        """Take ``seconds`` off this meter's wall clock (a person held control meanwhile)."""
        with self._lock:
            self.started += max(0.0, seconds)

    def charge_step(self) -> None:
        """Count one actor step (an executed action)."""
        with self._lock:
            self.steps += 1
        if self.parent is not None:
            self.parent.charge_step()

    def charge(self, usage: Usage) -> None:
        """Count a model call's tokens and cost."""
        with self._lock:
            self.usage = self.usage + usage
        if self.parent is not None:
            self.parent.charge(usage)

    def exceeded(self) -> str | None:
        """The first budget that ran out, as a readable reason, or ``None``."""
        lim, use = self.limits, self.usage
        reason: str | None = None
        if lim.steps is not None and self.steps >= lim.steps:
            reason = f"{self.name} step budget of {lim.steps} used up"
        elif lim.tokens is not None and use.total_tokens > lim.tokens:
            reason = f"{self.name} token budget of {lim.tokens} exceeded ({use.total_tokens})"
        elif lim.usd is not None and use.cost_usd > lim.usd:
            reason = f"{self.name} USD budget of {lim.usd:g} exceeded ({use.cost_usd:.4f})"
        elif lim.wall_clock_s is not None and self.elapsed_s > lim.wall_clock_s:
            reason = f"{self.name} wall-clock budget of {lim.wall_clock_s:g}s exceeded"
        if reason is None and self.parent is not None:
            return self.parent.exceeded()
        return reason

    def deadline(self) -> float | None:
        """When (``time.monotonic()``) the tightest wall-clock budget runs out, or ``None``.

        Long actions are bounded by it (``execute_action(..., deadline=...)``), so a budget
        runs out during an action, not only between actions.
        """
        own = None
        if self.limits.wall_clock_s is not None:
            own = time.monotonic() + (self.limits.wall_clock_s - self.elapsed_s)
        up = self.parent.deadline() if self.parent is not None else None
        if own is None or up is None:
            return own if up is None else up
        return min(own, up)

    def snapshot(self, step: int, t: float, exceeded: str | None = None) -> BudgetStep:
        """A ``BudgetStep`` record of this meter's use."""
        return BudgetStep(
            step=step,
            t=t,
            steps=self.steps,
            tokens=self.usage.total_tokens,
            usd=round(self.usage.cost_usd, 6),
            wall_clock_s=round(self.elapsed_s, 3),
            exceeded=exceeded,
        )
