from __future__ import annotations

import threading

import pytest

from agentcorp.errors import BudgetExceeded, ConfigError
from agentcorp.llm import DEFAULT_PRICES, Price, PriceTable, UsageMeter, budget_check
from agentcorp.types import Usage


def test_price_lookup_exact_then_prefix() -> None:
    t = PriceTable()
    assert t.price("grok-4") == Price(3.0, 15.0, 0.75)
    assert t.price("grok-4-0709-preview") == DEFAULT_PRICES["grok-4-0709"]
    assert t.price("grok-4-1-fast-non-reasoning") == Price(0.2, 0.5, 0.05)
    assert t.price("grok-4.3-latest") == Price(1.25, 2.5, 0.2)
    # A dotted version is its own model, never priced as an older family by prefix.
    assert t.price("grok-4.7") is None and t.price("grok-4.20-0309-reasoning") is not None
    assert t.price("llama3:8b") is None
    assert t.cost("llama3:8b", 10, 10) is None
    assert t.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)


def test_overrides_accept_short_forms() -> None:
    t = PriceTable().with_overrides({"local": (0, 0), "grok-4": {"input": 1, "output": 2}})
    assert t.price("local") == Price(0.0, 0.0)
    assert t.cost("grok-4", 1_000_000, 500_000) == pytest.approx(2.0)
    assert PriceTable().price("grok-4") == Price(3.0, 15.0, 0.75)  # the default is unchanged
    t3 = PriceTable().with_overrides(
        {"m": (1, 2, 0.5), "n": {"input": 4, "output": 4, "cached_input": 1}}
    )
    assert t3.price("m") == Price(1.0, 2.0, 0.5) and t3.price("n") == Price(4.0, 4.0, 1.0)


def test_cached_tokens_are_priced_at_the_cached_rate() -> None:
    price = Price(2.0, 6.0, 0.2)
    # 1M prompt tokens of which 800k cached: 200k at $2 + 800k at $0.2, plus 100k out at $6.
    assert price.cost(1_000_000, 100_000, 800_000) == pytest.approx(0.4 + 0.16 + 0.6)
    # No cached price: the cache costs full input price; cached can never exceed the prompt.
    assert Price(1.0, 1.0).cost(1_000_000, 0, 500_000) == pytest.approx(1.0)
    assert price.cost(10, 0, 99) == pytest.approx(10 * 0.2 / 1e6)


def test_unknown_cost_is_never_shown_as_zero() -> None:
    priced = Usage(10, 5, 0, 0.25)
    unknown = Usage(10, 5, 0, 0.0, unpriced_calls=1)
    assert priced.cost_known and priced.cost_text() == "0.2500"
    assert not unknown.cost_known and unknown.cost_text() == "unknown"
    both = priced + unknown
    assert not both.cost_known and both.cost_text() == "unknown (≥ 0.2500)"
    assert (Usage(cached_tokens=3) + Usage(cached_tokens=4)).cached_tokens == 7


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ({"input": 1}, "prices.m: missing key 'output'"),
        ({"input": 1, "output": 2, "cached": 1}, "prices.m: unknown keys"),
        ({"input": 1, "output": 2, "cached_input": -1}, "prices.m: prices must be non-negative"),
        ({"input": -1, "output": 2}, "prices.m: prices must be non-negative numbers"),
        ({"input": "1", "output": 2}, "prices.m: prices must be non-negative numbers"),
        ("cheap", "prices.m: expected {input: USD, output: USD, cached_input?: USD}"),
        ([1, 2, 3, 4], "prices.m: expected"),
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
