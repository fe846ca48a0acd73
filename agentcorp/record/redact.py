"""Redaction applied before anything reaches disk: secret values, API keys, auth headers.

The redactor walks every string of an event or request body. Declared secret values are
replaced by ``[REDACTED]``; strings that look like provider API keys (``xai-…``, ``sk-…``) and
``Bearer``/``Basic`` credentials are replaced too, and the value of any mapping key that names a
credential (``Authorization``, ``api_key``, ``x-api-key``, ``password``, ``token``) is replaced
whole. Redaction is idempotent, so a replayed session redacts to the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

_KEY_PATTERNS = re.compile(
    r"(?:\bxai-[A-Za-z0-9_\-]{12,}|\bsk-[A-Za-z0-9_\-]{12,}"
    r"|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{8,})"
)
_CREDENTIAL_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api_key",
        "api-key",
        "apikey",
        "x-api-key",
        "password",
        "token",
        "access_token",
        "secret",
    }
)


class Redactor:
    """Replaces secrets in strings and nested JSON values.

    ``secrets`` are literal values (the spec's declared secrets, resolved); empty values are
    ignored. Longer secrets are replaced first so a secret containing another is fully hidden.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.secrets: tuple[str, ...] = tuple(values)
        self._literal = re.compile("|".join(re.escape(s) for s in values)) if values else None
        # The same strings (system prompt, earlier turns) recur in every request body.
        self._memo: dict[str, str] = {}

    def text(self, value: str) -> str:
        """``value`` with every secret, key and credential replaced."""
        hit = self._memo.get(value)
        if hit is not None:
            return hit
        out = self._text(value)
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[value] = out
        return out

    def _text(self, value: str) -> str:
        # Key patterns first: a short declared secret must not break up a bearer token.
        value = _KEY_PATTERNS.sub(REDACTED, value)
        if self._literal is not None:
            value = self._literal.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        """A redacted copy of a JSON-like value (dicts, lists, tuples, strings, scalars)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if isinstance(k, str) and k.lower() in _CREDENTIAL_KEYS and v not in (None, ""):
                    out[k] = REDACTED
                else:
                    out[k] = self.value(v)
            return out
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def contains_secret(self, value: str) -> bool:
        """Whether ``value`` holds a declared secret or a ``${secrets.…}`` placeholder."""
        if "${secrets." in value:
            return True
        return self._literal is not None and self._literal.search(value) is not None
