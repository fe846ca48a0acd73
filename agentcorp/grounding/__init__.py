"""Grounding: find a visible text target on screen locally, and run cached actions again.

- ``base``: the ``Grounder`` contract (``locate``), ``Hint``, ``Candidate``, ``DomLocator``.
- ``OcrGrounder`` (``ocr_grounder``): desktop frames by OCR, re-reading only what changed.
- ``DomGrounder`` / ``CompositeGrounder`` (``dom``): the browser's DOM first, then OCR.
- ``resolve`` / ``Ambiguous`` / ``NotFound`` (``resolve``): one decision from candidates.
- ``ActionCache``, ``CacheRunner``, ``run_cached``, ``entries_from_steps`` (``cache``): the action
  cache that runs a passed task again without a model.

Names are imported lazily so that importing ``agentcorp.grounding.base`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ActionCache",
    "Ambiguous",
    "CacheRunner",
    "CompositeGrounder",
    "DomGrounder",
    "NotFound",
    "OcrEngine",
    "OcrGrounder",
    "entries_from_steps",
    "resolve",
    "run_cached",
    "skill_key",
]

_WHERE = {
    "ActionCache": "agentcorp.grounding.cache",
    "CacheRunner": "agentcorp.grounding.cache",
    "skill_key": "agentcorp.grounding.provenance",
    "entries_from_steps": "agentcorp.grounding.cache",
    "run_cached": "agentcorp.grounding.cache",
    "Ambiguous": "agentcorp.grounding.resolve",
    "NotFound": "agentcorp.grounding.resolve",
    "resolve": "agentcorp.grounding.resolve",
    "CompositeGrounder": "agentcorp.grounding.dom",
    "DomGrounder": "agentcorp.grounding.dom",
    "OcrEngine": "agentcorp.grounding.ocr",
    "OcrGrounder": "agentcorp.grounding.ocr_grounder",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp.grounding' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
