"""A typed secret is visible on a plain-text field until the gate's frame redaction blanks it;
checked with real OCR on the full frame and on the downscaled JPEG a model would get."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from agentcorp.policy import GateContext, PolicyConfig, PolicyGate, SecretSpec, SecretVault
from agentcorp.sandbox.base import Frame
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.types import Action, Box

VALUE = "Zq7-Walrus-Lamp-4410"


@pytest.fixture(scope="module")
def ocr() -> object:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def _read(ocr: object, img: Image.Image) -> str:
    result, _ = ocr(np.asarray(img.convert("RGB")))  # type: ignore[operator]
    return " ".join(r[1] for r in result or [])


def _jpeg_for_model(frame: Frame) -> Image.Image:
    small = frame.pil().resize((frame.width * 3 // 4, frame.height * 3 // 4))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=75)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.mark.slow
def test_typed_secret_is_blanked_in_frames(ocr: object) -> None:
    field = Widget("pw", "field", Box(200, 150, 520, 48), "Password")
    fc = FakeComputer(
        [Widget("lbl", "label", Box(40, 150, 150, 48), "Password"), field],
        size=(800, 300),
        font_size=26,
    )
    vault = SecretVault([SecretSpec("BO_PW", allow_fields=("Password",))], {"BO_PW": VALUE})
    gate = PolicyGate(PolicyConfig(), vault)
    ctx = GateContext("t1", "clerk", "desk", "script", field_box=field.box, field_label="Password")
    action = Action("type", text="${secrets.BO_PW}", into="Password")
    assert gate.check(action, ctx).allowed
    fc.focused = field
    fc.type(vault.resolve(action.text or ""))  # what a sandbox does at typing time
    raw = fc.screenshot()
    assert VALUE.replace("-", "") in _read(ocr, raw.pil()).replace("-", "").replace(" ", "")
    safe = gate.redact_frame(raw, "t1")
    for img in (safe.pil(), _jpeg_for_model(safe)):
        text = _read(ocr, img)
        assert "Walrus" not in text and "4410" not in text and "Lamp" not in text
        assert "Password" in text  # the label beside the field is still readable
