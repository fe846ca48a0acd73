"""Key-combination normalisation, so ``Control+Alt+DEL`` and ``alt+ctrl+Delete`` compare equal.

A combo is a set of modifiers plus one main key. Modifier order never matters; common aliases
(``control``/``ctl``/``Control_L`` → ``ctrl``, ``win``/``meta``/``cmd``/``Super_L`` → ``super``,
``option``/``Alt_L`` → ``alt``) and key aliases (``del`` → ``delete``, ``esc`` → ``escape``,
``return`` → ``enter``) fold to one spelling. Forbidden patterns may use a function-key range
``F1..F12`` that expands to each key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KeyCombo", "expand_pattern", "parse_combo", "parse_sequence"]

_MODIFIERS: dict[str, str] = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "ctl": "ctrl",
    "control_l": "ctrl",
    "control_r": "ctrl",
    "ctrl_l": "ctrl",
    "ctrl_r": "ctrl",
    "lctrl": "ctrl",
    "rctrl": "ctrl",
    "alt": "alt",
    "alt_l": "alt",
    "alt_r": "alt",
    "lalt": "alt",
    "ralt": "alt",
    "option": "alt",
    "opt": "alt",
    "mod1": "alt",
    "shift": "shift",
    "shift_l": "shift",
    "shift_r": "shift",
    "lshift": "shift",
    "rshift": "shift",
    "super": "super",
    "super_l": "super",
    "super_r": "super",
    "win": "super",
    "windows": "super",
    "meta": "super",
    "meta_l": "super",
    "meta_r": "super",
    "cmd": "super",
    "command": "super",
    "hyper": "super",
    "mod4": "super",
}

_KEYS: dict[str, str] = {
    "del": "delete",
    "delete": "delete",
    "kp_delete": "delete",
    "esc": "escape",
    "escape": "escape",
    "return": "enter",
    "enter": "enter",
    "kp_enter": "enter",
    "bksp": "backspace",
    "backspace": "backspace",
    "back_space": "backspace",
    "ins": "insert",
    "insert": "insert",
    "pgup": "pageup",
    "prior": "pageup",
    "page_up": "pageup",
    "pgdn": "pagedown",
    "next": "pagedown",
    "page_down": "pagedown",
    "spacebar": "space",
    "print": "printscreen",
    "prtsc": "printscreen",
    "sysrq": "printscreen",
    "sys_req": "printscreen",
    "plus": "+",
}

_RANGE = re.compile(r"^f(\d{1,2})\.\.f(\d{1,2})$")


@dataclass(frozen=True, slots=True)
class KeyCombo:
    """A normalised key combination: a set of modifiers and one main key (lower case)."""

    modifiers: frozenset[str]
    key: str

    def covers(self, other: KeyCombo) -> bool:
        """Whether pressing ``other`` presses this combo (same key, at least these modifiers).

        Extra modifiers still count as the forbidden combo: ``ctrl+alt+shift+Delete`` reaches
        the same handler as ``ctrl+alt+Delete`` on most desktops.
        """
        return self.key == other.key and self.modifiers <= other.modifiers

    def __str__(self) -> str:
        order = ("ctrl", "alt", "shift", "super")
        return "+".join([m for m in order if m in self.modifiers] + [self.key])


def _split(combo: str) -> list[str]:
    # "ctrl++" means ctrl and the plus key; a lone "+" is the plus key.
    text = combo.strip()
    if not text:
        raise ValueError("empty key combination")
    if text == "+":
        return ["+"]
    parts = text.split("+")
    if text.endswith("++"):
        parts = [*parts[:-2], "+"]
    if any(not p.strip() for p in parts):
        raise ValueError(f"malformed key combination {combo!r}")
    return [p.strip() for p in parts]


def parse_combo(combo: str) -> KeyCombo:
    """Normalise one combo such as ``"Control+Alt+Del"``; ``ValueError`` on a malformed one."""
    parts = _split(combo)
    mods: set[str] = set()
    for p in parts[:-1]:
        m = _MODIFIERS.get(p.lower())
        if m is None:
            raise ValueError(f"{p!r} is not a modifier in {combo!r}")
        mods.add(m)
    last = parts[-1].lower()
    if last in _MODIFIERS:
        # A bare modifier press ("super") is its own key; keep its folded name.
        return KeyCombo(frozenset(mods), _MODIFIERS[last])
    return KeyCombo(frozenset(mods), _KEYS.get(last, last))


def parse_sequence(keys: str) -> list[KeyCombo]:
    """Every combo in an action's ``keys``: whitespace separates combos pressed in turn.

    xdotool-style backends accept ``"ctrl+alt+t Return"`` as two presses, so each one is
    checked; a gate that looked only at the first would be trivially bypassed.
    """
    combos = [parse_combo(k) for k in keys.split()]
    if not combos:
        raise ValueError("empty key combination")
    return combos


def expand_pattern(pattern: str) -> list[KeyCombo]:
    """A forbidden-combo pattern as combos; ``ctrl+alt+F1..F12`` expands the range."""
    parts = _split(pattern)
    m = _RANGE.match(parts[-1].lower())
    if m is None:
        return [parse_combo(pattern)]
    lo, hi = int(m.group(1)), int(m.group(2))
    if not 1 <= lo <= hi <= 35:
        raise ValueError(f"bad function-key range in {pattern!r}")
    prefix = "+".join(parts[:-1])
    return [parse_combo(f"{prefix}+F{n}" if prefix else f"F{n}") for n in range(lo, hi + 1)]
