"""Checks that read the page itself on real Chromium: screen_contains, dom and js."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.checks import CheckContext, PageReader, evaluate
from agentcorp.sandbox.browser import BrowserComputer
from agentcorp.spec import SpecError, load_company_text

PAGE = """<!doctype html><meta charset=utf-8><title>Order 42</title>
<h1 id="t">Order <b>42</b> saved</h1>
<input id="total" value="1,250.00"><input type="password" id="pw" value="s3cret">
<ul class="items"><li data-sku="A1">Apple</li><li data-sku="B2">Pear</li></ul>
<p>one&#8203;word, re&shy;ceipt</p>
<script>window.score = 0.8; window.done = false;</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserComputer]:
    with BrowserComputer(screen=(640, 480)) as b:
        b._page.set_content(PAGE)
        yield b


def _run(b: BrowserComputer, tree: Any, **inputs: Any) -> tuple[str, list[Any]]:
    status, leaves = evaluate(tree, CheckContext(home=Path("/tmp"), computer=b, inputs=inputs))
    return status, leaves


@pytest.mark.parametrize(
    ("check", "status"),
    [
        ({"check": "screen_contains", "text": "order 42 SAVED"}, "pass"),
        ({"check": "screen_contains", "regex": r"Order \d+ saved"}, "pass"),
        ({"check": "screen_contains", "regex": r"Order \d+ deleted"}, "fail"),
        ({"check": "screen_contains", "text": "1,250.00"}, "pass"),  # a field's value
        ({"check": "screen_contains", "text": "s3cret"}, "fail"),  # never a password's
        ({"check": "dom", "selector": "#t", "equals": "Order 42 saved"}, "pass"),
        ({"check": "dom", "selector": "#t b", "equals": 42}, "pass"),
        ({"check": "dom", "selector": "#t b", "at_least": 40, "at_most": 41}, "fail"),
        ({"check": "dom", "selector": "#total", "read": "value", "at_least": 1000}, "pass"),
        ({"check": "dom", "selector": "#total", "read": "value", "regex": r"^1,2\d0"}, "pass"),
        ({"check": "dom", "selector": "ul.items > li", "read": "count", "equals": 2}, "pass"),
        ({"check": "dom", "selector": "ul.items > li", "read": "count", "at_least": 3}, "fail"),
        ({"check": "dom", "selector": ".missing"}, "fail"),
        (
            {
                "check": "dom",
                "selector": "li",
                "read": "attribute",
                "attribute": "data-sku",
                "contains": "A",
            },
            "pass",
        ),
        ({"check": "js", "expression": "window.score > 0.5"}, "pass"),
        ({"check": "js", "expression": "window.done"}, "fail"),
        ({"check": "js", "expression": "() => document.title.startsWith('Order')"}, "pass"),
    ],
)
def test_page_checks(page: BrowserComputer, check: dict[str, Any], status: str) -> None:
    got, leaves = _run(page, check)
    assert got == status, leaves


def test_a_throwing_expression_fails_with_its_message(page: BrowserComputer) -> None:
    status, leaves = _run(page, {"check": "js", "expression": "nothing.here"})
    assert status == "fail"
    assert "threw" in leaves[0].detail and "nothing is not defined" in leaves[0].detail
    assert "\n" not in leaves[0].detail


def test_a_selector_the_page_rejects_is_an_error_naming_it(page: BrowserComputer) -> None:
    status, leaves = _run(page, {"check": "dom", "selector": "li[", "read": "text"})
    assert status == "error" and "li[" in leaves[0].detail and "\n" not in leaves[0].detail


def test_inputs_are_rendered_in_checks(page: BrowserComputer) -> None:
    tree = {
        "all": [
            {"check": "dom", "selector": "#t b", "equals": "{inputs.order}"},
            {"check": "js", "expression": "document.title === 'Order {inputs.order}'"},
            {"check": "screen_contains", "text": "Order {inputs.order} saved"},
        ]
    }
    assert _run(page, tree, order=42)[0] == "pass"
    assert _run(page, tree, order=43)[0] == "fail"


def test_browser_is_a_page_reader_and_a_desktop_check_says_it_needs_one() -> None:
    assert issubclass(BrowserComputer, PageReader)
    status, leaves = evaluate({"check": "js", "expression": "1"}, CheckContext(home=Path("/tmp")))
    assert status == "error" and "needs a browser sandbox" in leaves[0].detail


SPEC = """version: 1
company: c
roles: {r: {title: R, sandbox: web}}
sandboxes: {web: {kind: browser, start_url: "http://127.0.0.1:1/"}}
tasks:
  - id: t
    role: r
    description: d
    inputs: {n: 1}
    success: {check: dom, selector: "#x", equals: "{inputs.m}"}
"""


def test_validate_names_the_line_of_an_unknown_input_in_a_check() -> None:
    with pytest.raises(SpecError) as err:
        load_company_text(SPEC, "company.yaml")
    assert "company.yaml:10:" in str(err.value) and "inputs.m" in str(err.value)


def test_a_text_with_no_visible_character_is_an_error_not_a_pass(page: BrowserComputer) -> None:
    # The page holds a zero-width space and a soft hyphen, so a plain text search "finds"
    # them; nothing a person sees is checked, so the check cannot pass.
    for text in ("\u200b", "\u00ad", "\u200b \u2060"):
        status, leaves = _run(page, {"check": "screen_contains", "text": text})
        assert status == "error", (text, leaves)
        assert "no visible character" in leaves[0].detail and "\n" not in leaves[0].detail
    # What is seen is checked as seen: "one\u200bword" reads "oneword", "re\u00adceipt" "receipt".
    for text in ("oneword", "receipt", "one\u200bword"):
        assert _run(page, {"check": "screen_contains", "text": text})[0] == "pass", text
    assert _run(page, {"check": "screen_contains", "text": "one word"})[0] == "fail"
