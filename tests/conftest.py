"""Suite-wide fixtures. Keep this small; area fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import agentcorp.llm

# The tripwire: no test may reach a real (paid) model endpoint. A test that must (the live
# Grok smoke test) flips it back inside its own body with monkeypatch.
agentcorp.llm.ALLOW_REAL_REQUESTS = False


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_action_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test gets its own action cache, so runs never replay another run's actions."""
    monkeypatch.setenv("AGENTCORP_CACHE_DIR", str(tmp_path_factory.mktemp("action-cache")))


def pytest_configure(config: pytest.Config) -> None:
    """Module-scoped fixtures run before the fixture above: give them a scratch cache too."""
    import os
    import tempfile

    os.environ.setdefault("AGENTCORP_CACHE_DIR", tempfile.mkdtemp(prefix="agentcorp-cache-"))
    # The suite may run as `.venv/bin/python -m pytest` without the venv activated: its tools
    # (lint-imports, hadolint, agentcorp) are the ones beside the interpreter.
    import sys
    from pathlib import Path

    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
