"""The model path through ``agentcorp run``: timeout setting, vision preflight, exit codes,
and what a task that errors still reports (tokens, mode, time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcorp.app.config import resolve_config
from agentcorp.cli import main
from agentcorp.errors import ConfigError
from agentcorp.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _model_run(srv: FakeOpenAIServer, *extra: str) -> list[str]:
    return [
        "run",
        str(ACME),
        "--task",
        "log-support-call",
        "--base-url",
        srv.base_url,
        "--planner-model",
        "p",
        "--actor-model",
        "text-only-7b",
        *extra,
    ]


# --- the timeout ---------------------------------------------------------------------------


def test_timeout_flag_over_variable_over_file(tmp_path: Path) -> None:
    toml = tmp_path / "agentcorp.toml"
    toml.write_text("[run]\ntimeout_s = 90\n")
    env = {"AGENTCORP_TIMEOUT": "120"}
    assert resolve_config(config_file=toml, environ={}).timeout_s == 90
    cfg = resolve_config(config_file=toml, environ=env)
    assert (cfg.timeout_s, cfg.timeout_source) == (120, "AGENTCORP_TIMEOUT")
    cfg = resolve_config(config_file=toml, environ=env, timeout_s="7.5")
    assert (cfg.timeout_s, cfg.timeout_source) == (7.5, "--timeout")
    assert resolve_config(config_file=toml, environ={}).timeout_source == f"{toml} timeout_s"
    assert resolve_config(environ={}).timeout_source == "default"


@pytest.mark.parametrize(
    ("args", "env", "msg"),
    [
        (["--timeout", "soon"], {}, "--timeout: expected a number of seconds > 0, got 'soon'"),
        ([], {"AGENTCORP_TIMEOUT": "-1"}, "AGENTCORP_TIMEOUT: expected a number of seconds"),
    ],
)
def test_bad_timeout_is_exit_2_one_line(
    args: list[str],
    env: dict[str, str],
    msg: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with FakeOpenAIServer([]) as srv:
        code, _, err = _run(_model_run(srv, *args), capsys)
        assert srv.chat_requests == []
    lines = [ln for ln in err.splitlines() if ln.startswith("agentcorp:")]
    assert code == 2 and len(lines) == 1 and msg in lines[0], err


def test_config_garbage_timeout_names_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "agentcorp.toml"
    toml.write_text('[run]\ntimeout_s = "x"\n')
    with pytest.raises(ConfigError, match=rf"{tmp_path}.*timeout_s.*got 'x'"):
        resolve_config(config_file=toml, environ={})


# --- the vision preflight ------------------------------------------------------------------


def test_text_only_actor_is_refused_before_any_sandbox(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A permissive server in front of a text-only model: images are dropped, the model guesses.
    script = [{"when": {"purpose": "probe"}, "content": "I think it is 12."}]
    with FakeOpenAIServer(script, drop_images=True) as srv:
        code, out, err = _run(_model_run(srv), capsys)
        calls = srv.chat_requests
    lines = [ln for ln in err.splitlines() if ln.startswith("agentcorp:")]
    assert code == 3, out + err
    assert len(lines) == 1 and "actor model 'text-only-7b'" in lines[0], err
    assert "does not take images (probe:" in lines[0]
    assert [r.purpose for r in calls] == ["probe"]  # no planner, no actor, no sandbox


def test_declared_text_only_is_refused_without_a_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "agentcorp.toml"
    toml.write_text("[run]\nvision = false\n")
    with FakeOpenAIServer([]) as srv:
        code, _, err = _run(_model_run(srv, "--config", str(toml)), capsys)
        posts = [r for r in srv.requests if r.method == "POST"]
    assert code == 3 and "declared: vision: false" in err and posts == []


def test_endpoint_failing_after_retries_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    script = [{"when": {"purpose": "probe"}, "fault": "server_error", "status": 502, "times": 9}]
    with FakeOpenAIServer(script) as srv:
        code, _, err = _run(_model_run(srv), capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("agentcorp:")]
    assert code == 3 and len(lines) == 1 and "HTTP 502" in lines[0], err


# --- a task that errors keeps what it spent ------------------------------------------------


@pytest.mark.slow
def test_task_that_errors_reports_tokens_mode_and_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The planner spends tokens on three invalid plans, then PlanError ends the task.
    bad = {"json": {"plan": "?"}, "usage": {"prompt_tokens": 900, "completion_tokens": 40}}
    script = [{"when": {"purpose": "plan"}, **bad, "times": 3}]
    with FakeOpenAIServer(script) as srv:
        code, out, err = _run(
            [
                *_model_run(srv),
                "--actor-model",
                "fake-actor",
                "--sessions",
                str(tmp_path / "s"),
                "--json",
                "--no-cache",
            ],
            capsys,
        )
    assert code == 1, out + err
    report = json.loads(out.strip().splitlines()[-1])
    [row] = report["tasks"]
    assert row["status"] == "error" and "PlanError" in row["reason"]
    assert row["tokens"] == 3 * 940 and row["mode"] == "planned" and row["elapsed_s"] > 0
    assert row["cost_known"] is False  # model "p" has no price: unknown, never $0
