"""What a model can take, found before a run: whether the actor model sees images.

The actor works from screenshots, so a text-only actor model cannot do anything useful; worse,
some servers accept the image and let the model "answer" a picture it never saw. So before a
run, ``check_vision`` decides, first of these that knows:

1. a declared ``vision: true/false`` (config or spec);
2. the vendor's published lineup, for the xAI and OpenAI presets only (a name on another
   server may be anything);
3. the server's model metadata (``GET /models`` fields such as ``input_modalities``,
   ``architecture.input_modalities``, ``capabilities``, ``vision``);
4. a probe: one small request with a picture of a two-digit number, asking for the number. A
   model that reads it takes images; one that does not (or a server that refuses the image) is
   text-only. The number is random per probe, so a guess passes 1 time in 90.

A text-only actor model is refused with ``VisionUnsupported`` (exit 3), one line naming the
model and how that was found. The verdict is remembered per endpoint and model for the run.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageDraw

from agentcorp.errors import LLMError, LLMUnavailable, RealRequestBlocked
from agentcorp.llm.client import OpenAIClient
from agentcorp.llm.messages import user_message
from agentcorp.llm.retry import RequestRejected
from agentcorp.types import ChatRequest

__all__ = [
    "VisionUnsupported",
    "VisionVerdict",
    "check_vision",
    "digits_image",
    "read_digits_image",
    "vision_from_metadata",
]

How = Literal["declared", "vendor lineup", "server metadata", "probe"]

# The presets' published lineups (docs/models.md). Text-only names first: they are more
# specific than the vision families they would otherwise match.
_TEXT_ONLY = {"xai": ("grok-code-", "grok-3"), "openai": ("gpt-3.5", "o1-mini", "o3-mini")}
_VISION = {"xai": ("grok-4", "grok-2-vision"), "openai": ("gpt-4o", "gpt-4.1", "gpt-5", "o3", "o4")}

# Seven-segment layout: which of the segments a, b, c, d, e, f, g each digit lights.
_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


class VisionUnsupported(LLMUnavailable):
    """The actor model does not take images: the run cannot work (exit 3)."""


@dataclass(frozen=True, slots=True)
class VisionVerdict:
    """Whether a model takes images, how that was found, and the evidence in a few words."""

    takes_images: bool
    how: How
    detail: str


def vision_from_metadata(entry: Mapping[str, Any]) -> bool | None:
    """Whether a ``GET /models`` entry says the model takes images; None when it does not say."""
    found: list[bool] = []
    for key in ("input_modalities", "modalities"):
        _modalities(entry.get(key), found)
    arch = entry.get("architecture")
    if isinstance(arch, Mapping):
        _modalities(arch.get("input_modalities"), found)
        modality = arch.get("modality")
        if isinstance(modality, str) and "->" in modality:
            found.append("image" in modality.split("->")[0])
    caps = entry.get("capabilities")
    if isinstance(caps, Mapping) and isinstance(caps.get("vision"), bool):
        found.append(caps["vision"])
    elif isinstance(caps, Sequence) and not isinstance(caps, str) and caps:
        found.append(any(str(c).lower() in ("vision", "image", "images") for c in caps))
    if isinstance(entry.get("vision"), bool):
        found.append(entry["vision"])
    return found[0] if found else None


def _modalities(value: Any, found: list[bool]) -> None:
    if isinstance(value, Mapping):
        value = value.get("input")
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        found.append(any(str(v).lower() in ("image", "images", "vision") for v in value))


def _segment_boxes(i: int, scale: int) -> dict[str, tuple[int, int, int, int]]:
    """Where digit ``i``'s seven segments are drawn (the one layout, drawn and read)."""
    w, h, t, gap = 10 * scale, 18 * scale, 2 * scale, 4 * scale  # box, stroke, margin
    x0, y0 = gap + i * (w + gap), gap
    mid = y0 + h // 2
    return {
        "a": (x0, y0, x0 + w, y0 + t),
        "b": (x0 + w - t, y0, x0 + w, mid),
        "c": (x0 + w - t, mid, x0 + w, y0 + h),
        "d": (x0, y0 + h - t, x0 + w, y0 + h),
        "e": (x0, mid, x0 + t, y0 + h),
        "f": (x0, y0, x0 + t, mid),
        "g": (x0, mid - t // 2, x0 + w, mid + t // 2),
    }


def digits_image(number: int, *, scale: int = 6) -> bytes:
    """A PNG of ``number`` in large black seven-segment digits on white (no font needed)."""
    text = str(number)
    img = Image.new("RGB", (len(text) * 14 * scale + 4 * scale, 26 * scale), "white")
    draw = ImageDraw.Draw(img)
    for i, ch in enumerate(text):
        boxes = _segment_boxes(i, scale)
        for seg in _SEGMENTS[ch]:
            draw.rectangle(boxes[seg], fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def read_digits_image(png: bytes) -> str | None:
    """The number in a ``digits_image`` picture, or None if it is not one.

    What a model that sees the probe reads; the fake OpenAI server uses it to act as a vision
    model, so a run's vision check works against it without scripting.
    """
    try:
        img = Image.open(io.BytesIO(png)).convert("L")
    except (OSError, ValueError):
        return None
    scale = img.height // 26
    if scale < 1 or img.height != 26 * scale or (img.width - 4 * scale) % (14 * scale):
        return None
    lit_to_digit = {frozenset(v): k for k, v in _SEGMENTS.items()}
    out = []
    for i in range((img.width - 4 * scale) // (14 * scale)):
        lit = frozenset(
            seg
            for seg, (x0, y0, x1, y1) in _segment_boxes(i, scale).items()
            if int(img.getpixel(((x0 + x1) // 2, (y0 + y1) // 2))) < 128  # type: ignore[arg-type]
        )
        digit = lit_to_digit.get(lit)
        if digit is None:
            return None
        out.append(digit)
    return "".join(out) or None


def check_vision(
    client: OpenAIClient,
    model: str,
    *,
    declared: bool | None = None,
    probe: bool = True,
    number: int | None = None,
) -> VisionVerdict:
    """Decide whether ``model`` at ``client``'s endpoint takes images; refuse it if not.

    Raises ``VisionUnsupported`` (exit 3, one line naming the model and the evidence) for a
    text-only model; an endpoint that cannot be reached raises ``LLMUnavailable`` as any call.
    ``probe=False`` skips the probe (then an unknown model passes). ``number`` fixes the
    probe's number (tests); by default it is random.
    """
    memo: dict[tuple[str, str], VisionVerdict] = client.notes.setdefault("vision", {})
    key = (client.endpoint, model)
    verdict = memo.get(key)
    if verdict is None:
        verdict = _decide(client, model, declared, probe, number)
        memo[key] = verdict
    if not verdict.takes_images:
        raise VisionUnsupported(
            f"actor model {model!r} at {client.endpoint} does not take images "
            f"({verdict.how}: {verdict.detail}); the actor works from screenshots: choose a "
            "vision model (--actor-model), or declare vision: true if this is wrong"
        )
    return verdict


def _decide(
    client: OpenAIClient,
    model: str,
    declared: bool | None,
    probe: bool,
    number: int | None,
) -> VisionVerdict:
    if declared is not None:
        return VisionVerdict(declared, "declared", f"vision: {str(declared).lower()}")
    lineup = _from_lineup(client.provider.name, model)
    if lineup is not None:
        return VisionVerdict(lineup, "vendor lineup", f"{client.provider.name} model {model}")
    meta = _from_metadata(client, model)
    if meta is not None:
        return VisionVerdict(meta, "server metadata", f"GET /models entry of {model}")
    if not probe:
        return VisionVerdict(True, "declared", "not checked (probe off)")
    return _probe(client, model, number if number is not None else random.randint(10, 99))


def _from_lineup(provider: str, model: str) -> bool | None:
    if model.startswith(_TEXT_ONLY.get(provider, ())):
        return False
    if model.startswith(_VISION.get(provider, ())):
        return True
    return None


def _from_metadata(client: OpenAIClient, model: str) -> bool | None:
    try:
        entries = client.model_entries()
    except RealRequestBlocked:
        raise
    except (LLMError, LLMUnavailable):
        # No usable /models here (many servers lack it): the probe will tell, and a server
        # that cannot be reached or refuses the key fails that call with its own message.
        return None
    for entry in entries:
        if entry.get("id") == model:
            return vision_from_metadata(entry)
    return None


def _probe(client: OpenAIClient, model: str, number: int) -> VisionVerdict:
    request = ChatRequest(
        model=model,
        messages=[
            user_message(
                "What number is written in this image? Reply with the digits only.",
                [digits_image(number)],
            )
        ],
        max_tokens=16,
        temperature=0.0,
        purpose="probe",
    )
    try:
        reply = client.complete(request)
    except RequestRejected as exc:
        return VisionVerdict(False, "probe", f"the server refused an image: {exc.detail}"[:160])
    answer = " ".join((reply.content or "").split())[:40]
    if str(number) in re.findall(r"\d+", answer):
        return VisionVerdict(True, "probe", f"read {number} from a picture")
    return VisionVerdict(
        False, "probe", f"asked for the number {number} in a picture, it answered {answer!r}"
    )
