"""Suite-wide fixtures. Keep this small; area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import agentcorp.llm

# The tripwire: no test may reach a real (paid) model endpoint. A test that must (the live
# Grok smoke test) flips it back inside its own body with monkeypatch.
agentcorp.llm.ALLOW_REAL_REQUESTS = False
