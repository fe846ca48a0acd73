"""``${secrets.NAME}`` placeholders: resolved only here, only at the moment of typing.

Specs, plans, model output and recordings carry the placeholder; the value exists only in the
sandbox's ``secrets`` mapping and in the keystrokes sent to the app. Errors name the secret,
never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agentcorp.errors import SandboxError

__all__ = ["has_placeholder", "resolve_secrets"]

_PLACEHOLDER = re.compile(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_.-]*)\}")
_OPENER = "${secrets."


def has_placeholder(text: str) -> bool:
    """Whether ``text`` holds any ``${secrets.…}`` placeholder (well-formed or not)."""
    return _OPENER in text


def resolve_secrets(text: str, secrets: Mapping[str, str], where: str = "typed text") -> str:
    """Replace every ``${secrets.NAME}`` in ``text`` with its value from ``secrets``.

    Raises ``SandboxError`` (one line, naming ``where`` and the secret, never a value) for an
    unknown name or a malformed placeholder.
    """
    if _OPENER not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in secrets:
            raise SandboxError(f"{where}: unknown secret {name!r} in ${{secrets.{name}}}")
        return secrets[name]

    out = _PLACEHOLDER.sub(sub, text)
    # A leftover opener means a placeholder we could not parse: typing it literally would
    # send a half-resolved string, so refuse instead.
    rest = _PLACEHOLDER.sub("", text)
    if _OPENER in rest:
        raise SandboxError(f"{where}: malformed secret placeholder (expected ${{secrets.NAME}})")
    return out
