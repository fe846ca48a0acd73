from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from agentcorp.record.episode import loop_runner
from agentcorp.record.recorder import SessionRecorder
from agentcorp.record.redact import REDACTED, Redactor
from agentcorp.record.replay import decision_replay
from agentcorp.record.session import open_session
from agentcorp.types import ActionStep, ErrorStep, ModelCallStep, Usage
from tests.record._app import FIELD, SECRET, model_script, record

XAI_KEY = "xai-" + "A1b2C3d4" * 6
SK_KEY = "sk-proj-" + "Z9y8X7w6" * 5


def _all_bytes(folder: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()]


def test_redactor_patterns() -> None:
    r = Redactor([SECRET, "abc"])
    got = r.text(f"pw={SECRET}; k={XAI_KEY}; o={SK_KEY}")
    assert got == f"pw={REDACTED}; k={REDACTED}; o={REDACTED}"
    assert r.text("Authorization: Bearer abcdefgh.ijk-123") == f"Authorization: {REDACTED}"
    assert r.value({"headers": {"Authorization": "whatever", "X-Api-Key": "k"}, "n": 3}) == {
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED},
        "n": 3,
    }
    assert r.value(["abcabc", ("xabc",)]) == [REDACTED * 2, ["x" + REDACTED]]
    assert r.text(r.text(f"{SECRET}")) == REDACTED  # idempotent
    assert r.contains_secret("${secrets.PW}") and r.contains_secret(SECRET)
    assert not r.contains_secret("plain")
    assert Redactor([""]).text("unchanged") == "unchanged"


def test_typed_secret_appears_in_no_file_of_the_session(tmp_path: Path) -> None:
    rec = record(tmp_path / "s", tmp_path / "home", script=model_script(text=SECRET))
    # the app really showed and saved the secret, so there was something to leak
    assert (tmp_path / "home" / "form.txt").read_text() == SECRET
    needles = [SECRET.encode(), base64.b64encode(SECRET.encode()), SECRET.encode("utf-16-le")]
    for path, data in _all_bytes(rec.folder):
        for needle in needles:
            assert needle not in data, f"{needle!r} in {path}"

    s = open_session(rec.folder)
    typed = next(
        i
        for i, e in enumerate(s.events)
        if isinstance(e.step, ActionStep) and e.step.action.kind == "type"
    )
    after = [e for e in s.observations if e.line > s.events[typed].line]
    assert after
    before = s.observation_frame(
        s.observations[
            [e.line for e in s.observations].index(
                max(e.line for e in s.observations if e.line < s.events[typed].line)
            )
        ]
    )
    assert before is not None
    box = (FIELD.x, FIELD.y, FIELD.right, FIELD.bottom)
    # where the typed text is drawn (the field's first ~160 px), as the model saw it
    text_area = (FIELD.x + 8, FIELD.y + 12, FIELD.x + 160, FIELD.bottom - 12)
    for ev in after:
        frame = s.observation_frame(ev)
        assert frame is not None
        # inside the field, every pixel is either as before the typing or blanked black
        now, then = frame.pil().crop(box), before.pil().crop(box)
        a, b = np.asarray(now), np.asarray(then)
        ok = (a == b).all(axis=2) | (a == 0).all(axis=2)
        assert ok.all(), "typed text visible in a stored frame"
        assert now.crop((8, 12, 160, 28)).getextrema() == ((0, 0), (0, 0), (0, 0))
        image = s.observation_image(ev)
        assert image is not None
        with Image.open(io.BytesIO(image)) as img:
            k = img.width / 1280
            inner = img.convert("L").crop(tuple(int(v * k) for v in text_area))
            assert inner.getextrema()[1] < 60, "typed text visible in a stored model image"
    # every image inlined in every stored request body is one of the blanked ones or predates
    # the typing
    allowed = {e.refs["image"] for e in s.observations}
    for e in s.events:
        if isinstance(e.step, ModelCallStep):
            body = s.request_body(e)
            text = str(body)
            for part in text.split("blob:sha256:")[1:]:
                assert part[:64] in allowed
    # and the redacted recording still replays
    report = decision_replay(s, loop_runner(s))
    assert report.ok, report.summary()


def test_keys_and_auth_headers_never_reach_disk(tmp_path: Path) -> None:
    rec = SessionRecorder(
        tmp_path / "s",
        task_id="t",
        spec_hash="h",
        sandbox_info={"env": {"XAI_API_KEY": XAI_KEY}},
        models={"actor": "grok", "api_key": SK_KEY},
        secrets=["p@ss-w0rd"],
    )
    body = {
        "model": "grok",
        "messages": [{"role": "user", "content": f"use {XAI_KEY} p@ss-w0rd"}],
        "extra_headers": {"Authorization": f"Bearer {SK_KEY}"},
    }
    rec.write(
        ModelCallStep(
            1,
            0.0,
            "act",
            "grok",
            "x",
            body,
            {"content": f"ok {SK_KEY}", "tool_calls": []},
            Usage(),
            1.0,
        )
    )
    rec.write(
        ErrorStep(
            1, 0.0, "LLMError", f"401 for key {XAI_KEY} Authorization: Basic dXNlcjpwYXNzd29yZA=="
        )
    )
    rec.add_final_file("~/notes.txt", b"the password is p@ss-w0rd")
    rec.finish({"status": "fail", "reason": f"bad key {XAI_KEY}"})
    for path, data in _all_bytes(tmp_path / "s"):
        for needle in (XAI_KEY, SK_KEY, "p@ss-w0rd", "dXNlcjpwYXNzd29yZA=="):
            assert needle.encode() not in data, f"{needle} in {path}"
    s = open_session(tmp_path / "s")
    assert s.complete
    stored = s.request_body(s.events[0])
    assert stored["extra_headers"]["Authorization"] == REDACTED
    assert REDACTED in stored["messages"][0]["content"]
