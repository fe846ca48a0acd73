"""The loop's safety seams: frames leave it blanked, and done/fail summaries pass the gate.

A FakeComputer that resolves ``${secrets.NAME}`` at typing time (as real backends do) shows
the value in a plain-looking field; the real ``PolicyGate`` remembers that field's box and the
loop must blank it in every frame sent to the model and yielded for the recorder.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

from agentcorp.actor import Actor, ActorConfig, EpisodeResult, EpisodeTask
from agentcorp.policy import PolicyConfig, PolicyGate, SecretSpec, SecretVault
from agentcorp.policy.base import ActionGate, AllowAll
from agentcorp.testing.drive import drive as _drive
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import Box, ObservationStep, PolicyStep, Step

VALUE = "Zq7-Walrus-Lamp-4410"
FIELD = Box(200, 150, 520, 48)


class SecretDesk(FakeComputer):
    """Resolves placeholders when typing and reports the focused field, like a browser."""

    def __init__(self, vault: SecretVault) -> None:
        super().__init__(
            [
                Widget("lbl", "label", Box(40, 150, 150, 48), "Password"),
                Widget("pw", "field", FIELD, "Password"),
            ],
            size=(1024, 640),
            font_size=26,
        )
        self.vault = vault

    def type(self, text: str) -> None:
        super().type(self.vault.resolve(text))

    def focused_field(self) -> tuple[Box, bool] | None:
        return (self.focused.box, True) if self.focused is not None else None


def _vault() -> SecretVault:
    return SecretVault([SecretSpec("PW", allow_fields=("Password",))], {"PW": VALUE})


def _run(
    gate: ActionGate, replies: list[Any]
) -> tuple[list[Step], EpisodeResult, ScriptedLLM, SecretDesk]:
    desk = SecretDesk(_vault())
    llm = ScriptedLLM(replies)
    actor = Actor(
        desk,
        gate=gate,
        model=llm,
        grounder=desk.widget_grounder(),
        config=ActorConfig(model="m", find_timeout=0.0),
    )
    steps, result = _drive(actor.run(EpisodeTask("t1", "log in", role="r", sandbox="s")))
    return steps, result, llm, desk


def _last_image(llm: ScriptedLLM) -> Image.Image:
    urls = [
        part["image_url"]["url"]
        for m in llm.calls[-1].messages
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if part.get("type") == "image_url"
    ]
    data = base64.b64decode(urls[-1].split(",", 1)[1])
    return Image.open(io.BytesIO(data)).convert("RGB")


def _dark_share(img: Image.Image, box: Box) -> float:
    """Share of near-black pixels inside ``box`` (1.0: blanked; a white field: ~0)."""
    crop = img.crop((box.x + 4, box.y + 4, box.right - 4, box.bottom - 4)).convert("L")
    hist = crop.histogram()
    return sum(hist[:40]) / sum(hist)


LOGIN = [
    tool_reply("click", x=FIELD.center[0], y=FIELD.center[1]),
    tool_reply("type", text="${secrets.PW}"),
    tool_reply("done", summary="typed the password"),
]


def test_model_and_recorder_get_the_secret_field_blanked() -> None:
    gate = PolicyGate(PolicyConfig(), _vault())
    steps, result, llm, desk = _run(gate, list(LOGIN))
    assert result.status == "done", result
    assert desk.widget("pw").value == VALUE  # the sandbox really holds the value
    raw = desk.screenshot().pil()
    assert _dark_share(raw, FIELD) < 0.5  # and shows it on screen, unblanked
    # The image the model got with its last request: the field is blanked.
    assert _dark_share(_last_image(llm), FIELD) > 0.95
    # The step records (what a recorder stores) carry the blanked frame too.
    obs = [s for s in steps if isinstance(s, ObservationStep)]
    after = obs[-1]
    assert after.frame is not None and _dark_share(after.frame.pil(), FIELD) == 1.0
    assert after.frame_sha256 == after.frame.sha256 != desk.screenshot().sha256
    assert _dark_share(Image.open(io.BytesIO(after.image or b"")).convert("RGB"), FIELD) > 0.95
    # Frames from before the typing are untouched (nothing to hide yet).
    assert _dark_share(obs[0].frame.pil(), FIELD) == 0.0  # type: ignore[union-attr]


def test_without_redaction_the_model_would_see_the_field() -> None:
    # The control: a gate that hides nothing leaves the typed text in the model's image,
    # so the blanking asserted above is the gate's doing, not an artefact of the fake.
    _, result, llm, _ = _run(AllowAll(), list(LOGIN))
    assert result.status == "done"
    assert _dark_share(_last_image(llm), FIELD) < 0.5


def test_done_summary_with_a_secret_value_is_refused_and_retold() -> None:
    gate = PolicyGate(PolicyConfig(), _vault())
    steps, result, llm, _ = _run(
        gate,
        [
            tool_reply("done", summary=f"the password is {VALUE}"),
            tool_reply("done", summary="logged in"),
        ],
    )
    assert (result.status, result.summary) == ("done", "logged in")
    pol = [s for s in steps if isinstance(s, PolicyStep)]
    assert [(p.decision, p.rule) for p in pol] == [("denied", "secrets:literal"), ("allowed", None)]
    told = llm.calls[1].messages[-1]
    assert told["role"] == "tool" and "done refused" in told["content"]


def test_fail_reason_with_forbidden_text_is_refused_until_the_model_gives_up() -> None:
    gate = PolicyGate(PolicyConfig(forbid_text=(r"(?i)drop\s+table",)), _vault())
    _, result, llm, _ = _run(gate, [tool_reply("fail", reason="run DROP TABLE users")] * 3)
    assert result.status == "failed" and "unusable replies" in result.reason
    assert "forbid_text" in result.reason and len(llm.calls) == 3
