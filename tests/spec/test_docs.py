"""docs/spec.md is generated from the models and must be regenerated when they change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agentcorp.spec.docs import render_markdown
from agentcorp.spec.models import STEP_KINDS, Company

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "spec.md").read_text("utf-8")
    assert committed == render_markdown(), (
        "docs/spec.md is stale: run `python -m agentcorp.spec.docs > docs/spec.md`"
    )


def test_reference_lists_every_field_and_step() -> None:
    text = render_markdown()
    for name in Company.model_fields:
        assert f"| `{name}` |" in text
    for kind in STEP_KINDS:
        assert f"`{kind}`" in text


def test_module_entry_point_prints_the_reference() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp.spec.docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == render_markdown()
