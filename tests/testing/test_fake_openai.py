"""The fake OpenAI server: script format, matching, faults, CLI; spoken to over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentcorp.errors import ConfigError, LLMError
from agentcorp.llm import OpenAIClient, RetryPolicy, custom, user_message
from agentcorp.testing import FakeOpenAIServer
from agentcorp.testing.fake_openai import FakeScriptError, load_script
from agentcorp.testing.scripted import tool_reply
from agentcorp.types import ChatRequest

ROOT = Path(__file__).resolve().parents[2]


def _client(srv: FakeOpenAIServer) -> OpenAIClient:
    return OpenAIClient(custom(srv.base_url), api_key="k", retry=RetryPolicy(max_attempts=1))


def _req(text: str, *, system: str = "", purpose: str = "act", images: int = 0) -> ChatRequest:
    msgs: list[dict[str, Any]] = []
    if system:
        msgs.append({"role": "system", "content": system})
    msgs.append(user_message(text, [b"img"] * images))
    return ChatRequest(model="fake", messages=msgs, purpose=purpose)


def test_yaml_script_with_when_serves_planner_and_actor(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text(
        """
models: [grok-4, grok-4-1-fast-non-reasoning]
replies:
  - when: {purpose: plan}
    json: {steps: [{click: OK}]}
  - when: {purpose: act, has_images: true}
    tool_calls:
      - {name: click, arguments: {x: 1, y: 2}}
    times: 2
  - when: {user_contains: summary}
    content: all done
  - when: {system_contains: "You are the planner"}
    content: replanned
""",
        encoding="utf-8",
    )
    with FakeOpenAIServer(script) as srv:
        c = _client(srv)
        a1 = c.complete(_req("go", images=1))  # the actor asks first: skips the plan entry
        p = c.complete(_req("plan it", purpose="plan"))
        a2 = c.complete(_req("go", images=2))
        s = c.complete(_req("write a summary"))
        r = c.complete(_req("again", system="You are the planner."))
        assert a1.tool_calls[0].name == "click" and a2.tool_calls[0].name == "click"
        assert json.loads(p.content or "") == {"steps": [{"click": "OK"}]}
        assert s.content == "all done" and r.content == "replanned"
        assert [q.entry for q in srv.chat_requests] == [1, 0, 1, 2, 3]
        assert [q.images for q in srv.chat_requests] == [1, 0, 2, 0, 0]
        assert [q.purpose for q in srv.chat_requests] == ["act", "plan", "act", "act", "act"]
        assert c.list_models() == ["grok-4", "grok-4-1-fast-non-reasoning"]
        srv.assert_complete()


def test_unmatched_request_is_a_clear_400_and_fails_assert_complete() -> None:
    with FakeOpenAIServer([{"when": {"purpose": "plan"}, "content": "p"}]) as srv:
        with pytest.raises(LLMError, match="no script entry left that matches request 0"):
            _client(srv).complete(_req("hi"))
        with pytest.raises(AssertionError, match=r"requests \[0\] matched no script entry"):
            srv.assert_complete()


def test_times_forever_and_remaining() -> None:
    with FakeOpenAIServer(
        [{"content": "a", "times": 2}, {"content": "z", "times": "forever"}]
    ) as s:
        c = _client(s)
        assert [c.complete(_req("x")).content for _ in range(5)] == ["a", "a", "z", "z", "z"]
        assert s.remaining == 0
        s.assert_complete()


def test_chat_responses_can_be_script_entries() -> None:
    with FakeOpenAIServer([tool_reply("type", text="hi")]) as srv:
        r = _client(srv).complete(_req("x"))
        assert r.tool_calls[0].name == "type" and json.loads(r.tool_calls[0].arguments) == {
            "text": "hi"
        }


def test_default_usage_counts_images() -> None:
    with FakeOpenAIServer([{"content": "a"}, {"content": "b"}]) as srv:
        c = _client(srv)
        u0 = c.complete(_req("x")).usage
        u2 = c.complete(_req("x", images=2)).usage
        assert u2.prompt_tokens - u0.prompt_tokens == 170 and u2.images == 2


def test_raw_http_shape_and_routes() -> None:
    with FakeOpenAIServer([{"content": "a"}]) as srv:
        base = srv.base_url
        r = httpx.post(
            f"{base}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "q"}]},
        )
        data = r.json()
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-fake-1"
        assert (
            data["object"] == "chat.completion" and data["choices"][0]["message"]["content"] == "a"
        )
        assert data["usage"]["total_tokens"] == (
            data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
        )
        assert httpx.post(f"{base}/chat/completions", content=b"not json").status_code == 400
        assert httpx.get(f"{base}/nope").status_code == 404
        assert httpx.get(f"{base}/models").json()["data"][0]["id"] == "fake-planner"
        assert len(srv.requests) == 4 and len(srv.chat_requests) == 2


@pytest.mark.parametrize(
    ("script", "msg"),
    [
        ([{"fault": "explode"}], "replies[0]: unknown fault 'explode' (expected one of rate_limit"),
        ([{"content": "a"}, {"contnet": "b"}], "replies[1]: unknown key 'contnet'"),
        ([{"when": {"purpose": "plan"}}], "replies[0]: needs content, tool_calls, json or a fault"),
        ([{"content": "a", "times": 0}], "replies[0]: times must be a positive integer"),
        ([{"content": "a", "delay": -1}], "replies[0]: delay must not be negative"),
        ([{"content": "a", "delay": "slow"}], "replies[0]: delay must be int or float"),
        ([{"fault": "status"}], "replies[0]: fault 'status' needs a status"),
        ([{"fault": "status", "status": 1000}], "replies[0]: status must be an HTTP status"),
        ([{"fault": "quota", "style": "aws"}], "replies[0]: style must be 'xai' or 'openai'"),
        ([{"content": 5}], "replies[0]: content must be str"),
        ([{"content": "a", "usage": {"tokens": 1}}], "replies[0]: usage.tokens is not a usage"),
        ([{"content": "a", "usage": {"prompt_tokens": -1}}], "usage.prompt_tokens must be a non"),
        ([{"tool_calls": [{"arguments": {}}]}], "replies[0]: tool_calls[0] needs a name"),
        ([{"tool_calls": [{"name": "c", "arguments": 3}]}], "arguments must be a mapping or a raw"),
        ([{"tool_calls": "click"}], "replies[0]: tool_calls must be a list"),
        ([{"content": "a", "when": {"role": "x"}}], "replies[0]: when.role is not a condition"),
        ([{"fault": "rate_limit", "content": "x"}], "replies[0]: unknown key 'content'"),
        (["hello"], "replies[0]: an entry must be a mapping, got str"),
        ({"replies": [], "extra": 1}, "unknown top-level key 'extra'"),
        ({"replies": [], "models": "m"}, "models must be a list of names"),
        ({"replies": [], "require_key": 5}, "require_key must be a string"),
        ({"models": []}, "the script must be a list of entries"),
    ],
)
def test_bad_scripts_are_one_line_errors(script: Any, msg: str) -> None:
    with pytest.raises(FakeScriptError) as info:
        load_script(script)
    assert msg in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert isinstance(info.value, ConfigError)


def test_bad_script_files_name_the_file(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("replies:\n  - content: [unclosed\n", encoding="utf-8")
    with pytest.raises(FakeScriptError, match=rf"{bad_yaml}:\d+:\d+: invalid YAML"):
        load_script(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"content": "a"},]', encoding="utf-8")
    with pytest.raises(FakeScriptError, match=rf"{bad_json}:1:\d+: invalid JSON"):
        load_script(bad_json)
    entry = tmp_path / "entry.json"
    entry.write_text('[{"content": "a"}, {"fault": "nope"}]', encoding="utf-8")
    with pytest.raises(FakeScriptError, match=rf"{entry}: replies\[1\]: unknown fault"):
        load_script(entry)
    with pytest.raises(FakeScriptError, match=r"missing\.yaml: cannot read script"):
        load_script(tmp_path / "missing.yaml")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_cli_serves_a_script_file(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"content": "from the cli"}]), encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentcorp.testing.fake_openai",
            "--script",
            str(script),
            "--port",
            "0",
            "--require-key",
            "k",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        client = OpenAIClient(custom(base), api_key="k", retry=RetryPolicy(max_attempts=1))
        assert client.complete(_req("x")).content == "from the cli"
        client.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "served 1 chat requests, 0 entries unused" in err


def test_cli_bad_script_exits_2_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("- content: ok\n- fault: melt\n", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp.testing.fake_openai", "--script", str(script)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{script}: replies[1]: unknown fault 'melt'" in lines[0]
