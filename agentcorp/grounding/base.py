"""The grounding contract: find a visible text target on a frame.

The actor loop depends only on this module. Concrete grounders (OCR on the desktop, the DOM
and accessibility tree in the browser) implement ``Grounder``; ``NullGrounder`` always answers
"not found", which makes the loop fall back to the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from agentcorp.types import Box

__all__ = ["Candidate", "DomLocator", "Grounder", "Hint", "NullGrounder"]


@dataclass(frozen=True, slots=True)
class Hint:
    """Optional help for disambiguation: a nearby text, a role, a region to look in."""

    near: str | None = None
    role: Literal["button", "field", "link", "text", "menu"] | None = None
    region: Box | None = None
    #: "act" when the target will be clicked: a grounder that knows what can be acted on
    #: then never offers the target's words inside a longer plain text (instructions).
    purpose: Literal["read", "act"] = "read"
    #: False for a poll, where a miss only means "look again at the next frame": a grounder
    #: may then skip the costly re-checks that only guard a final "not found" (a whole-frame
    #: re-read), so a wait sees the text on the first frame that shows it, not a read later.
    thorough: bool = True


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place the target may be: its box in screen pixels, the text read there, a score."""

    box: Box
    text: str
    score: float
    source: Literal["dom", "a11y", "ocr", "cache"]


class Grounder(ABC):
    """Finds text targets on screen."""

    #: Whether what this grounder finds is read off the frame's pixels (OCR): then it is
    #: drawn, not only known to the app.
    reads_pixels: ClassVar[bool] = False

    @abstractmethod
    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Candidates for ``target`` on ``frame`` (a ``sandbox.base.Frame``), best first.

        Several candidates with close scores mean the target is ambiguous: callers must
        report that rather than pick one silently.
        """

    def drawn(self, frame: object, target: str, found: list[Candidate]) -> bool:
        """Whether ``frame``'s pixels show ``target`` where ``found`` (this grounder's answer) is.

        A source that reads an app's structure (an accessibility tree) knows a window as soon
        as the app creates it, often before it is drawn: a wait that ended there would let
        the next key reach the window still showing underneath. ``True`` when the grounder
        has nothing to add (the default; what it finds is on the screen).
        """
        return True

    def why_not(self, target: str) -> str | None:
        """Why ``target`` cannot be found although the screen holds it in some form, if known.

        Asked only once a target was not found: e.g. a browser knows that the words are an
        option of a closed list, which no click can reach. ``None`` when there is nothing to
        add to "not found".
        """
        return None

    def reveal(self, target: str, hint: Hint | None = None) -> tuple[int, int, int, int] | None:
        """A scroll that brings ``target`` into view when it is there but out of view.

        ``(x, y, dx, dy)`` for a ``scroll`` action (wheel notches: positive ``dy`` scrolls
        down, positive ``dx`` right); ``None``
        when the grounder cannot tell (the default) or the target is nowhere to scroll to.
        """
        return None


class NullGrounder(Grounder):
    """Never finds anything, so every text target goes to the model."""

    def locate(self, frame: object, target: str, hint: Hint | None = None) -> list[Candidate]:
        """Always empty."""
        return []


@runtime_checkable
class DomLocator(Protocol):
    """A computer that can find elements in its DOM (the browser backend implements this).

    ``dom_locate(target, role)`` returns visible elements matching ``target`` as screen boxes
    with their text, exact matches first; ``role="field"`` means the input *labelled*
    ``target`` (Playwright's ``get_by_label``/``get_by_placeholder``); ``None`` tries every
    role.
    """

    def dom_locate(self, target: str, role: str | None = None) -> list[tuple[Box, str]]:
        """Visible elements for ``target`` as ``(box, text)`` pairs."""
        ...
