"""Token and USD accounting: a price table users can override, and a thread-safe meter.

Prices are USD per one million tokens (input, cached input, output) per model name. A model
missing from the table has an unknown cost: its calls count in ``Usage.unpriced_calls`` and it
is listed in ``UsageMeter.unpriced``, so a report says "unknown" instead of claiming the run was
free.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentcorp.errors import BudgetExceeded, ConfigError
from agentcorp.types import Usage

__all__ = ["DEFAULT_PRICES", "BudgetCheck", "Price", "PriceTable", "UsageMeter", "budget_check"]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per one million input (prompt) and output (completion) tokens.

    ``cached_input_per_m`` is the price of prompt tokens served from the provider's prompt
    cache; None means the provider does not discount them (they cost ``input_per_m``).
    """

    input_per_m: float
    output_per_m: float
    cached_input_per_m: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """USD for that many tokens; ``cached_tokens`` is the cached part of ``prompt_tokens``."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_rate = (
            self.input_per_m if self.cached_input_per_m is None else self.cached_input_per_m
        )
        fresh = prompt_tokens - cached
        return (
            fresh * self.input_per_m + cached * cached_rate + completion_tokens * self.output_per_m
        ) / 1e6


# List prices at the time of writing; override them (``PriceTable.with_overrides``) when the
# vendor changes them or a contract differs.
DEFAULT_PRICES: Mapping[str, Price] = {
    # xAI, current lineup (docs.x.ai "Models and Pricing": in (cached in) / out). grok-4.5,
    # grok-4.6 and grok-4.7 are left out until their list prices are confirmed: their cost
    # shows as unknown unless ``prices:`` gives one.
    "grok-4.3": Price(1.25, 2.50, 0.20),
    "grok-4.20": Price(2.00, 6.00, 0.20),
    "grok-4.20-0309-reasoning": Price(2.00, 6.00, 0.20),
    "grok-4.20-0309-non-reasoning": Price(2.00, 6.00, 0.20),
    "grok-4.20-multi-agent": Price(2.00, 6.00, 0.20),
    # xAI, earlier models (deprecated or retired; kept so old recordings are priced).
    "grok-4": Price(3.00, 15.00, 0.75),
    "grok-4-0709": Price(3.00, 15.00),
    "grok-4-fast": Price(0.20, 0.50),
    "grok-4-fast-reasoning": Price(0.20, 0.50),
    "grok-4-fast-non-reasoning": Price(0.20, 0.50),
    "grok-4-1-fast": Price(0.20, 0.50, 0.05),
    "grok-4-1-fast-reasoning": Price(0.20, 0.50, 0.05),
    "grok-4-1-fast-non-reasoning": Price(0.20, 0.50, 0.05),
    "grok-code-fast-1": Price(0.20, 1.50),
    "grok-3": Price(3.00, 15.00, 0.75),
    "grok-3-mini": Price(0.30, 0.50, 0.075),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
}


def _as_price(model: str, value: Any) -> Price:
    """Read a price from a ``Price``, a mapping or a pair/triple.

    Mapping: ``{"input": .., "output": .., "cached_input": ..}`` (the last optional); sequence:
    ``(input, output[, cached_input])``.
    """
    if isinstance(value, Price):
        return value
    try:
        if isinstance(value, Mapping):
            extra = set(value) - {"input", "output", "cached_input"}
            if extra:
                raise ValueError(f"unknown keys {sorted(extra)}")
            nums = [value["input"], value["output"]]
            if "cached_input" in value:
                nums.append(value["cached_input"])
        elif isinstance(value, list | tuple) and len(value) in (2, 3):
            nums = list(value)
        else:
            raise ValueError("expected {input: USD, output: USD, cached_input?: USD} per 1M tokens")
        if any(isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in nums):
            raise ValueError("prices must be non-negative numbers")
        cached = float(nums[2]) if len(nums) == 3 else None
        return Price(float(nums[0]), float(nums[1]), cached)
    except (KeyError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"prices.{model}: {detail} (got {value!r})") from None


class PriceTable:
    """Model name → ``Price``: exact names first, then the longest ``-``-separated prefix.

    So ``grok-4-0709-preview`` is priced as ``grok-4-0709``.
    """

    def __init__(self, prices: Mapping[str, Any] | None = None) -> None:
        source = DEFAULT_PRICES if prices is None else prices
        self._prices: dict[str, Price] = {m: _as_price(m, p) for m, p in source.items()}

    def with_overrides(self, overrides: Mapping[str, Any]) -> PriceTable:
        """A new table with ``overrides`` (same forms as the constructor) on top of this one."""
        merged: dict[str, Any] = dict(self._prices)
        merged.update(overrides)
        return PriceTable(merged)

    def price(self, model: str) -> Price | None:
        """The price of ``model``, or None when the table does not know it."""
        if model in self._prices:
            return self._prices[model]
        parts = model.split("-")
        for n in range(len(parts) - 1, 0, -1):
            found = self._prices.get("-".join(parts[:n]))
            if found is not None:
                return found
        return None

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
    ) -> float | None:
        """USD for one call, or None when the model is unpriced."""
        price = self.price(model)
        return (
            None if price is None else price.cost(prompt_tokens, completion_tokens, cached_tokens)
        )


class UsageMeter:
    """Sums ``Usage`` per call into totals per task, per company, per model. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = Usage()
        self._calls = 0
        self._tasks: dict[str, Usage] = {}
        self._companies: dict[str, Usage] = {}
        self._models: dict[str, Usage] = {}
        self.unpriced: set[str] = set()

    def add(
        self,
        usage: Usage,
        *,
        model: str = "",
        task: str | None = None,
        company: str | None = None,
        priced: bool = True,
    ) -> None:
        """Count one call."""
        with self._lock:
            self._calls += 1
            self._total = self._total + usage
            if task is not None:
                self._tasks[task] = self._tasks.get(task, Usage()) + usage
            if company is not None:
                self._companies[company] = self._companies.get(company, Usage()) + usage
            if model:
                self._models[model] = self._models.get(model, Usage()) + usage
                if not priced or usage.unpriced_calls:
                    self.unpriced.add(model)

    @property
    def total(self) -> Usage:
        """Everything counted so far."""
        with self._lock:
            return self._total

    @property
    def calls(self) -> int:
        """How many calls were counted."""
        with self._lock:
            return self._calls

    def task(self, task: str) -> Usage:
        """The sum for one task (zero if unseen)."""
        with self._lock:
            return self._tasks.get(task, Usage())

    def company(self, company: str) -> Usage:
        """The sum for one company (zero if unseen)."""
        with self._lock:
            return self._companies.get(company, Usage())

    def model(self, model: str) -> Usage:
        """The sum for one model (zero if unseen)."""
        with self._lock:
            return self._models.get(model, Usage())

    def by_task(self) -> dict[str, Usage]:
        """A copy of the per-task sums."""
        with self._lock:
            return dict(self._tasks)


#: Called by the client before every request; raises ``BudgetExceeded`` to stop spending.
BudgetCheck = Callable[[UsageMeter], None]


def budget_check(
    *,
    max_tokens: int | None = None,
    max_usd: float | None = None,
    task: str | None = None,
    company: str | None = None,
) -> BudgetCheck:
    """A check that raises ``BudgetExceeded`` once tokens or USD reached the limit.

    It looks at the task's sum if ``task`` is given, else the company's, else the meter's
    total; run before each request, it keeps the next request from being sent.
    """
    scope = f"task {task}" if task else f"company {company}" if company else "run"

    def check(meter: UsageMeter) -> None:
        used = meter.task(task) if task else meter.company(company) if company else meter.total
        if max_tokens is not None and used.total_tokens >= max_tokens:
            raise BudgetExceeded(
                f"tokens: {scope} used {used.total_tokens} of {max_tokens} allowed"
            )
        if max_usd is not None and used.cost_usd >= max_usd:
            raise BudgetExceeded(f"usd: {scope} spent ${used.cost_usd:.4f} of ${max_usd:.4f}")

    return check
