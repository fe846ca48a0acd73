"""The session folder layout, its version, and the migrations from older layouts.

Layout (format version 1)::

    SESSION/
      manifest.json     written LAST, atomically (tmp + fsync + rename); absent = interrupted
      events.jsonl      one step record per line (``agentcorp.types.step_to_dict``) plus ``_ref``
      blobs/<sha256>    raw blobs named by the sha256 of their bytes (model images, bodies)
      blobs/<sha256>.png  lossless frames named by ``Frame.sha256`` (a hash of the pixels);
                        a frame that changed little against the one stored before it holds
                        only the changed rectangle, with a ``tEXt`` chunk
                        ``agentcorp-delta = "<parent sha> <x> <y>"`` (at most 16 in a row)

Each event line is the step dict with one extra key, ``_ref``, naming its blobs:
``{"image": sha, "frame": pixel_sha, "request": sha, "request_hash": canonical_sha}``.
``ModelCallStep.request`` is stored as ``{"$blob": sha}``; the body blob holds the redacted wire
body with images replaced by ``blob:sha256:<hex>;<media type>`` references.

A migration turns a manifest and event dicts of version N into version N+1; readers apply them
in order on the fly and reject versions they do not know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MIGRATIONS",
    "Migration",
    "manifest_version",
    "migrate",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
BLOBS = "blobs"
DELTA_KEY = "agentcorp-delta"


@dataclass(frozen=True, slots=True)
class Migration:
    """Turns version ``source`` data into version ``source + 1``; each function returns copies."""

    source: int
    manifest: Callable[[dict[str, Any]], dict[str, Any]]
    event: Callable[[dict[str, Any]], dict[str, Any]]


def _v0_manifest(old: dict[str, Any]) -> dict[str, Any]:
    # Version 0 (the prototype) named fields differently and kept the outcome as a bare string.
    new = {k: v for k, v in old.items() if k not in ("version", "task", "spec_sha", "result")}
    new["format_version"] = 1
    new["task_id"] = old.get("task", "")
    new["spec_hash"] = old.get("spec_sha", "")
    result = old.get("result")
    new["outcome"] = {"status": result if isinstance(result, str) else "error", "reason": ""}
    new.setdefault("checks", [])
    return new


def _v0_event(old: dict[str, Any]) -> dict[str, Any]:
    # Version 0 used ``type``/``ts`` for what v1 calls ``kind``/``t``.
    new = {k: v for k, v in old.items() if k not in ("type", "ts")}
    if "type" in old:
        new["kind"] = old["type"]
    if "ts" in old:
        new["t"] = old["ts"]
    return new


MIGRATIONS: dict[int, Migration] = {0: Migration(0, _v0_manifest, _v0_event)}


def manifest_version(manifest: dict[str, Any]) -> Any:
    """The format version a manifest declares (v0 used the key ``version``)."""
    if "format_version" in manifest:
        return manifest["format_version"]
    return manifest.get("version")


def migrate(version: int) -> list[Migration]:
    """The migrations that bring ``version`` data up to ``FORMAT_VERSION``, in order."""
    return [MIGRATIONS[v] for v in range(version, FORMAT_VERSION)]
