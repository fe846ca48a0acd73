from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcorp.policy.keys import expand_pattern, parse_combo, parse_sequence


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ctrl+alt+Delete", "alt+ctrl+delete"),
        ("Control+Alt+DEL", "ctrl+alt+Delete"),
        ("ctl+Alt_L+Del", "ctrl+alt+delete"),
        ("super+t", "Win+T"),
        ("meta+t", "super+t"),
        ("cmd+Return", "super+enter"),
        ("Control_R+Escape", "ctrl+esc"),
        ("ctrl++", "control+plus"),
    ],
)
def test_aliases_and_order_fold_to_one_combo(a: str, b: str) -> None:
    assert parse_combo(a) == parse_combo(b)


def test_str_is_canonical_order() -> None:
    assert str(parse_combo("alt+ctrl+Delete")) == "ctrl+alt+delete"
    assert str(parse_combo("shift+super+ctrl+x")) == "ctrl+shift+super+x"


def test_covers_extra_modifiers_but_not_other_keys() -> None:
    forbidden = parse_combo("ctrl+alt+Delete")
    assert forbidden.covers(parse_combo("ctrl+alt+shift+Delete"))
    assert not forbidden.covers(parse_combo("ctrl+Delete"))
    assert not forbidden.covers(parse_combo("ctrl+alt+BackSpace"))


def test_function_key_range_expands() -> None:
    combos = expand_pattern("ctrl+alt+F1..F12")
    assert [c.key for c in combos] == [f"f{n}" for n in range(1, 13)]
    assert all(c.modifiers == {"ctrl", "alt"} for c in combos)


@pytest.mark.parametrize("bad", ["", "ctrl+", "+ctrl+x", "ctrl++x", "foo+x", "ctrl+alt+F5..F1"])
def test_malformed_combos_raise_one_line(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        expand_pattern(bad)
    assert "\n" not in str(info.value)


def test_sequence_checks_every_combo() -> None:
    assert [str(c) for c in parse_sequence("ctrl+l  ctrl+alt+t Return")] == [
        "ctrl+l",
        "ctrl+alt+t",
        "enter",
    ]


@given(st.permutations(["ctrl", "alt", "shift", "super"]), st.sampled_from(["a", "F4", "Delete"]))
def test_modifier_order_never_matters(mods: list[str], key: str) -> None:
    assert parse_combo("+".join([*mods, key])) == parse_combo(f"ctrl+alt+shift+super+{key}")
