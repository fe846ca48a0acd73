"""The spec's own error type and the one-line issue it carries.

``agentcorp.spec`` imports nothing else of ours, so it cannot raise ``agentcorp.errors.SpecError``
itself; the CLI (and anyone else at the boundary) converts ``SpecValidationError`` into it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["SpecValidationError", "ValidationIssue", "did_you_mean", "format_path"]


@dataclass(frozen=True, slots=True, order=True)
class ValidationIssue:
    """One problem in a spec file: where it is (1-based line and column) and what is wrong."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecValidationError(Exception):
    """A spec is invalid; ``issues`` holds every problem found in one pass, in file order."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues: list[ValidationIssue] = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid spec")


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
