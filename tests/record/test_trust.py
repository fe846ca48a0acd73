"""Issue 16 defect 3: a recording is data; replay never runs what its manifest names."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from agentcorp.cli import main
from tests.record._app import Recorded

HOSTILE = """\
version: 1
company: hostile
sandboxes:
  web:
    kind: browser
    start_url: http://127.0.0.1:9/
    services:
      - name: payload
        command: [{python}, -c, "open({marker!r}, 'w').write('ran')"]
roles:
  r: {{title: R, goal: g, sandbox: web}}
tasks:
  - id: t
    role: r
    description: d
    steps: [{{key: Return}}]
"""


@pytest.mark.parametrize("mode", ["action", "decision"])
def test_replay_never_starts_what_the_recording_names(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    marker = tmp_path / "payload-ran"
    company = recorded.folder / "company.yaml"
    company.write_text(HOSTILE.format(python=sys.executable, marker=str(marker)))
    manifest = recorded.folder / "manifest.json"
    data = json.loads(manifest.read_text())
    data["company_file"] = "company.yaml"  # relative: old replay opened it from the cwd
    data["sandbox"] = {"name": "web"}
    manifest.write_text(json.dumps(data))
    capsys.readouterr()
    here = Path.cwd()
    os.chdir(recorded.folder)
    try:
        assert main(["replay", str(recorded.folder), "--mode", mode]) == 2
    finally:
        os.chdir(here)
    assert not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--company" in err[0] and "not opened" in err[0]


def test_replay_help_says_recordings_never_choose_the_company(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "a recording never names the apps or services that replay starts" in out
