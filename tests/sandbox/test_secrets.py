from __future__ import annotations

import pytest

from agentcorp.errors import SandboxError
from agentcorp.sandbox.secrets import has_placeholder, resolve_secrets


def test_resolves_every_placeholder() -> None:
    out = resolve_secrets("u=${secrets.user} p=${secrets.pw}!", {"user": "ann", "pw": "x$y"})
    assert out == "u=ann p=x$y!"
    assert resolve_secrets("plain $text {x}", {}) == "plain $text {x}"


def test_unknown_secret_names_the_secret_not_the_values() -> None:
    with pytest.raises(SandboxError) as info:
        resolve_secrets("${secrets.nope}", {"pw": "hunter2"}, where="typed text")
    msg = str(info.value)
    assert "nope" in msg and "hunter2" not in msg and "\n" not in msg
    assert msg.startswith("typed text:")


@pytest.mark.parametrize("bad", ["${secrets.}", "${secrets.pw", "${secrets.p w}", "${secrets.9x}"])
def test_malformed_placeholders_are_refused(bad: str) -> None:
    assert has_placeholder(bad)
    with pytest.raises(SandboxError, match="secret"):
        resolve_secrets(bad, {"pw": "v", "p w": "v", "9x": "v"})
