from __future__ import annotations

from pathlib import Path

import pytest

from tests.record._app import Recorded, model_script, record


@pytest.fixture
def recorded(tmp_path: Path) -> Recorded:
    """A complete recording of a model-driven run that passes its check."""
    return record(tmp_path / "session", tmp_path / "home", script=model_script())
