"""``agentcorp doctor [PATH]``: one line per missing piece, and how to get it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agentcorp.sandbox.doctor import diagnose, missing_required
from agentcorp.spec import load_company

ROOT = Path(__file__).resolve().parents[2]

COMPANY = """\
version: 1
company: Doctor test
roles:
  r: {title: R, sandbox: d}
sandboxes:
  d:
    kind: desktop
    apps:
      - {name: calc, command: [nosuchcalc-xyz], wait_for_window: calc}
      - {name: pad, command: [featherpad], wait_for_window: pad, type_delay: 30ms}
tasks:
  - {id: t, role: r, description: d, steps: [{click: "+"}]}
"""


def test_every_program_a_company_names_is_checked(tmp_path: Path) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY, encoding="utf-8")
    findings = diagnose(load_company(tmp_path))
    by = {f.what: f for f in findings}
    assert by["featherpad"].ok and by["featherpad"].detail.endswith("featherpad")
    bad = by["nosuchcalc-xyz"]
    assert not bad.ok and bad.required and "sandbox d app calc" in bad.purpose
    assert [f.what for f in missing_required(findings)] == ["nosuchcalc-xyz"]
    # What the grounding sources need is reported; benchmark-only tools are not asked for.
    assert {"dbus-daemon", "at-spi2-core", "python jeepney", "OCR models"} <= set(by)
    assert not {"scrot", "convert", "import"} & set(by)
    # A desktop-only company does not need Chromium.
    assert not by["chromium"].required


def test_cli_names_the_missing_program_and_exits_3(tmp_path: Path) -> None:
    (tmp_path / "company.yaml").write_text(COMPANY, encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "doctor", str(tmp_path), "--quiet"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("missing")]
    assert lines == [
        "missing  nosuchcalc-xyz         apt-get install nosuchcalc-xyz  (sandbox d app calc)"
    ]
    assert "nosuchcalc-xyz" in r.stderr and len(r.stderr.strip().splitlines()) == 1
