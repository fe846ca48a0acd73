"""Providers are values: where to send requests, which key to read, which models by default.

There is one client (``OpenAIClient``); a vendor is just a ``Provider``. The key itself is
never stored here, only the name of the environment variable that holds it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentcorp.errors import ConfigError, LLMUnavailable

__all__ = ["OPENAI", "XAI", "Provider", "custom", "provider_named"]


@dataclass(frozen=True, slots=True)
class Provider:
    """An OpenAI-compatible endpoint: base URL, key variable, default models, extra headers.

    ``key_required`` is false for local servers (vLLM, Ollama, llama.cpp) that take no key.
    ``conversation_header`` names the header that ties the calls of one conversation together
    (xAI's ``x-grok-conv-id`` routes them to a warm prompt cache); empty for none.
    """

    name: str
    base_url: str
    api_key_env: str
    default_planner_model: str
    default_actor_model: str
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    key_required: bool = True
    conversation_header: str = ""

    def api_key(self, env: Mapping[str, str] | None = None) -> str:
        """The key from ``env`` (default ``os.environ``).

        Raises ``LLMUnavailable`` if required and missing; the message names the variable,
        never a value.
        """
        source = os.environ if env is None else env
        key = source.get(self.api_key_env, "").strip()
        if not key and self.key_required:
            raise LLMUnavailable(
                f"{self.name} at {self.base_url}: bad or missing API key (set {self.api_key_env})"
            )
        return key

    def with_base_url(self, base_url: str) -> Provider:
        """The same provider at another URL (e.g. a proxy in front of xAI)."""
        return dataclasses.replace(self, base_url=base_url.rstrip("/"))


XAI = Provider(
    name="xai",
    base_url="https://api.x.ai/v1",
    api_key_env="XAI_API_KEY",
    # Current xAI lineup (docs/models.md). The planner reasons once per task: grok-4.3 is the
    # cheapest current reasoning model. The actor needs low latency per step, images and
    # tools: a non-reasoning grok-4.20 (grok-4-1-fast-* is deprecated).
    default_planner_model="grok-4.3",
    default_actor_model="grok-4.20-0309-non-reasoning",
    conversation_header="x-grok-conv-id",
)

OPENAI = Provider(
    name="openai",
    base_url="https://api.openai.com/v1",
    api_key_env="OPENAI_API_KEY",
    default_planner_model="gpt-4.1",
    default_actor_model="gpt-4.1-mini",
)


def custom(
    base_url: str,
    *,
    planner_model: str = "",
    actor_model: str = "",
    api_key_env: str = "AGENTCORP_API_KEY",
    name: str = "custom",
    headers: Mapping[str, str] | None = None,
) -> Provider:
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, a proxy); the key may be empty.

    Local servers serve whatever model they loaded, so the default model names are empty
    unless given: the caller (the CLI) must then supply them.
    """
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"base URL must start with http:// or https://, got {base_url!r}")
    return Provider(
        name=name,
        base_url=base_url.rstrip("/"),
        api_key_env=api_key_env,
        default_planner_model=planner_model,
        default_actor_model=actor_model or planner_model,
        headers=dict(headers or {}),
        key_required=False,
    )


_PRESETS = {"xai": XAI, "openai": OPENAI}


def provider_named(name: str, base_url: str | None = None) -> Provider:
    """Resolve ``--provider``/``--base-url`` to a ``Provider``.

    A preset (optionally moved to ``base_url``), or ``custom`` (which needs ``base_url``).
    Raises ``ConfigError`` with one line otherwise.
    """
    key = name.strip().lower()
    if key == "custom":
        if not base_url:
            raise ConfigError("provider 'custom' needs a base URL (--base-url URL)")
        return custom(base_url)
    preset = _PRESETS.get(key)
    if preset is None:
        raise ConfigError(f"unknown provider {name!r}; expected one of xai, openai, custom")
    if base_url:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL must start with http:// or https://, got {base_url!r}")
        return preset.with_base_url(base_url)
    return preset
