"""Turning a candidate list into one decision: a place, "ambiguous", or "not found".

The grounders never pick silently; ``resolve`` does, and only when the best candidate is
clearly better than the next (by ``margin``) or a hint separates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentcorp.grounding.base import Candidate, Hint

__all__ = ["AMBIGUITY_MARGIN", "Ambiguous", "NotFound", "resolve"]

#: Candidates whose scores are this close to the best are treated as equally likely.
AMBIGUITY_MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several places fit about equally well; ``candidates`` lists them, best first."""

    target: str
    candidates: tuple[Candidate, ...]

    def __str__(self) -> str:
        where = ", ".join(f"{c.text!r} at {c.box.center}" for c in self.candidates)
        return f"'{self.target}' is ambiguous: {len(self.candidates)} matches ({where})"


@dataclass(frozen=True, slots=True)
class NotFound:
    """Nothing on screen matched."""

    target: str

    def __str__(self) -> str:
        return f"'{self.target}' not found on screen"


def resolve(
    candidates: Sequence[Candidate],
    hint: Hint | None = None,
    target: str = "",
    margin: float = AMBIGUITY_MARGIN,
) -> Candidate | Ambiguous | NotFound:
    """The one candidate to act on, or why there is none.

    ``hint.region`` keeps only candidates centred inside it. Candidates are expected best
    first (as ``Grounder.locate`` returns them, hints already applied to the scores).
    """
    cands = list(candidates)
    if hint is not None and hint.region is not None:
        region = hint.region
        cands = [c for c in cands if region.contains(*c.box.center)]
    if not cands:
        return NotFound(target)
    cands.sort(key=lambda c: -c.score)
    best = cands[0]
    close = [c for c in cands[1:] if best.score - c.score <= margin]
    if close:
        return Ambiguous(target, (best, *close))
    return best
