"""A run's resolved configuration: flags over the environment over ``agentcorp.toml``.

The environment is passed in as a mapping and read once here; nothing in the application
layer reads or writes ``os.environ`` afterwards. API keys come only from the environment:
``XAI_API_KEY`` (xai), ``OPENAI_API_KEY`` (openai), ``AGENTCORP_API_KEY`` (custom base URL).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agentcorp._io import UnsafeRead, read_text_bounded
from agentcorp.errors import ConfigError, SetupError

__all__ = [
    "KEY_ENV",
    "LIVE_VIEW_ENV",
    "PASSWORD_ENV",
    "LiveViewSettings",
    "RunConfig",
    "default_cache_dir",
    "in_container",
    "live_view_settings",
    "parse_rate_limits",
    "resolve_config",
]

Provider = Literal["xai", "openai", "custom"]
KEY_ENV = {"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "custom": "AGENTCORP_API_KEY"}
LIVE_VIEW_ENV = "AGENTCORP_LIVE_VIEW"
#: The live view password's variable (as ``agentcorp.sandbox.liveview`` names it).
PASSWORD_ENV = "AGENTCORP_VNC_PASSWORD"


class RunConfig(BaseModel):
    """Everything ``agentcorp run`` needs besides the spec, resolved once at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = "xai"
    base_url: str | None = None
    api_key: SecretStr | None = Field(None, repr=False)
    planner_model: str | None = None
    actor_model: str | None = None
    sessions: Path | None = None
    audit: Path | None = None
    image_history: int = Field(3, ge=0, le=50)
    long_side: int = Field(1024, ge=256, le=4096)
    timeout_s: float = Field(60.0, gt=0)
    # Where timeout_s came from (--timeout, AGENTCORP_TIMEOUT, the config file, default), so a
    # timeout message can say which setting to raise.
    timeout_source: str = "default"
    # Whether the actor model takes images: None checks (vendor lineup, /models, a probe);
    # false refuses the run up front; true skips the check.
    vision: bool | None = None
    max_replans: int = Field(2, ge=0, le=10)
    #: How long ``request_help`` waits for a person's answer at the console.
    help_timeout_s: float = Field(300.0, gt=0, le=86400)
    plan: bool = True
    cache: bool = True  # skills (``--no-cache`` neither uses nor learns them)
    cache_dir: Path | None = None  # default ``default_cache_dir()``
    chromium: Path | None = None  # default: Debian's /usr/bin/chromium, else on PATH
    #: ``--no-model``: no model at all, even when one is configured (hermetic runs: a skill
    #: that diverges on a model-driven task fails at once instead of asking one).
    use_model: bool = True

    @property
    def online(self) -> bool:
        """A model is configured (a key for the provider, or an explicit base URL) and used."""
        return self.use_model and (self.api_key is not None or self.base_url is not None)

    def describe(self) -> str:
        """Where model requests go (never the key)."""
        from agentcorp.llm.providers import provider_named

        p = provider_named(self.provider, self.base_url)
        return f"{p.name} at {p.base_url}"


def default_cache_dir(
    company_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where skills live by default (as ``agentcorp skills`` looks for them): beside the company."""
    from agentcorp.grounding.cache import default_skills_dir

    return default_skills_dir(company_dir, os.environ if environ is None else environ)


@dataclass(frozen=True)
class LiveViewSettings:
    """Serve each desktop sandbox over password-protected VNC and noVNC while the run lasts.

    The n-th desktop opened gets ``vnc_port + n`` and ``web_port + n``. ``bind`` is loopback
    on a normal machine and ``0.0.0.0`` in a container (so ``-p`` mappings reach it).
    """

    password: str = field(repr=False)
    vnc_port: int = 5900
    web_port: int = 6080
    bind: str = "127.0.0.1"


def in_container(root: Path = Path("/")) -> bool:
    """Whether this process runs in a Docker or Podman container (their marker files)."""
    return (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists()


_FIELDS = (
    "provider",
    "base_url",
    "planner_model",
    "actor_model",
    "sessions",
    "audit",
    "image_history",
    "long_side",
    "timeout_s",
    "vision",
    "max_replans",
    "help_timeout_s",
    "plan",
    "cache",
    "cache_dir",
    "chromium",
    "use_model",
)
_ENV = {
    "provider": "AGENTCORP_PROVIDER",
    "base_url": "AGENTCORP_BASE_URL",
    "planner_model": "AGENTCORP_PLANNER_MODEL",
    "actor_model": "AGENTCORP_ACTOR_MODEL",
    "sessions": "AGENTCORP_SESSIONS",
    "audit": "AGENTCORP_AUDIT",
    "cache_dir": "AGENTCORP_CACHE_DIR",
    "chromium": "AGENTCORP_CHROMIUM",
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(read_text_bounded(path, 1 << 20, what="config file"))
    except UnsafeRead:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("run", data) if isinstance(data.get("run"), dict) else data
    extra = [k for k in table if k not in _FIELDS and k != "run"]
    if extra:
        close = difflib.get_close_matches(extra[0], _FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {extra[0]!r}{hint}")
    return {k: v for k, v in table.items() if k in _FIELDS}


def resolve_config(
    *,
    provider: str | None = None,
    base_url: str | None = None,
    planner_model: str | None = None,
    actor_model: str | None = None,
    sessions: Path | None = None,
    config_file: Path | None = None,
    no_plan: bool = False,
    environ: Mapping[str, str] | None = None,
    audit: Path | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    chromium: Path | None = None,
    **settings: Any,
) -> RunConfig:
    """Flags over environment over ``agentcorp.toml``; raises ``ConfigError`` (one line).

    ``settings`` are further ``RunConfig`` fields by name (``image_history=2``...), as
    ``agentcorp.run(**settings)`` passes them; an unknown name is a ``ConfigError``.
    """
    env = os.environ if environ is None else environ
    unknown = [k for k in settings if k not in _FIELDS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], _FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown setting {unknown[0]!r}{hint}")
    values, where = _file_values(config_file)
    file_timeout = values.get("timeout_s")
    values.update({name: env[var] for name, var in _ENV.items() if env.get(var)})
    flags = {
        "provider": provider,
        "base_url": base_url,
        "planner_model": planner_model,
        "actor_model": actor_model,
        "sessions": sessions,
        "audit": audit,
        "cache_dir": cache_dir,
        "chromium": chromium,
        **settings,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if no_plan:
        values["plan"] = False
    if no_cache:
        values["cache"] = False
    _timeout(values, settings.get("timeout_s"), env, file_timeout, where)
    _check_paths(values)
    prov = _provider(values)
    var = KEY_ENV[prov]
    key = env.get(var, "").strip()
    if var in env and not key:
        # Set but empty is a key that went missing (a CI secret not passed on), never a
        # request to run offline: that is what leaving the variable unset means.
        raise SetupError(f"{var} is set but empty: give it the key, or unset it to run offline")
    values["api_key"] = key or None
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {loc}: {err['msg']}") from None


def _timeout(
    values: dict[str, Any], flag: Any, env: Mapping[str, str], file_value: Any, where: str
) -> None:
    """``--timeout`` over ``AGENTCORP_TIMEOUT`` over the file; the value and its source."""
    from agentcorp.llm.client import resolve_timeout

    try:
        seconds, source = resolve_timeout(flag, env, file_value)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config timeout_s", f"{where}: timeout_s")) from None
    values["timeout_s"] = seconds
    values["timeout_source"] = f"{where} timeout_s" if source == "config timeout_s" else source


def _file_values(config_file: Path | None) -> tuple[dict[str, Any], str]:
    """``agentcorp.toml`` (or ``--config FILE``) values and where they came from."""
    path = config_file if config_file is not None else Path("agentcorp.toml")
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"--config: {config_file} does not exist")
    if path.is_file():
        return _read_toml(path), str(path)
    return {}, "flags/environment"


def _provider(values: dict[str, Any]) -> str:
    """Normalise ``values["provider"]`` (a base URL alone means ``custom``) and check it."""
    if values.get("base_url") and not values.get("provider"):
        values["provider"] = "custom"
    prov = str(values.get("provider") or "xai").strip().lower()
    if prov not in KEY_ENV:
        raise ConfigError(f"--provider: unknown provider {prov!r}; expected xai, openai or custom")
    values["provider"] = prov
    if prov == "custom" and not values.get("base_url"):
        raise ConfigError("--provider custom needs --base-url URL")
    url = values.get("base_url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ConfigError(f"--base-url: must start with http:// or https://, got {url!r}")
    return prov


def _check_paths(values: Mapping[str, Any]) -> None:
    """Folders that exist as something else are refused before anything starts."""
    for name, flag in (("cache_dir", "--cache-dir"), ("sessions", "--sessions")):
        p = values.get(name)
        if p is not None and Path(str(p)).exists() and not Path(str(p)).is_dir():
            raise ConfigError(f"{flag}: {p} exists and is not a folder")
    audit_to = values.get("audit")
    if audit_to is not None:
        a = Path(str(audit_to))
        if a.exists() and not (a.is_file() or a.is_dir()):
            raise ConfigError(f"--audit: {audit_to} is neither a file nor a folder")


def live_view_settings(
    enabled: bool,
    password: str | None,
    vnc_port: int = 5900,
    web_port: int = 6080,
    environ: Mapping[str, str] | None = None,
    root: Path = Path("/"),
) -> LiveViewSettings | None:
    """The live view asked for by ``--live-view`` or ``AGENTCORP_LIVE_VIEW=1``, or ``None``.

    Refuses (``ConfigError``, one line, exit 2) without a password from ``--vnc-password`` or
    ``AGENTCORP_VNC_PASSWORD``. Binds to all interfaces in a container, else to loopback.
    """
    from agentcorp.sandbox.liveview import LiveView

    env = os.environ if environ is None else environ
    flag = env.get(LIVE_VIEW_ENV, "").strip().lower()
    if flag not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{LIVE_VIEW_ENV}: expected 1 or 0, got {flag!r}")
    if not (enabled or flag in ("1", "true", "yes", "on")):
        return None
    if vnc_port == web_port:
        raise ConfigError(f"--vnc-port and --web-port are both {vnc_port}")
    secret = password or env.get(PASSWORD_ENV) or None
    # LiveView's own checks (present, long enough) before any sandbox starts.
    LiveView("", secret)
    assert secret is not None
    return LiveViewSettings(
        secret, vnc_port, web_port, "0.0.0.0" if in_container(root) else "127.0.0.1"
    )


_RATE = re.compile(r"^(?:(?P<key>[A-Za-z0-9_.-]+)=)?(?P<rate>[0-9.]+)(?:/(?P<burst>[0-9.]+))?$")


def parse_rate_limits(values: list[str]) -> dict[str, tuple[float, float]]:
    """``[KEY=]RATE[/BURST]`` flags → ``{key: (rate, burst)}`` (``ConfigError`` on a bad one)."""
    out: dict[str, tuple[float, float]] = {}
    for v in values:
        m = _RATE.match(v.strip())
        try:
            rate = float(m["rate"]) if m else 0.0
            burst = float(m["burst"]) if m and m["burst"] else max(1.0, rate)
        except ValueError:
            m = None
        if m is None or not 0 < rate < float("inf") or not 1 <= burst < float("inf"):
            raise ConfigError(f"--rate-limit: expected [KEY=]RATE[/BURST] with RATE > 0, got {v!r}")
        out[m["key"] or "llm"] = (rate, burst)
    return out
