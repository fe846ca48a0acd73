"""``agentcorp run``: config resolution, garbage input, and end to end on real sandboxes.

The end-to-end tests drive the sample company's real apps (mousepad on our own Xvfb; the
Django back office in headless Chromium) with the model answered by the real loopback
``FakeOpenAIServer`` through the real ``openai`` SDK.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcorp.app.config import resolve_config
from agentcorp.cli import main
from agentcorp.errors import ConfigError
from agentcorp.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"
NOTE = "2026-11-02 Call from Globex: asked about invoice INV-1043. Ticket opened.\n"


@pytest.fixture(autouse=True)
def clean_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    live = request.node.get_closest_marker("live") is not None
    for var in (
        "OPENAI_API_KEY",
        "AGENTCORP_API_KEY",
        "AGENTCORP_PROVIDER",
        "AGENTCORP_BASE_URL",
        "AGENTCORP_PLANNER_MODEL",
        "AGENTCORP_ACTOR_MODEL",
        "AGENTCORP_SESSIONS",
        *(() if live else ("XAI_API_KEY",)),
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BACKOFFICE_PASSWORD", "pw-for-tests-only")
    monkeypatch.chdir(tmp_path)  # no stray agentcorp.toml


# --- configuration ------------------------------------------------------------------------


def test_config_precedence_flags_env_toml(tmp_path: Path) -> None:
    (tmp_path / "agentcorp.toml").write_text(
        '[run]\nprovider = "openai"\nactor_model = "from-toml"\nplanner_model = "p-toml"\n'
        "image_history = 5\n",
        encoding="utf-8",
    )
    env = {"AGENTCORP_ACTOR_MODEL": "from-env", "OPENAI_API_KEY": "sk-test"}
    cfg = resolve_config(environ=env)
    assert (cfg.provider, cfg.actor_model, cfg.planner_model, cfg.image_history) == (
        "openai",
        "from-env",
        "p-toml",
        5,
    )
    assert cfg.online and cfg.api_key is not None
    assert "sk-test" not in repr(cfg) and "sk-test" not in cfg.describe()
    cfg = resolve_config(actor_model="from-flag", environ=env)
    assert cfg.actor_model == "from-flag"


def test_config_offline_and_custom() -> None:
    assert not resolve_config(environ={}).online
    cfg = resolve_config(base_url="http://127.0.0.1:9/v1", environ={})
    assert cfg.provider == "custom" and cfg.online and cfg.api_key is None
    cfg = resolve_config(base_url="http://127.0.0.1:9/v1", environ={"AGENTCORP_API_KEY": "k"})
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "k"


@pytest.mark.parametrize(
    ("kwargs", "toml", "message"),
    [
        ({"provider": "grok"}, None, "--provider: unknown provider 'grok'; expected xai"),
        ({"provider": "custom"}, None, "--provider custom needs --base-url URL"),
        ({"base_url": "ftp://x"}, None, "--base-url: must start with http:// or https://"),
        ({}, "[run]\nactor_modle = 'x'\n", "unknown key 'actor_modle' (did you mean"),
        ({}, "provider = \n", "invalid TOML"),
        ({}, "image_history = 'many'\n", "image_history: Input should be a valid integer"),
        ({"config_file": Path("nope.toml")}, None, "--config: nope.toml does not exist"),
        ({"sessions": Path("agentcorp.toml")}, "", "--sessions: agentcorp.toml exists and is not"),
    ],
)
def test_config_garbage_is_one_clear_line(
    tmp_path: Path, kwargs: dict[str, Any], toml: str | None, message: str
) -> None:
    if toml is not None:
        (tmp_path / "agentcorp.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        resolve_config(environ={}, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_inputs_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "missing")]) == 2
    assert "no such company file or folder" in capsys.readouterr().err
    assert main(["run", str(ACME), "--task", "log-suport-call"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'log-suport-call' (did you mean 'log-support-call'?)" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncompany: x\nroles: {}\n", encoding="utf-8")
    assert main(["run", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["run", str(ACME), "--provider", "nope"]) == 2


def test_missing_secret_is_a_clear_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BACKOFFICE_PASSWORD")
    # The sample generates its back office password when unset; without that line a
    # missing secret stops the run before anything starts.
    company = tmp_path / "co"
    shutil.copytree(ACME, company, ignore=shutil.ignore_patterns("recordings"))
    text = (company / "company.yaml").read_text(encoding="utf-8")
    (company / "company.yaml").write_text(
        text.replace("    if_missing: generate\n", ""), encoding="utf-8"
    )
    assert main(["run", str(company), "--task", "log-support-call"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "agentcorp: error: secrets.BACKOFFICE_PASSWORD: environment variable "
        "BACKOFFICE_PASSWORD is not set"
    ]


def test_unreachable_endpoint_exits_3_before_any_sandbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(
        [
            "run",
            str(ACME),
            "--task",
            "log-support-call",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--actor-model",
            "a",
            "--planner-model",
            "p",
        ]
    )
    assert code == 3
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("agentcorp:")]
    assert len(err) == 1 and f"127.0.0.1:{port}" in err[0]


# --- end to end on real sandboxes ---------------------------------------------------------


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _sessions(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/manifest.json"))


@pytest.mark.slow
def test_e2e_desktop_task_planned_and_acted_via_fake_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = {"subgoals": ["save the support log"], "steps": [{"key": "ctrl+End"}, {"type": NOTE}]}
    script = [
        {"when": {"purpose": "plan"}, "json": plan},
        # Each malformed kind once, all recovered, through real HTTP.
        {"when": {"purpose": "act"}, "fault": "bad_json"},
        {"when": {"purpose": "act"}, "fault": "unknown_tool"},
        {
            "when": {"purpose": "act"},
            "tool_calls": [{"name": "key", "arguments": {"keys": "ctrl+s"}}],
        },
        {"when": {"purpose": "act"}, "fault": "off_screen"},
        {"when": {"purpose": "act"}, "fault": "missing_args"},
        {
            "when": {"purpose": "act"},
            "tool_calls": [{"name": "done", "arguments": {"summary": "saved"}}],
        },
    ]
    sessions = tmp_path / "sessions"
    with FakeOpenAIServer(script) as srv:
        code, out, err = _run(
            [
                "run",
                str(ACME),
                "--task",
                "log-support-call",
                "--base-url",
                srv.base_url,
                "--planner-model",
                "fake-planner",
                "--actor-model",
                "fake-actor",
                "--sessions",
                str(sessions),
            ],
            capsys,
        )
        assert code == 0, out + err
        srv.assert_complete()
        reqs = srv.chat_requests
    assert out.splitlines()[0].startswith("agentcorp run acme-digital: 1 task(s) with the model")
    assert re.search(r"log-support-call\s+│\s+pass\s+│\s+planned", out)
    assert [r.body["model"] for r in reqs] == ["fake-planner"] + ["fake-actor"] * 6
    plan_req = reqs[0].body
    assert plan_req["response_format"]["type"] == "json_schema"
    assert "Append today's call from Globex" in json.dumps(plan_req)
    # The actor saw a real screenshot, and the model's errors were told back to it.
    act_last = json.dumps(reqs[-1].body)
    assert "data:image/png;base64," in act_last
    assert "arguments are not valid JSON" in act_last and "unknown tool 'teleport'" in act_last
    assert "off-screen" in act_last and "missing argument 'y'" in act_last
    [session] = _sessions(sessions)
    manifest = json.loads((session / "manifest.json").read_text())
    assert manifest["outcome"]["status"] == "pass"
    assert [c["status"] for c in manifest["checks"]] == ["pass", "pass", "pass"]
    assert manifest["episode"]["then_model"] is True
    assert manifest["run_task"]["task"]["task_id"] == "log-support-call"
    assert manifest["run_task"]["planner_model"] == "fake-planner"
    kinds = [json.loads(ln)["kind"] for ln in (session / "events.jsonl").read_text().splitlines()]
    assert kinds.count("model_call") == 7 and "plan" in kinds and "check" in kinds


@pytest.mark.slow
def test_e2e_quota_429_exits_3_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer([{"fault": "quota"}]) as srv:
        code, _out, err = _run(
            [
                "run",
                str(ACME),
                "--task",
                "log-support-call",
                "--base-url",
                srv.base_url,
                "--planner-model",
                "p",
                "--actor-model",
                "a",
                "--sessions",
                str(tmp_path / "s"),
            ],
            capsys,
        )
        attempts = len(srv.chat_requests)
    assert code == 3
    lines = [ln for ln in err.splitlines() if ln.startswith("agentcorp:")]
    assert len(lines) == 1 and "credits" in lines[0], err
    assert attempts == 1  # fatal, never retried


@pytest.mark.slow
def test_e2e_offline_scripted_run_records_replayable_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = tmp_path / "s"
    code, out, err = _run(
        ["run", str(ACME), "--task", "log-support-call", "--sessions", str(sessions)], capsys
    )
    assert code == 0, out + err
    assert "offline (no model configured)" in out.splitlines()[0]
    [session] = _sessions(sessions)
    index = Path(out.strip().splitlines()[-1].removeprefix("trace: "))
    assert index.is_file() and index.parent == sessions
    trace = session.with_suffix(".html")
    assert trace.is_file() and trace.relative_to(sessions).as_posix() in index.read_text()
    code, out, err = _run(["replay", str(session), "--mode", "decision", "--no-sandbox"], capsys)
    assert code == 0, out + err


@pytest.mark.slow
def test_e2e_budget_overrun_is_budget_exceeded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company = tmp_path / "co"
    shutil.copytree(ACME, company, ignore=shutil.ignore_patterns("recordings"))
    text = (company / "company.yaml").read_text()
    text = text.replace("budgets: {steps: 20, wall_clock: 5m}", "budgets: {steps: 2}", 1)
    (company / "company.yaml").write_text(text)
    script = [
        {"when": {"purpose": "plan"}, "json": {"subgoals": ["press keys"]}},
        {
            "when": {"purpose": "act"},
            "times": 5,
            "tool_calls": [{"name": "key", "arguments": {"keys": "End"}}],
        },
    ]
    with FakeOpenAIServer(script) as srv:
        code, _out, err = _run(
            [
                "run",
                str(company),
                "--task",
                "log-support-call",
                "--base-url",
                srv.base_url,
                "--planner-model",
                "p",
                "--actor-model",
                "a",
            ],
            capsys,
        )
        acts = [r for r in srv.chat_requests if r.body.get("model") == "a"]
    assert code == 1
    assert "log-support-call budget_exceeded: task step budget of 2 used up" in err
    assert len(acts) == 2


@pytest.mark.slow
def test_python_m_agentcorp_run_subprocess(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XAI_API_KEY", "OPENAI_API_KEY", "AGENTCORP_API_KEY")
    }
    env["BACKOFFICE_PASSWORD"] = "pw-for-tests-only"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(ACME),
            "--task",
            "log-support-call",
            "--sessions",
            str(tmp_path / "s"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].startswith("agentcorp run acme-digital: 1 task(s) offline")
    assert "✔ log-support-call pass" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _acme_copy(tmp_path: Path) -> tuple[Path, int]:
    """The sample company on a free port (so parallel runs never share a back office)."""
    port = _free_port()
    company = tmp_path / "acme"
    shutil.copytree(ACME, company, ignore=shutil.ignore_patterns("recordings"))
    text = (company / "company.yaml").read_text(encoding="utf-8")
    text = text.replace("8765", str(port)).replace(
        "../../sandboxes/backoffice/serve.py", str(ROOT / "sandboxes/backoffice/serve.py")
    )
    (company / "company.yaml").write_text(text, encoding="utf-8")
    return company, port


@pytest.mark.slow
def test_e2e_browser_task_planned_and_acted_via_fake_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company, port = _acme_copy(tmp_path)
    base = f"http://127.0.0.1:{port}"
    plan = {
        "subgoals": ["make sure the Site administration page is shown, then call done"],
        "steps": [
            {"open_url": f"{base}/admin/login/"},
            {"type": "admin", "into": "Username"},
            {"type": "${secrets.BACKOFFICE_PASSWORD}", "into": "Password"},
            {"key": "Return"},
            {"wait_for": "Site administration", "timeout": 20},
        ],
    }
    script = [
        {"when": {"purpose": "plan"}, "json": plan},
        {
            "when": {"purpose": "act", "has_images": True},
            "tool_calls": [{"name": "done", "arguments": {"summary": "logged in"}}],
        },
    ]
    sessions = tmp_path / "sessions"
    with FakeOpenAIServer(script) as srv:
        code, out, err = _run(
            [
                "run",
                str(company),
                "--task",
                "backoffice-login",
                "--base-url",
                srv.base_url,
                "--planner-model",
                "p",
                "--actor-model",
                "a",
                "--sessions",
                str(sessions),
            ],
            capsys,
        )
        srv.assert_complete()
        bodies = [json.dumps(r.body) for r in srv.chat_requests]
    assert code == 0, out + err
    assert re.search(r"backoffice-login\s+│\s+pass\s+│\s+planned", out)
    assert "Site administration" in bodies[0]  # the success checks were given to the planner
    secret = "pw-for-tests-only"
    assert not any(secret in b for b in bodies)
    [session] = _sessions(sessions)
    manifest = json.loads((session / "manifest.json").read_text())
    assert [c["status"] for c in manifest["checks"]] == ["pass"] * 4
    for f in session.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


@pytest.mark.slow
def test_fleet_entry_point_runs_a_spec_task(tmp_path: Path) -> None:
    from agentcorp.app.config import resolve_config
    from agentcorp.app.episode import RunFolder, episode
    from agentcorp.fleet.model import EpisodeContext, FleetTask
    from agentcorp.spec import load_company

    folder = RunFolder(tmp_path / "run")
    cfg = resolve_config(sessions=folder.root, environ={}, no_cache=True)
    folder.write_settings(load_company(ACME), cfg)
    task = FleetTask(
        id="log-support-call",
        payload={"run_dir": str(folder.root), "task_id": "log-support-call"},
    )
    ctx = EpisodeContext(task_id=task.id, attempt=1, epoch=1, worker_id="w1", node_id="n1")
    result = episode(task, ctx)
    assert (result.status, result.detail) == ("passed", "")
    assert result.session_path and Path(result.session_path, "manifest.json").is_file()
    # The sandbox's home is kept in the run folder, with the saved notes.
    notes = folder.sandboxes / "notes" / "notes.txt"
    assert "Call from Globex" in notes.read_text(encoding="utf-8")
    assert folder.read_result("log-support-call") is not None


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("XAI_API_KEY"), reason="live Grok smoke test: set XAI_API_KEY"
)
def test_live_grok_smoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs the sample's simplest task with Grok itself (only when XAI_API_KEY is set)."""
    import agentcorp.llm

    monkeypatch.setattr(agentcorp.llm, "ALLOW_REAL_REQUESTS", True)
    code, out, err = _run(
        ["run", str(ACME), "--task", "log-support-call", "--sessions", str(tmp_path / "s")], capsys
    )
    assert code == 0, out + err


@pytest.mark.slow
def test_offline_run_prefers_the_shipped_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company, _ = _acme_copy(tmp_path)
    code, out, err = _run(
        [
            "run",
            str(company),
            "--task",
            "log-support-call",
            "--sessions",
            str(company / "recordings"),
        ],
        capsys,
    )
    assert code == 0, out + err
    assert "▶ log-support-call: scripted" in err
    code, out, err = _run(
        ["run", str(company), "--task", "log-support-call", "--sessions", str(tmp_path / "again")],
        capsys,
    )
    assert code == 0, out + err
    assert "▶ log-support-call: recording" in err
    assert re.search(r"log-support-call\s+│\s+pass\s+│\s+recording\s+│\s+4\s", out)
    # The replayed attempt is itself a complete, replayable session.
    [session] = _sessions(tmp_path / "again")
    code, out, err = _run(["replay", str(session), "--mode", "decision", "--no-sandbox"], capsys)
    assert code == 0, out + err
    # A changed task never replays a stale recording: it falls back to its scripted steps.
    text = (company / "company.yaml").read_text(encoding="utf-8")
    (company / "company.yaml").write_text(
        text.replace("Ticket opened.", "Ticket opened!"), encoding="utf-8"
    )
    code, out, err = _run(["run", str(company), "--task", "log-support-call"], capsys)
    assert "▶ log-support-call: scripted" in err


@pytest.mark.slow
def test_task_with_neither_recording_nor_steps_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company, _ = _acme_copy(tmp_path)
    text = (company / "company.yaml").read_text(encoding="utf-8")
    start = text.index('    steps:\n      - key: ctrl+End\n      - type: "2026-11-02')
    end = text.index("    success:", start)
    (company / "company.yaml").write_text(text[:start] + text[end:], encoding="utf-8")
    code, _out, err = _run(["run", str(company), "--task", "log-support-call"], capsys)
    assert code == 1
    assert "▶ log-support-call: no model, no recording, no steps" in err
    assert (
        "! log-support-call error: no model configured, and the task has neither a shipped "
        "recording nor scripted steps"
    ) in err
