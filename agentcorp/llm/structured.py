"""Structured output that works on any OpenAI-compatible server: negotiate, remember, extract.

Servers differ in what they accept for ``response_format``: OpenAI and xAI take ``json_schema``;
llama.cpp's Python server rejects it (HTTP 500) but takes ``json_object``; some servers drop the
field without a word. So a caller asking for JSON tries, in order:

1. ``json_schema`` — the schema as ``response_format``;
2. ``json_object`` — ``{"type": "json_object"}`` with the schema in the system prompt;
3. ``prompt`` — no ``response_format``, the schema in the prompt, and strict extraction of the
   one JSON object from the reply.

A mode is given up when the server refuses the request (``RequestRejected``) or, for the first
two, when its reply is not JSON at all (the server dropped the field). The first mode that
works is remembered per endpoint and model for the run (``OutputModes``, kept in the client's
``notes`` so every task of a run shares it), and each fallback is logged once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal

from agentcorp.types import ChatModel

__all__ = [
    "MODES",
    "JsonNotFound",
    "OutputMode",
    "OutputModes",
    "extract_json",
    "output_modes",
    "shape_request",
]

OutputMode = Literal["json_schema", "json_object", "prompt"]
MODES: tuple[OutputMode, ...] = ("json_schema", "json_object", "prompt")

log = logging.getLogger("agentcorp.llm.structured")

_SCHEMA_NOTE = (
    "Reply with exactly one JSON object and nothing else (no prose, no code fences) that "
    "validates against this JSON Schema:\n"
)


class JsonNotFound(ValueError):
    """A reply holds no single JSON object; the message says why in one line."""


class OutputModes:
    """Which structured-output mode works, per (endpoint, model), for one run. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed: dict[tuple[str, str], set[OutputMode]] = {}
        self._working: dict[tuple[str, str], OutputMode] = {}
        self._logged: set[tuple[str, str, OutputMode]] = set()

    def candidates(self, endpoint: str, model: str) -> list[OutputMode]:
        """The modes still worth trying, best first (the one known to work, if any, first)."""
        key = (endpoint, model)
        with self._lock:
            working = self._working.get(key)
            failed = self._failed.get(key, set())
            modes = [m for m in MODES if m not in failed]
        if working in modes:
            modes.remove(working)  # type: ignore[arg-type]
            modes.insert(0, working)  # type: ignore[arg-type]
        return modes

    def works(self, endpoint: str, model: str, mode: OutputMode) -> None:
        """Remember that ``mode`` gave usable JSON."""
        with self._lock:
            self._working[(endpoint, model)] = mode

    def fails(self, endpoint: str, model: str, mode: OutputMode, why: str) -> None:
        """Give ``mode`` up for this endpoint and model; log it once per run."""
        key = (endpoint, model)
        with self._lock:
            self._failed.setdefault(key, set()).add(mode)
            if self._working.get(key) == mode:
                del self._working[key]
            first = (endpoint, model, mode) not in self._logged
            self._logged.add((endpoint, model, mode))
        if first:
            nxt = next((m for m in MODES[MODES.index(mode) + 1 :]), None)
            then = f"falling back to {_describe(nxt)}" if nxt else "no structured mode left"
            log.warning(
                "%s, model %s: structured output %s did not work (%s); %s",
                endpoint or "model",
                model,
                mode,
                why,
                then,
            )

    def working(self, endpoint: str, model: str) -> OutputMode | None:
        """The mode known to work, if any."""
        with self._lock:
            return self._working.get((endpoint, model))


def _describe(mode: OutputMode) -> str:
    return {
        "json_schema": "json_schema",
        "json_object": "json_object with the schema in the prompt",
        "prompt": "a plain prompt with strict JSON extraction",
    }[mode]


def output_modes(model: ChatModel) -> OutputModes:
    """The run's ``OutputModes`` for ``model``'s client (a fresh one if it keeps no notes)."""
    notes = getattr(model, "notes", None)
    if isinstance(notes, dict):
        found = notes.setdefault("output_modes", OutputModes())
        if isinstance(found, OutputModes):
            return found
    return OutputModes()


def endpoint_of(model: ChatModel) -> str:
    """Where ``model`` sends requests (its ``endpoint``), or its class name."""
    endpoint = getattr(model, "endpoint", None)
    return endpoint if isinstance(endpoint, str) and endpoint else type(model).__name__


def shape_request(
    mode: OutputMode,
    messages: list[dict[str, Any]],
    schema: Mapping[str, Any],
    name: str,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The messages and ``response_format`` for ``mode``.

    The schema goes in the system prompt whenever the server is not given it as ``json_schema``.
    """
    if mode == "json_schema":
        return list(messages), {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": dict(schema)},
        }
    note = _SCHEMA_NOTE + json.dumps(_compact(schema), separators=(",", ":"), sort_keys=True)
    shaped = list(messages)
    if shaped and shaped[0].get("role") == "system" and isinstance(shaped[0].get("content"), str):
        shaped[0] = {**shaped[0], "content": f"{shaped[0]['content']}\n\n{note}"}
    else:
        shaped.insert(0, {"role": "system", "content": note})
    return shaped, ({"type": "json_object"} if mode == "json_object" else None)


def _compact(value: Any) -> Any:
    """The schema without ``title`` keys.

    Pydantic puts one on every field, repeating its name: in a prompt they only cost tokens,
    on every call (a tenth of the plan's schema).
    """
    if isinstance(value, Mapping):
        return {
            k: _compact(v) for k, v in value.items() if not (k == "title" and isinstance(v, str))
        }
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def extract_json(text: str, *, strict: bool) -> str:
    """The JSON object in a reply, as text.

    ``strict`` (a server promised JSON): the whole reply must be one JSON value. Otherwise the
    reply may wrap exactly one object in prose or a code fence; zero or several objects, or an
    ambiguous reply, raise ``JsonNotFound`` (guessing which object was meant would let a wrong
    plan through).
    """
    stripped = text.strip()
    if not stripped:
        raise JsonNotFound("the reply is empty")
    try:
        json.loads(stripped)
    except ValueError:
        pass
    else:
        return stripped
    if strict:
        raise JsonNotFound(f"the reply is not JSON (starts {stripped[:40]!r})")
    objects = _top_level_objects(stripped)
    if len(objects) == 1:
        return objects[0]
    if not objects:
        raise JsonNotFound(f"the reply holds no JSON object (starts {stripped[:40]!r})")
    raise JsonNotFound(f"the reply holds {len(objects)} JSON objects; send exactly one")


def _top_level_objects(text: str) -> list[str]:
    """Every JSON object in ``text`` that is not inside another one."""
    decoder = json.JSONDecoder()
    found: list[str] = []
    i = text.find("{")
    while i != -1:
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict):
            found.append(text[i:end])
        i = text.find("{", end)
    return found
