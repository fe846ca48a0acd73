"""The safe YAML reader: libyaml fast path and pure-Python path agree; positions are 1-based."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from agentcorp.spec import _yaml
from agentcorp.spec._yaml import Parsed, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "tasks/acme/company.yaml").read_text("utf-8")


def _pure(text: str, monkeypatch: pytest.MonkeyPatch) -> Parsed:
    # Disable the C composer for this call only: the loader must give the same data without it.
    monkeypatch.setattr(_yaml, "_CLoader", None)
    parsed = parse_yaml(text, "f.yaml")
    monkeypatch.undo()
    assert isinstance(parsed, Parsed)
    return parsed


def test_c_extension_is_installed() -> None:
    # ruamel.yaml.clib is a runtime dependency: without it big files validate ~6x slower.
    assert _yaml._CLoader is not None


def test_fast_and_pure_parsers_agree_on_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_yaml(SAMPLE, "f.yaml")
    assert isinstance(fast, Parsed)
    pure = _pure(SAMPLE, monkeypatch)
    assert fast.data == pure.data
    assert fast.values == pure.values and fast.keys == pure.keys


def test_scalars_resolve_like_yaml_1_2(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "a: [yes, on, No, 0o17, 017, 1_000, 0x1F, +1, -0, 1.5, 1e3, .inf, -.inf, ~, null,\n"
        "    true, False, 2026-10-01, '2026-10', 0b101]\n"
    )
    expected = [
        "yes",
        "on",
        "No",
        15,
        17,
        1000,
        31,
        1,
        0,
        1.5,
        1000.0,
        float("inf"),
        float("-inf"),
        None,
        None,
        True,
        False,
        "2026-10-01",
        "2026-10",
        5,
    ]
    fast = parse_yaml(text, "f.yaml")
    assert isinstance(fast, Parsed)
    assert fast.data == {"a": expected}
    assert _pure(text, monkeypatch).data == {"a": expected}


def test_yaml_1_2_text_libyaml_refuses_still_loads() -> None:
    parsed = parse_yaml("a: [12:30, x]\n", "f.yaml")
    assert isinstance(parsed, Parsed)
    assert parsed.data == {"a": ["12:30", "x"]}


def test_positions_are_one_based_for_keys_and_values() -> None:
    parsed = parse_yaml("top:\n  inner: [1, {k: v}]\n", "f.yaml")
    assert isinstance(parsed, Parsed)
    assert parsed.keys[("top",)] == (1, 1)
    assert parsed.keys[("top", "inner")] == (2, 3)
    assert parsed.values[("top", "inner", 0)] == (2, 11)
    assert parsed.values[("top", "inner", 1, "k")] == (2, 18)


def test_anchors_and_merge_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b, *b]\n"
    parsed = parse_yaml(text, "f.yaml")
    assert isinstance(parsed, Parsed)
    assert parsed.data["use"] == {"x": 1, "y": 3}
    assert parsed.data["list"] == [{"x": 1, "y": 2}] * 2
    assert parsed.data == YAML(typ="safe", pure=True).load(text)


def test_alias_limit_is_configurable() -> None:
    text = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a, *a]\n"
    issue = parse_yaml(text, "f.yaml", max_nodes=10)
    assert not isinstance(issue, Parsed)
    assert "more than 10 nodes through aliases" in issue.message
    assert isinstance(parse_yaml(text, "f.yaml", max_nodes=100), Parsed)
