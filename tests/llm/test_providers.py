from __future__ import annotations

import pytest

from agentcorp.errors import ConfigError, LLMUnavailable
from agentcorp.llm import OPENAI, XAI, OpenAIClient, custom, provider_named


def test_presets() -> None:
    assert XAI.base_url == "https://api.x.ai/v1" and XAI.api_key_env == "XAI_API_KEY"
    # Current xAI lineup, never a deprecated model (grok-4-1-fast-*, grok-4, grok-3).
    current = ("grok-4.7", "grok-4.6", "grok-4.5", "grok-4.3", "grok-4.20-")
    for model in (XAI.default_planner_model, XAI.default_actor_model):
        assert model.startswith(current), model
        assert not model.startswith("grok-4-1-fast")
    assert XAI.conversation_header == "x-grok-conv-id" and not OPENAI.conversation_header
    assert OPENAI.api_key_env == "OPENAI_API_KEY" and OPENAI.key_required
    assert hash(XAI) == hash(XAI)


def test_missing_key_names_the_variable_only() -> None:
    with pytest.raises(LLMUnavailable, match=r"bad or missing API key \(set XAI_API_KEY\)"):
        XAI.api_key({})
    with pytest.raises(LLMUnavailable, match="set XAI_API_KEY"):
        OpenAIClient(XAI, env={"XAI_API_KEY": "  "})
    assert XAI.api_key({"XAI_API_KEY": "xai-123"}) == "xai-123"
    with pytest.raises(LLMUnavailable, match="set XAI_API_KEY"):
        OpenAIClient(XAI, api_key="")


def test_custom_needs_no_key() -> None:
    p = custom("http://127.0.0.1:8000/v1/", planner_model="qwen")
    assert p.base_url == "http://127.0.0.1:8000/v1"
    assert p.api_key({}) == "" and p.api_key_env == "AGENTCORP_API_KEY"
    assert p.default_actor_model == "qwen"
    OpenAIClient(p, env={}).close()


def test_provider_named() -> None:
    assert provider_named("xai") is XAI
    assert provider_named("OpenAI") is OPENAI
    moved = provider_named("xai", "http://127.0.0.1:9/v1")
    assert moved.base_url == "http://127.0.0.1:9/v1" and moved.api_key_env == "XAI_API_KEY"
    assert provider_named("custom", "http://localhost:11434/v1").name == "custom"


@pytest.mark.parametrize(
    ("name", "url", "msg"),
    [
        ("grok", None, "unknown provider 'grok'; expected one of xai, openai, custom"),
        ("custom", None, "provider 'custom' needs a base URL"),
        ("custom", "localhost:8000", "base URL must start with http:// or https://"),
        ("xai", "ftp://x", "base URL must start with http:// or https://"),
    ],
)
def test_provider_named_garbage(name: str, url: str | None, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        provider_named(name, url)
