"""``agentcorp validate``/``schema`` through typer's CliRunner and agentcorp.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentcorp.cli import app, main
from agentcorp.errors import AgentcorpError, SpecError
from agentcorp.spec import load_company

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests/spec/invalid/unknown_role_ref.yaml"


def test_validate_sample_company_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "tasks")]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == f"agentcorp: ok: {ROOT / 'tasks'}"


def test_validate_with_cli_runner() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(ROOT / "tasks/acme/company.yaml")])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["validate", str(BAD), str(ROOT / "tasks")])
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        f"{BAD}:26:11: tasks[1].role: unknown role 'agnet' (did you mean 'agent'?)",
        "agentcorp: 1 error in 1 file",
    ]
    assert bad.exception is None or isinstance(bad.exception, SystemExit)


def test_validate_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    out, err = capsys.readouterr()
    assert err == "agentcorp: error: validate needs at least one PATH (file or folder)\n"
    assert out == ""


@pytest.mark.parametrize("bad", ["lots", "0", "-5", "1.5", ""])
def test_validate_garbage_max_bytes(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--max-bytes", bad, str(ROOT / "tasks")]) == 2
    _, err = capsys.readouterr()
    assert err == (f"agentcorp: error: --max-bytes must be a positive whole number, got {bad!r}\n")


def test_validate_garbage_with_cli_runner() -> None:
    result = CliRunner().invoke(app, ["validate", "--max-bytes", "lots", str(ROOT / "tasks")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_schema_command_prints_json() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Company"
    assert "tasks" in schema["required"]


def test_the_loader_raises_spec_error_under_the_root() -> None:
    company = load_company(ROOT / "tasks/acme")
    assert company.company == "acme-digital"
    with pytest.raises(SpecError) as info:
        load_company(BAD)
    assert isinstance(info.value, AgentcorpError) and info.value.exit_code == 2
    assert [str(i) for i in info.value.issues] == [
        f"{BAD}:26:11: tasks[1].role: unknown role 'agnet' (did you mean 'agent'?)"
    ]


_UNSEEN = """\
version: 1
company: test-co
roles:
  clerk: {title: Clerk, sandbox: desk}
sandboxes:
  desk:
    kind: desktop
    apps: [{name: calc, command: [galculator], wait_for_window: galculator}]
tasks:
  - id: sum
    role: clerk
    description: Add two numbers.
    steps:
      - click: "7"
      - click: "+/-"
      - click: "\\u200b"
      - {type: "12", into: "\\u2060\\u00ad"}
      - drag: {from: "7", to: "\\t\\u200d"}
    success: {check: screen_contains, text: "\\ufeff"}
"""


def test_validate_warns_about_targets_no_source_can_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Zero-width, word-joiner, soft-hyphen and byte-order marks draw nothing: the tree, the
    # DOM and OCR all match what is drawn. Punctuation ("+/-") and digits are fine.
    spec = tmp_path / "company.yaml"
    spec.write_text(_UNSEEN, encoding="utf-8")
    assert main(["validate", str(spec)]) == 0  # warnings: the spec itself is valid
    out, err = capsys.readouterr()
    assert out == ""
    no_source = "has no visible character: no source (accessibility tree, DOM or OCR) can match it"
    assert err.splitlines() == [
        f"{spec}:16:16: warning: tasks[0].steps[2].click: target '\\u200b' {no_source}",
        f"{spec}:17:28: warning: tasks[0].steps[3].into: target '\\u2060\\xad' {no_source}",
        f"{spec}:18:31: warning: tasks[0].steps[4].drag.to: target '\\t\\u200d' {no_source}",
        f"{spec}:19:45: warning: tasks[0].success.text: text '\\ufeff' {no_source}",
        f"agentcorp: ok: {spec} (4 warnings)",
    ]
    # The loaded company keeps every step: a warning loses nothing.
    assert len(load_company(spec).tasks[0].steps or []) == 5
    # With an error as well, both are counted and the exit code is the error's.
    spec.write_text(_UNSEEN.replace("role: clerk", "role: clrek"), encoding="utf-8")
    assert main(["validate", str(spec)]) == 2
    _, err = capsys.readouterr()
    assert err.splitlines()[-1] == "agentcorp: 1 error and 4 warnings in 1 file"
