"""``agentcorp validate`` then ``agentcorp run`` of a step whose target no source can match.

On a real Xvfb desktop running the GTK fixture form: validate warns (exit 0), and the run
fails that step with one line naming it (exit 1), after the steps before it ran and were
recorded; nothing is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcorp.cli import main

FORM_APP = Path(__file__).resolve().parents[1] / "grounding" / "apps" / "labelled_form.py"
NO_SOURCE = (
    "the target '\\u200b' has no visible character: no source (accessibility tree, DOM or OCR)"
    " can match it"
)


@pytest.mark.timeout(240)
def test_a_target_no_source_can_match_warns_then_fails_its_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("XAI_API_KEY", "OPENAI_API_KEY", "AGENTCORP_API_KEY", "AGENTCORP_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "company.yaml"
    spec.write_text(
        f"""\
version: 1
company: test-co
roles:
  clerk: {{title: Clerk, sandbox: form}}
sandboxes:
  form:
    kind: desktop
    apps:
      - name: form
        command: [/usr/bin/python3, {json.dumps(str(FORM_APP))}]
        wait_for_window: Labelled form
        timeout: 60s
tasks:
  - id: fill
    role: clerk
    description: Fill the form.
    steps:
      - {{type: PO-77, into: Reference}}
      - click: "\\u200b"
      - {{type: "12 Harbour Road", into: Shipping address}}
""",
        encoding="utf-8",
    )
    assert main(["validate", str(spec)]) == 0
    _, err = capsys.readouterr()
    assert err.splitlines()[0].startswith(f"{spec}:19:16: warning: tasks[0].steps[1].click: ")
    sessions = tmp_path / "s"
    code = main(["run", str(tmp_path), "--sessions", str(sessions)])
    _, err = capsys.readouterr()
    assert code == 1, err
    failed = [line for line in err.splitlines() if line.startswith("✘ fill fail: ")]
    assert failed and failed[0].startswith(f"✘ fill fail: steps[1] (click '\\u200b'): {NO_SOURCE}")
    # The first step ran and is in the recording: click into the field, then type.
    [events] = sessions.glob("fill/*/events.jsonl")
    results = [
        e
        for e in map(json.loads, events.read_text(encoding="utf-8").splitlines())
        if e.get("kind") == "action_result"
    ]
    assert [r["ok"] for r in results] == [True, True]
