from __future__ import annotations

import threading

import pytest

from agentcorp.errors import BudgetExceeded, ConfigError
from agentcorp.llm import DEFAULT_PRICES, Price, PriceTable, UsageMeter, budget_check
from agentcorp.types import Usage


def test_price_lookup_exact_then_prefix() -> None:
    t = PriceTable()
    assert t.price("grok-4") == Price(3.0, 15.0)
    assert t.price("grok-4-0709-preview") == DEFAULT_PRICES["grok-4-0709"]
    assert t.price("grok-4-1-fast-non-reasoning") == Price(0.2, 0.5)
    assert t.price("llama3:8b") is None
    assert t.cost("llama3:8b", 10, 10) is None
    assert t.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)


def test_overrides_accept_short_forms() -> None:
    t = PriceTable().with_overrides({"local": (0, 0), "grok-4": {"input": 1, "output": 2}})
    assert t.price("local") == Price(0.0, 0.0)
    assert t.cost("grok-4", 1_000_000, 500_000) == pytest.approx(2.0)
    assert PriceTable().price("grok-4") == Price(3.0, 15.0)  # the default table is unchanged


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ({"input": 1}, "prices.m: missing key 'output'"),
        ({"input": 1, "output": 2, "cached": 1}, "prices.m: unknown keys"),
        ({"input": -1, "output": 2}, "prices.m: prices must be non-negative numbers"),
        ({"input": "1", "output": 2}, "prices.m: prices must be non-negative numbers"),
        ("cheap", "prices.m: expected {input: USD, output: USD}"),
        ([1, 2, 3], "prices.m: expected"),
    ],
)
def test_garbage_prices_are_one_line_config_errors(value: object, msg: str) -> None:
    with pytest.raises(ConfigError) as info:
        PriceTable({"m": value})
    assert str(info.value).startswith(msg) and "\n" not in str(info.value)


def test_meter_sums_per_task_company_model_thread_safely() -> None:
    meter = UsageMeter()
    u = Usage(prompt_tokens=3, completion_tokens=1, images=1, cost_usd=0.5)

    def work(task: str) -> None:
        for _ in range(500):
            meter.add(u, model="grok-4", task=task, company="acme")

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.calls == 2000
    assert meter.total == Usage(6000, 2000, 2000, pytest.approx(1000.0))
    assert meter.task("t0") == Usage(1500, 500, 500, pytest.approx(250.0))
    assert meter.company("acme").total_tokens == 8000
    assert meter.company("other") == Usage()
    assert set(meter.by_task()) == {"t0", "t1", "t2", "t3"}


def test_budget_checks() -> None:
    meter = UsageMeter()
    check_usd = budget_check(max_usd=0.01, company="acme")
    check_run = budget_check(max_tokens=100)
    check_usd(meter)
    check_run(meter)
    meter.add(Usage(50, 60, cost_usd=0.02), task="t", company="acme")
    with pytest.raises(BudgetExceeded, match=r"usd: company acme spent \$0.0200 of \$0.0100"):
        check_usd(meter)
    with pytest.raises(BudgetExceeded) as info:
        check_run(meter)
    assert info.value.reason == "tokens: run used 110 of 100 allowed"
    budget_check(max_tokens=100, task="other")(meter)  # another task's budget is untouched
