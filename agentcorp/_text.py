"""What counts as visible text: the one definition the spec, the loop and grounding share.

A target is text a person can see on screen. Characters that draw nothing by themselves
(controls, format characters such as zero-width spaces and joiners, direction marks, the
soft hyphen and byte-order mark, every kind of space and line separator, and combining
marks with no letter to sit on) can be neither read by OCR nor told apart on a page, so a
target made only of them can match nothing honestly; a DOM text search would find it inside
any text that happens to hold one, which is worse.

This module imports nothing of ours, so every layer (``agentcorp.spec`` included) may use it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["drop_format", "visible"]

_UNSEEN = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me"})


def visible(text: str) -> bool:
    """Whether ``text`` holds at least one character that shows on screen."""
    return any(unicodedata.category(ch) not in _UNSEEN for ch in text)


def drop_format(text: str) -> str:
    """``text`` without format characters (zero-width spaces and joiners, soft hyphens...).

    They draw nothing, so "one\u200bword" shows as "oneword": a text compared with what a
    person sees must not keep them.
    """
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
