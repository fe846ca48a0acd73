from __future__ import annotations

from agentcorp.policy import GateContext, PolicyConfig, PolicyGate, SecretSpec, SecretVault
from agentcorp.types import Action, Box

CTX = GateContext("t1", "clerk", "bo", "model")


class Backend:
    """A stand-in exposing only the optional read methods a real backend may have."""

    def __init__(
        self,
        cls: str | None = "Mousepad",
        field: tuple[Box, bool] | None = None,
        url: str | None = "http://localhost:8000/login",
        broken: bool = False,
    ):
        self.url = url
        self._cls, self._field, self._broken = cls, field, broken

    def window_class(self) -> str | None:
        if self._broken:
            raise RuntimeError("X connection lost")
        return self._cls

    def window_title(self) -> str | None:
        return "notes.txt - Mousepad"

    def focused_field(self) -> tuple[Box, bool] | None:
        return self._field


def test_window_class_is_read_from_the_backend_when_the_loop_gives_none() -> None:
    cfg = PolicyConfig(allow_apps=("gnumeric",))
    d = PolicyGate(cfg, computer=Backend()).check(Action("type", text="x"), CTX)
    assert (d.allowed, d.rule) == (False, "allow_apps")
    assert (
        PolicyGate(cfg, computer=Backend(cls="Gnumeric"))
        .check(Action("type", text="x"), CTX)
        .allowed
    )
    # the loop's own value wins over the probe
    assert (
        PolicyGate(cfg, computer=Backend())
        .check(
            Action("type", text="x"), GateContext("t1", "c", "s", "model", window_class="gnumeric")
        )
        .allowed
    )


def test_a_failing_window_probe_refuses() -> None:
    d = PolicyGate(PolicyConfig(allow_apps=("gnumeric",)), computer=Backend(broken=True)).check(
        Action("click", x=1, y=1), CTX
    )
    assert not d.allowed and "could not be read" in d.message


def test_focused_field_and_url_come_from_the_backend() -> None:
    vault = SecretVault([SecretSpec("PW", allow_domains=("localhost:8000",))], {"PW": "v4lue!!"})
    box = Box(10, 20, 200, 30)
    gate = PolicyGate(PolicyConfig(), vault, computer=Backend(field=(box, True)))
    assert gate.check(Action("type", text="${secrets.PW}"), CTX).allowed
    assert gate.secret_regions("t1") == (box,)
    plain = PolicyGate(PolicyConfig(), vault, computer=Backend(field=(box, False)))
    assert plain.check(Action("type", text="${secrets.PW}"), CTX).rule == "secrets:field"
    elsewhere = PolicyGate(
        PolicyConfig(), vault, computer=Backend(field=(box, True), url="https://evil.example/")
    )
    assert elsewhere.check(Action("type", text="${secrets.PW}"), CTX).rule == "secrets:domain"


def test_a_backend_without_the_methods_adds_nothing() -> None:
    gate = PolicyGate(PolicyConfig(allow_apps=("gnumeric",)), computer=object())
    assert gate.check(Action("type", text="x"), CTX).allowed  # no window known: browser-like
