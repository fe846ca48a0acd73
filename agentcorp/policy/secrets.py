"""Secrets out of band: the model sees ``${secrets.NAME}``, only the sandbox sees the value.

``SecretVault`` holds the declared secrets and their values (read from the environment once, at
the edge). ``Redactor`` scrubs those values from text, JSON and log records; ``blank_regions``
paints over the screen region of a field a secret was typed into, so no stored or model-bound
frame shows it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from secrets import token_urlsafe
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from agentcorp.errors import ConfigError
from agentcorp.policy.config import SecretSpec
from agentcorp.sandbox.base import Frame
from agentcorp.types import Box

__all__ = [
    "PLACEHOLDER_OPENER",
    "PLACEHOLDER_RE",
    "RedactingFilter",
    "Redactor",
    "SecretVault",
    "blank_regions",
    "placeholder",
]

#: The placeholder syntax. The name charset is as wide as the sandbox resolver's
#: (``agentcorp.sandbox.secrets``) so every name it would resolve is checked here first.
PLACEHOLDER_RE = re.compile(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_.\-]*)\}")
#: What starts a placeholder; any occurrence that is not a whole placeholder is refused.
PLACEHOLDER_OPENER = "${secrets."

MASK = "[REDACTED]"


def placeholder(name: str) -> str:
    """The placeholder text for secret ``name``."""
    return "${secrets." + name + "}"


class SecretVault:
    """Declared secrets and their values. ``repr`` and ``str`` never show a value."""

    def __init__(self, specs: Sequence[SecretSpec], values: Mapping[str, str]) -> None:
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"secrets.{dupes[0]}: declared twice")
        missing = [n for n in names if n not in values]
        if missing:
            raise ConfigError(f"secrets.{missing[0]}: no value provided")
        self._specs = {s.name: s for s in specs}
        self._values = {n: values[n] for n in names}
        self._generated: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, specs: Sequence[SecretSpec], environ: Mapping[str, str] | None = None
    ) -> SecretVault:
        """Read every declared secret from the environment.

        A missing value is a ``ConfigError``, unless the secret says ``if_missing: generate``:
        then it gets a fresh random value for this vault's lifetime (one run), which nothing
        prints; ``generated`` lists the names that got one.
        """
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        generated: list[str] = []
        for s in specs:
            value = env.get(s.env_var)
            if value is None or value == "":
                if s.if_missing != "generate":
                    raise ConfigError(
                        f"secrets.{s.name}: environment variable {s.env_var} is not set"
                    )
                # 24 random bytes: unguessable, and long enough that find_literal and the
                # redactors never confuse it with ordinary text.
                value = token_urlsafe(24)
                generated.append(s.name)
            values[s.name] = value
        vault = cls(specs, values)
        vault._generated = tuple(generated)
        return vault

    @property
    def generated(self) -> tuple[str, ...]:
        """Names whose value this vault generated because the environment had none."""
        return self._generated

    @property
    def names(self) -> tuple[str, ...]:
        """The declared secret names."""
        return tuple(self._specs)

    def spec(self, name: str) -> SecretSpec | None:
        """The declaration of ``name``, or None when it was never declared."""
        return self._specs.get(name)

    def value(self, name: str) -> str:
        """The value of ``name``: for sandbox backends only, at the moment of typing."""
        try:
            return self._values[name]
        except KeyError:
            raise ConfigError(f"secrets.{name}: not declared") from None

    def values(self) -> tuple[str, ...]:
        """Every value (for building a ``Redactor``)."""
        return tuple(self._values.values())

    def resolve(self, text: str) -> str:
        """``text`` with every placeholder replaced by its value; unknown names raise."""
        return PLACEHOLDER_RE.sub(lambda m: self.value(m.group(1)), text)

    def find_literal(self, text: str) -> str | None:
        """The name of a secret whose value occurs in ``text`` (plain or URL-decoded), if any.

        Values shorter than four characters only count when the whole text equals them, since
        a two-letter secret would otherwise match half of everything typed.
        """
        if not text:
            return None
        # The URL-decoded spelling too: "?q=s%65cret" must not slip past.
        candidates = {text, unquote_plus(text)}
        for name, value in self._values.items():
            for t in candidates:
                if (len(value) >= 4 and value in t) or t == value:
                    return name
        return None

    def redactor(self) -> Redactor:
        """A redactor for every value in this vault."""
        return Redactor(self.values())

    def __repr__(self) -> str:
        return f"SecretVault(names={list(self._specs)!r})"

    __str__ = __repr__


class Redactor:
    """Replaces secret values in text, JSON-like structures and log records with a mask.

    Besides each value as is, its URL-encoded and JSON-escaped spellings are masked too, since
    request bodies and URLs carry those forms.
    """

    def __init__(self, values: Iterable[str], mask: str = MASK) -> None:
        forms: set[str] = set()
        for v in values:
            if not v:
                continue
            forms.update({v, quote(v, safe=""), quote_plus(v), json.dumps(v)[1:-1]})
        self.mask = mask
        # Longest first so a value that contains another is masked whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._re is not None

    def redact_text(self, text: str) -> str:
        """``text`` with every secret masked."""
        if self._re is None or not text:
            return text
        return self._re.sub(self.mask, text)

    def redact_json(self, obj: Any) -> Any:
        """A deep copy of ``obj`` (dicts, lists, tuples, strings) with secrets masked, keys too."""
        if self._re is None:
            return obj
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, Mapping):
            return {
                (self.redact_text(k) if isinstance(k, str) else k): self.redact_json(v)
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.redact_json(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_json(v) for v in obj)
        if isinstance(obj, (bytes, bytearray)):
            return self.redact_bytes(bytes(obj))
        return obj

    def redact_bytes(self, data: bytes) -> bytes:
        """``data`` with UTF-8 spellings of every secret masked (binary blobs pass through)."""
        if self._re is None:
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        return self.redact_text(text).encode("utf-8")

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds any secret in any masked spelling."""
        return self._re is not None and self._re.search(text) is not None

    def filter(self) -> RedactingFilter:
        """A ``logging.Filter`` using this redactor."""
        return RedactingFilter(self)


class RedactingFilter(logging.Filter):
    """Redacts secrets from log records in place; attach it to *handlers*.

    Filters on a logger do not see records propagated from child loggers, so a handler is the
    one place every record passes. The message is formatted here (so a secret passed as an
    argument is caught) and the exception text is pre-rendered redacted.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._r = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the message, arguments, exception and stack text; keep the record."""
        if not self._r:
            return True
        record.msg = self._r.redact_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._r.redact_text(record.exc_text)
            # The formatter re-renders from exc_info only when exc_text is empty.
        if record.stack_info:
            record.stack_info = self._r.redact_text(record.stack_info)
        return True


def _clip(box: Box, frame: Frame, margin: int) -> tuple[int, int, int, int] | None:
    ox, oy = frame.origin
    x0 = max(0, box.x - ox - margin)
    y0 = max(0, box.y - oy - margin)
    x1 = min(frame.width, box.right - ox + margin)
    y1 = min(frame.height, box.bottom - oy + margin)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def blank_regions(
    frame: Frame,
    boxes: Iterable[Box],
    colour: tuple[int, int, int] = (0, 0, 0),
    margin: int = 2,
) -> Frame:
    """A copy of ``frame`` with each box (screen pixels) filled with a flat ``colour``.

    Boxes are in screen coordinates and shifted by the frame's ``origin``; ``margin`` grows
    each box a little so anti-aliased glyph edges and the caret go too. Blank the full-size
    frame *before* it is downscaled for the model or encoded for storage.
    """
    rects = [r for r in (_clip(b, frame, margin) for b in boxes) if r is not None]
    if not rects:
        return frame
    buf = bytearray(frame.rgb)
    stride = frame.width * 3
    fill = bytes(colour)
    for x0, y0, x1, y1 in rects:
        row = fill * (x1 - x0)
        for y in range(y0, y1):
            start = y * stride + x0 * 3
            buf[start : start + len(row)] = row
    return Frame(bytes(buf), frame.width, frame.height, frame.origin, frame.t)
