"""Helpers for the one-line issues the loader reports (``agentcorp.errors.SpecIssue``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = ["did_you_mean", "format_path"]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string when none is close."""
    options = sorted({c for c in choices if isinstance(c, str)})
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_path(parts: Sequence[str | int]) -> str:
    """``("tasks", 2, "role")`` → ``tasks[2].role``; keys that are not identifiers are quoted."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.replace("_", "a").replace("-", "a").isalnum():
            out += f".{p}" if out else p
        else:
            out += f"[{p!r}]"
    return out
