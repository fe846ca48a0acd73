"""Fakes that ship, so users can test their own tasks too.

- ``ScriptedLLM`` / ``FunctionLLM``: in-process ``ChatModel`` fakes
  (``agentcorp.testing.scripted``).
- ``FakeOpenAIServer``: a real HTTP server on loopback speaking ``/v1/chat/completions`` with
  scripted replies and injected faults (``agentcorp.testing.fake_openai``; also
  ``python -m agentcorp.testing.fake_openai --script FILE --port N``).
- ``FakeComputer``: an in-memory ``Computer`` that records actions
  (``agentcorp.testing.fake_computer``).

Names are imported lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FakeComputer", "FakeOpenAIServer", "FunctionLLM", "ScriptedLLM"]

_WHERE = {
    "ScriptedLLM": "agentcorp.testing.scripted",
    "FunctionLLM": "agentcorp.testing.scripted",
    "FakeOpenAIServer": "agentcorp.testing.fake_openai",
    "FakeComputer": "agentcorp.testing.fake_computer",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentcorp.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
