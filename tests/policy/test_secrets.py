from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from agentcorp.errors import ConfigError
from agentcorp.policy.config import SecretSpec
from agentcorp.policy.secrets import Redactor, SecretVault, blank_regions, placeholder
from agentcorp.sandbox.base import Frame
from agentcorp.types import Box

VALUE = "S3cr3t p@ss/w0rd&x=1"


def _vault() -> SecretVault:
    return SecretVault.from_env(
        [SecretSpec("BO_PW", allow_domains=("localhost:*",)), SecretSpec("TOKEN", env="TOK_VAR")],
        {"BO_PW": VALUE, "TOK_VAR": "tok-abcdef123456"},
    )


def test_vault_reads_env_and_resolves_placeholders() -> None:
    v = _vault()
    assert v.names == ("BO_PW", "TOKEN")
    assert v.resolve(f"u {placeholder('BO_PW')} / ${{secrets.TOKEN}}") == (
        f"u {VALUE} / tok-abcdef123456"
    )
    assert VALUE not in repr(v) and VALUE not in str(v)


def test_vault_missing_env_is_one_line_naming_secret_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        SecretVault.from_env([SecretSpec("BO_PW")], {})
    assert str(info.value) == "secrets.BO_PW: environment variable BO_PW is not set"


def test_vault_generates_a_fresh_value_only_when_asked_and_unset() -> None:
    specs = [SecretSpec("BO_PW", if_missing="generate"), SecretSpec("TOKEN")]
    a = SecretVault.from_env(specs, {"TOKEN": "tok-abcdef123456"})
    b = SecretVault.from_env(specs, {"TOKEN": "tok-abcdef123456"})
    assert a.generated == ("BO_PW",) and a.value("TOKEN") == "tok-abcdef123456"
    assert a.value("BO_PW") != b.value("BO_PW")  # fresh per run, never a fixed default
    assert len(a.value("BO_PW")) >= 24 and a.value("BO_PW") not in repr(a)
    # A value in the environment always wins; nothing is generated then.
    c = SecretVault.from_env(specs, {"BO_PW": "from-env-1", "TOKEN": "t" * 8})
    assert c.value("BO_PW") == "from-env-1" and c.generated == ()
    # if_missing only covers the secret that says so.
    with pytest.raises(ConfigError, match="environment variable TOKEN is not set"):
        SecretVault.from_env(specs, {})


@pytest.mark.parametrize("bad", ["invent", "", 3])
def test_if_missing_garbage_is_one_line(bad: object) -> None:
    from agentcorp.policy.config import secrets_from_spec

    with pytest.raises(ConfigError) as info:
        secrets_from_spec([{"name": "BO_PW", "if_missing": bad}])
    assert str(info.value).startswith("secrets.BO_PW.if_missing: must be error or generate")
    assert "\n" not in str(info.value)
    [spec] = secrets_from_spec([{"name": "BO_PW", "if_missing": "generate"}])
    assert spec.if_missing == "generate"


def test_vault_unknown_name_in_resolve_names_it_not_a_value() -> None:
    with pytest.raises(ConfigError, match=r"secrets\.NOPE: not declared"):
        _vault().resolve("${secrets.NOPE}")


def test_find_literal_sees_plain_and_url_encoded_values() -> None:
    v = _vault()
    assert v.find_literal(f"hello {VALUE}") == "BO_PW"
    assert v.find_literal("https://x.test/?q=S3cr3t+p%40ss%2Fw0rd%26x%3D1") == "BO_PW"
    assert v.find_literal("nothing here") is None
    short = SecretVault([SecretSpec("PIN")], {"PIN": "42"})
    assert short.find_literal("42") == "PIN"
    assert short.find_literal("order 4242") is None


def test_redactor_masks_text_url_and_json_escaped_forms() -> None:
    r = _vault().redactor()
    body = json.dumps({"typed": VALUE, VALUE: [VALUE, ("t", "tok-abcdef123456")]})
    assert VALUE not in r.redact_text(body) and "tok-abcdef" not in r.redact_text(body)
    assert r.redact_text("q=S3cr3t%20p%40ss%2Fw0rd%26x%3D1") == "q=[REDACTED]"
    deep = r.redact_json({"a": [{"b": f"x{VALUE}y"}], VALUE: 1, "n": 3, "raw": VALUE.encode()})
    assert deep == {"a": [{"b": "x[REDACTED]y"}], "[REDACTED]": 1, "n": 3, "raw": b"[REDACTED]"}
    assert r.contains_secret(f"..{VALUE}..")
    assert not Redactor([]) and Redactor([]).redact_text(VALUE) == VALUE


def test_logging_filter_redacts_message_args_and_traceback(tmp_path: Path) -> None:
    r = _vault().redactor()
    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    handler.addFilter(r.filter())
    logger = logging.getLogger("agentcorp.test.secrets")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    child = logging.getLogger("agentcorp.test.secrets.child")
    try:
        logger.info("typed %s into the box", VALUE)
        child.warning(f"direct {VALUE}")
        try:
            raise RuntimeError(f"boom {VALUE}")
        except RuntimeError:
            logger.exception("failed with %r", {"pw": VALUE})
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert VALUE not in text
    assert text.count("[REDACTED]") == 4
    assert "RuntimeError: boom [REDACTED]" in text


def _text_frame() -> Frame:
    img = Image.new("RGB", (200, 60), (255, 255, 255))
    ImageDraw.Draw(img).text((20, 20), "hunter2", fill=(0, 0, 0))
    return Frame.from_pil(img, origin=(100, 50))


def test_blank_regions_fills_screen_boxes_shifted_by_origin() -> None:
    frame = _text_frame()
    # Screen coordinates: the frame starts at (100, 50).
    out = blank_regions(frame, [Box(110, 60, 100, 30)], colour=(10, 20, 30), margin=0)
    img = out.pil()
    assert {img.getpixel((x, y)) for x in range(10, 110) for y in range(10, 40)} == {(10, 20, 30)}
    assert img.getpixel((150, 50)) == (255, 255, 255)
    assert out.size == frame.size and out.origin == frame.origin
    assert out.sha256 != frame.sha256
    # The original is untouched; boxes off the frame change nothing.
    orig = frame.pil()
    assert min(orig.getpixel((x, y))[0] for x in range(20, 80) for y in range(20, 35)) < 64
    assert blank_regions(frame, [Box(0, 0, 50, 40)]) is frame


def test_blank_regions_clips_to_the_frame() -> None:
    frame = _text_frame()
    out = blank_regions(frame, [Box(250, 90, 500, 500)], margin=0)
    img = out.pil()
    assert img.getpixel((199, 59)) == (0, 0, 0)
    assert img.getpixel((149, 39)) == (255, 255, 255)
