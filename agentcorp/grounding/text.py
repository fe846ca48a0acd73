"""Tolerant text matching of a target (one or more words) inside recognised lines.

Both sides are *folded*: lower case, OCR confusions mapped to one letter (0/o, 1/l/i/|,
rn/m, vv/w, 5/s), spaces and punctuation dropped, because screen OCR often loses the space
between words ("GlobexLtd") or reads "1" for "l". A match must start and end on a word
boundary of the line as read (a space or punctuation, a lower-to-upper case change, a letter
to digit change, or the line's ends), so "View" does not match inside "review" and "12" does
not match inside "1200". A match that only a *folded* comparison finds, or that needs a few
edits, scores lower than an exact one, so a clear exact match wins over look-alikes.
A target of punctuation only (``*``, ``+/-``) folds to nothing: it matches as written, as a
whole token of the line.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcorp._text import drop_format, visible

__all__ = ["TextMatch", "find_matches", "fold", "matchable", "similarity"]

_PAIRS = (("rn", "m"), ("vv", "w"))
_SINGLE = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "5": "s"})


def fold(text: str) -> str:
    """The comparison key of ``text``: lower case, confusions folded, only letters/digits."""
    s = "".join(ch for ch in text.lower() if ch.isalnum())
    for a, b in _PAIRS:
        s = s.replace(a, b)
    return s.translate(_SINGLE)


def matchable(target: str) -> bool:
    """Whether any text can match ``target``: it holds a visible character.

    Letters and digits match folded, punctuation and symbols as whole tokens; a target of
    only spaces, controls, zero-width or other invisible characters can match nothing.
    """
    return visible(target)


def _levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def similarity(a: str, b: str) -> float:
    """1.0 for equal folded texts, falling with the edit distance."""
    fa, fb = fold(a), fold(b)
    if not fa or not fb:
        return 0.0
    return 1.0 - _levenshtein(fa, fb) / max(len(fa), len(fb))


def _allowed_edits(n: int) -> int:
    # Short targets must match exactly: one wrong letter in "Edit" is "Exit".
    if n <= 4:
        return 0
    if n <= 8:
        return 1
    return 2 if n <= 14 else n // 7


@dataclass(frozen=True, slots=True)
class TextMatch:
    """Where a target matched in a line: ``line[start:end]``, with a score in (0, 1]."""

    start: int
    end: int
    score: float


def _units(line: str) -> tuple[str, list[int], set[int]]:
    """Folded characters of ``line``, each one's index in ``line``, and boundary positions.

    Folding pairs ("rn" -> "m") is done per pair so indices stay exact.
    """
    keys: list[str] = []
    where: list[int] = []
    bounds: set[int] = {0}
    i = 0
    prev_raw = ""
    while i < len(line):
        ch = line[i]
        if not ch.isalnum():
            bounds.add(len(keys))
            i += 1
            prev_raw = ""
            continue
        if prev_raw and (
            (ch.isupper() and not prev_raw.isupper()) or (ch.isdigit() != prev_raw.isdigit())
        ):
            bounds.add(len(keys))
        pair = line[i : i + 2].lower()
        if pair in ("rn", "vv"):
            keys.append("m" if pair == "rn" else "w")
            where.append(i)
            i += 2
            prev_raw = line[i - 1]
            continue
        low = "".join(c for c in ch.lower() if c.isalnum()).translate(_SINGLE)
        for c in low:  # "İ".lower() is two code points; keep fold()'s view of it
            keys.append(c)
            where.append(i)
        prev_raw = ch
        i += 1
    bounds.add(len(keys))
    return "".join(keys), where, bounds


#: Letter pairs fonts draw as one ligature glyph, folded ("fi" folds to "fl"); OCR often
#: reads such a glyph as nothing ("Scientific" -> "sc ienti c").
_LIGATURES = ("ffl", "ff", "fl")


def _without_ligatures(want: str) -> str:
    """``want`` with its ligature pairs dropped ('' when it has none)."""
    out = want
    for pair in _LIGATURES:
        out = out.replace(pair, "")
    return out if out != want else ""


def _distance(piece: str, want: str, lig: str) -> float:
    """Edits from ``piece`` to ``want``; a ligature the read dropped costs half an edit."""
    if piece == want:
        return 0
    if lig and piece == lig:
        return 0.5
    return _levenshtein(piece, want)


def _whole(line: str, lo: int, hi: int, segments: list[tuple[int, int]]) -> bool:
    """Whether ``line[lo:hi]`` covers one whole segment (punctuation around aside)."""
    for a, b in segments:
        if a <= lo and hi <= b:
            rest = line[a:lo] + line[hi:b]
            return not any(ch.isalnum() for ch in rest)
    return False


def find_matches(
    target: str, line: str, min_score: float = 0.8, segments: list[tuple[int, int]] | None = None
) -> list[TextMatch]:
    """Every word-aligned place ``target`` matches in ``line``, best first.

    Exact (spacing aside) scores 1.0, minus 0.03 when the case differs; equal after folding
    confusions 0.97; each allowed edit costs ``1/len``. ``segments`` are the spans of
    ``line`` read as separate labels: a match that is only part of one loses 0.03.
    """
    want = fold(target)
    if not want:
        return _symbol_matches(target, line, min_score)
    keys, where, bounds = _units(line)
    if not keys:
        return []
    raw_case = "".join(ch for ch in target if ch.isalnum())
    raw_target = raw_case.lower()
    edits = _allowed_edits(len(want))
    lig = _without_ligatures(want)
    out: list[TextMatch] = []
    starts = sorted(b for b in bounds if b < len(keys))
    ends = sorted(b for b in bounds if b > 0)
    for s in starts:
        for e in ends:
            if e <= s:
                continue
            n = e - s
            # Up to 8 letters only substitutions count as misreads: "Customers" is not a
            # misread "Customer", it is another word.
            slack = edits if len(want) > 8 else 0
            if not (len(want) - slack <= n <= len(want) + slack or (lig and n == len(lig))):
                continue
            piece = keys[s:e]
            d = _distance(piece, want, lig)
            if d > edits:
                continue
            lo, hi = where[s], where[e - 1] + 1
            if hi < len(line) and line[hi - 1 : hi + 1].lower() in ("rn", "vv"):
                hi += 1
            if d == 0:
                raw = "".join(ch for ch in line[lo:hi] if ch.isalnum())
                score = 1.0 if raw.lower() == raw_target else 0.97
                if raw != raw_case:
                    score -= 0.03  # "order" is a little less "Order" than "Order" is
            else:
                score = 0.97 - d / len(want)
            if (
                segments is not None
                and (lo, hi) not in segments
                and not any(lo == a and hi == b for a, b in segments)
                and not _whole(line, lo, hi, segments)
            ):
                score -= 0.03  # part of a longer label: a whole label that fits wins
            if score >= min_score:
                out.append(TextMatch(lo, hi, round(score, 4)))
    out.sort(key=lambda m: (-m.score, m.start))
    # Overlapping matches of one place: keep the best.
    kept: list[TextMatch] = []
    for m in out:
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return kept


def _symbol_matches(target: str, line: str, min_score: float) -> list[TextMatch]:
    """Where a target of punctuation only (``*``, ``+/-``, ``%``) stands alone in ``line``.

    Folding drops punctuation, so such a target is compared as written: it must be a whole
    token of the line (spaces or the line's ends around it); "+" is not inside "+/-".
    """
    want = "".join(drop_format(target).split())
    if not want or min_score > 1.0:
        return []
    out: list[TextMatch] = []
    start = line.find(want)
    while start >= 0:
        end = start + len(want)
        before = line[start - 1] if start else " "
        after = line[end] if end < len(line) else " "
        if before.isspace() and after.isspace():
            out.append(TextMatch(start, end, 1.0))
        start = line.find(want, start + 1)
    return out
